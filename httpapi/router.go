package httpapi

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// Route is one endpoint a stage serves.
type Route struct {
	Method string // GET, POST, ...
	// Path is an exact path ("/collect") or a prefix ending in "/*"
	// ("/export/*" matches "/export/run", not "/export"). Exact paths win
	// over prefixes, longer prefixes over shorter ones.
	Path    string
	Handler fasthttp.RequestHandler
	Admin   bool // needs "Authorization: Bearer <ADMIN_TOKEN>"
}

type methodRoute struct {
	method  string
	handler fasthttp.RequestHandler
	admin   bool
}

// endpoint is every route registered for one path pattern.
type endpoint struct {
	pattern  string
	prefix   []byte // for "/x/*": "/x/"; nil for exact paths
	methods  []methodRoute
	allow    string // Allow header: the methods, plus OPTIONS
	counters *statusCounters
}

func (e *endpoint) find(method []byte) *methodRoute {
	for i := range e.methods {
		if string(method) == e.methods[i].method {
			return &e.methods[i]
		}
	}
	return nil
}

type router struct {
	exact    map[string]*endpoint
	prefixes []*endpoint // longest prefix first
}

func newRouter(routes []Route, vec *prometheus.CounterVec) (*router, error) {
	r := &router{exact: make(map[string]*endpoint)}
	byPattern := make(map[string]*endpoint)
	for _, rt := range routes {
		if rt.Handler == nil {
			return nil, fmt.Errorf("route %s %s: nil handler", rt.Method, rt.Path)
		}
		if rt.Method == "" || strings.ToUpper(rt.Method) != rt.Method {
			return nil, fmt.Errorf("route %s %s: method must be upper case, e.g. GET", rt.Method, rt.Path)
		}
		if !strings.HasPrefix(rt.Path, "/") {
			return nil, fmt.Errorf("route %s %q: path must start with /", rt.Method, rt.Path)
		}
		e := byPattern[rt.Path]
		if e == nil {
			e = &endpoint{pattern: rt.Path, counters: newStatusCounters(vec, rt.Path)}
			if strings.HasSuffix(rt.Path, "/*") {
				e.prefix = []byte(strings.TrimSuffix(rt.Path, "*"))
				r.prefixes = append(r.prefixes, e)
			} else {
				r.exact[rt.Path] = e
			}
			byPattern[rt.Path] = e
		}
		if e.find([]byte(rt.Method)) != nil {
			return nil, fmt.Errorf("route %s %s registered twice", rt.Method, rt.Path)
		}
		e.methods = append(e.methods, methodRoute{method: rt.Method, handler: rt.Handler, admin: rt.Admin})
	}
	for _, e := range byPattern {
		methods := make([]string, 0, len(e.methods)+1)
		for _, m := range e.methods {
			methods = append(methods, m.method)
		}
		if e.find([]byte(fasthttp.MethodOptions)) == nil {
			methods = append(methods, fasthttp.MethodOptions)
		}
		e.allow = strings.Join(methods, ", ")
	}
	sort.Slice(r.prefixes, func(i, j int) bool { return len(r.prefixes[i].prefix) > len(r.prefixes[j].prefix) })
	return r, nil
}

// lookup finds the endpoint of path. A trailing slash is forgiven
// ("/collect/" is "/collect") because tracking snippets get copied by hand.
func (r *router) lookup(path []byte) *endpoint {
	if e := r.exact[string(path)]; e != nil {
		return e
	}
	if len(path) > 1 && path[len(path)-1] == '/' {
		if e := r.exact[string(path[:len(path)-1])]; e != nil {
			return e
		}
	}
	for _, e := range r.prefixes {
		if bytes.HasPrefix(path, e.prefix) {
			return e
		}
	}
	return nil
}
