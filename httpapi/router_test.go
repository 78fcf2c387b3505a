package httpapi

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

func TestRouterAnswersUnknownPathsAndMethodsWithJSON(t *testing.T) {
	ts := serve(t, Options{}, []Route{
		{Method: "POST", Path: "/collect", Handler: okHandler},
		{Method: "GET", Path: "/collect", Handler: okHandler},
		{Method: "GET", Path: "/export/*", Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("export:" + string(ctx.Path())) }},
		{Method: "GET", Path: "/export/status", Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("exact") }},
		{Method: "PANIC", Path: "/panic", Handler: func(*fasthttp.RequestCtx) { panic("boom") }},
	})
	cases := []struct {
		name, method, uri string
		status            int
		field             string // error answers
		body              string // other answers
		allow             string
	}{
		{"exact route", "POST", "/collect", 200, "", `{"status":"ok"}`, ""},
		{"trailing slash forgiven", "GET", "/collect/", 200, "", `{"status":"ok"}`, ""},
		{"prefix route", "GET", "/export/run", 200, "", "export:/export/run", ""},
		{"exact wins over prefix", "GET", "/export/status", 200, "", "exact", ""},
		{"prefix needs the slash", "GET", "/export", 404, "path", "", ""},
		{"unknown path", "GET", "/nope", 404, "path", "", ""},
		{"root", "GET", "/", 404, "path", "", ""},
		{"wrong method", "DELETE", "/collect", 405, "method", "", "POST, GET, OPTIONS"},
		{"wrong method on prefix", "POST", "/export/run", 405, "method", "", "GET, OPTIONS"},
		{"OPTIONS without preflight", "OPTIONS", "/collect", 204, "", "", "POST, GET, OPTIONS"},
		{"handler panic", "PANIC", "/panic", 500, "", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := ts.do(c.method, c.uri, nil, "")
			if a.status != c.status {
				t.Fatalf("status %d, want %d: %s", a.status, c.status, a.body)
			}
			switch {
			case c.status == 500:
				if !a.isError(500, "") || !strings.Contains(a.body, "internal error") || strings.Contains(a.body, "boom") {
					t.Fatalf("panic answer %s", a.body)
				}
			case c.field != "":
				if !a.isError(c.status, c.field) {
					t.Fatalf("not a JSON error with field %q: %s", c.field, a.body)
				}
			case a.body != c.body:
				t.Fatalf("body %q, want %q", a.body, c.body)
			}
			if a.header["Allow"] != c.allow {
				t.Fatalf("Allow %q, want %q", a.header["Allow"], c.allow)
			}
		})
	}
}

func TestNewRefusesBadRoutesAndOptions(t *testing.T) {
	cases := []struct {
		name   string
		opts   Options
		routes []Route
		health []HealthReporter
		want   string
	}{
		{"duplicate route", Options{}, []Route{{Method: "GET", Path: "/a", Handler: okHandler}, {Method: "GET", Path: "/a", Handler: okHandler}}, nil, "twice"},
		{"clash with /health", Options{}, []Route{{Method: "GET", Path: "/health", Handler: okHandler}}, nil, "twice"},
		{"nil handler", Options{}, []Route{{Method: "GET", Path: "/a"}}, nil, "nil handler"},
		{"lower-case method", Options{}, []Route{{Method: "get", Path: "/a", Handler: okHandler}}, nil, "upper case"},
		{"relative path", Options{}, []Route{{Method: "GET", Path: "a", Handler: okHandler}}, nil, "start with /"},
		{"* in production", Options{Environment: "production", CORSAllowedOrigins: []string{"*"}}, nil, nil, "not allowed in production"},
		{"origin with path", Options{CORSAllowedOrigins: []string{"https://example.com/"}}, nil, nil, "not an origin"},
		{"reserved health key", Options{}, nil, []HealthReporter{fakeReporter{key: "wal"}}, "reserved"},
		{"duplicate health key", Options{}, nil, []HealthReporter{fakeReporter{key: "loader"}, fakeReporter{key: "loader"}}, "twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(c.opts, c.routes, c.health...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want one containing %q", err, c.want)
			}
		})
	}
	if _, err := New(Options{Registerer: prometheus.NewRegistry()}, nil); err != nil {
		t.Fatalf("minimal server: %v", err)
	}
}

func TestAdminRoutesNeedTheToken(t *testing.T) {
	routes := []Route{
		{Method: "GET", Path: "/events/recent", Handler: okHandler, Admin: true},
		{Method: "GET", Path: "/lag", Handler: okHandler},
	}
	withToken := serve(t, Options{AdminToken: "s3cret-token"}, routes)
	noToken := serve(t, Options{}, routes)
	cases := []struct {
		name   string
		ts     *testServer
		path   string
		auth   string
		status int
	}{
		{"right token", withToken, "/events/recent", "Bearer s3cret-token", 200},
		{"scheme is case-insensitive", withToken, "/events/recent", "bearer s3cret-token", 200},
		{"missing", withToken, "/events/recent", "", 401},
		{"wrong token", withToken, "/events/recent", "Bearer s3cret-tokem", 401},
		{"prefix of the token", withToken, "/events/recent", "Bearer s3cret", 401},
		{"token plus more", withToken, "/events/recent", "Bearer s3cret-token2", 401},
		{"basic auth", withToken, "/events/recent", "Basic czNjcmV0LXRva2Vu", 401},
		{"empty bearer", withToken, "/events/recent", "Bearer ", 401},
		{"public route needs nothing", withToken, "/lag", "", 200},
		{"ADMIN_TOKEN unset", noToken, "/events/recent", "Bearer anything", 403},
		{"ADMIN_TOKEN unset, public route", noToken, "/lag", "", 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			headers := map[string]string{}
			if c.auth != "" {
				headers["Authorization"] = c.auth
			}
			a := c.ts.do("GET", c.path, headers, "")
			if a.status != c.status {
				t.Fatalf("status %d, want %d: %s", a.status, c.status, a.body)
			}
			switch c.status {
			case 401:
				if !a.isError(401, "Authorization") || a.header["Www-Authenticate"] == "" {
					t.Fatalf("401 answer %s %v", a.body, a.header)
				}
			case 403:
				if !a.isError(403, "Authorization") || a.json["message"] != "admin endpoints disabled: set ADMIN_TOKEN" {
					t.Fatalf("403 answer %s", a.body)
				}
			}
		})
	}
}
