package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// The no-op server is the baseline every ingest figure is divided by: a
// fasthttp handler that answers the collector's API in the collector's shapes
// and does nothing else — no parsing, no WAL, no fsync. Whatever the
// collector does beyond answering costs the difference.

// gif1x1 is a transparent 1x1 GIF.
var gif1x1 = []byte("GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")

type noop struct {
	ids atomic.Uint64
}

// NoopHandler returns the baseline handler.
func NoopHandler() fasthttp.RequestHandler {
	n := &noop{}
	return n.handle
}

func (n *noop) appendID(dst []byte) []byte {
	// A fixed prefix and a counter: the shape of a UUID without its cost, so
	// the baseline stays an upper bound.
	dst = append(dst, "00000000-0000-7000-8000-"...)
	v := n.ids.Add(1)
	for shift := 44; shift >= 0; shift -= 4 {
		dst = append(dst, hexDigits[(v>>uint(shift))&0xf])
	}
	return dst
}

var (
	pathCollect = []byte("/collect")
	pathPixel   = []byte("/pixel.gif")
	eventKey    = []byte(`"eventType"`)
)

func (n *noop) handle(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	switch {
	case bytes.Equal(path, pathPixel) || (bytes.Equal(path, pathCollect) && ctx.IsGet()):
		ctx.Response.Header.Set("Cache-Control", "no-store")
		ctx.SetContentType("image/gif")
		ctx.SetBody(gif1x1)
	case bytes.Equal(path, pathCollect) && ctx.IsPost():
		ts := appendTimestamp(nil, time.Now())
		body := ctx.PostBody()
		buf := make([]byte, 0, 160)
		ctx.SetContentType("application/json")
		if len(body) > 0 && body[0] == '[' {
			count := bytes.Count(body, eventKey)
			buf = append(buf, `{"status":"success","accepted":`...)
			buf = strconv.AppendInt(buf, int64(count), 10)
			buf = append(buf, `,"results":[`...)
			for i := 0; i < count; i++ {
				if i > 0 {
					buf = append(buf, ',')
				}
				buf = append(buf, `{"index":`...)
				buf = strconv.AppendInt(buf, int64(i), 10)
				buf = append(buf, `,"status":"success","event_id":"`...)
				buf = n.appendID(buf)
				buf = append(buf, `"}`...)
			}
			buf = append(buf, `],"timestamp":"`...)
			buf = append(buf, ts...)
			buf = append(buf, `"}`...)
		} else {
			buf = append(buf, `{"status":"success","message":"Event received and stored","event_id":"`...)
			buf = n.appendID(buf)
			buf = append(buf, `","timestamp":"`...)
			buf = append(buf, ts...)
			buf = append(buf, `"}`...)
		}
		ctx.SetBody(buf)
	case bytes.Equal(path, []byte("/health")) || bytes.Equal(path, []byte("/ready")):
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"status":"healthy","database":"not configured"}`)
	default:
		ctx.SetStatusCode(fasthttp.StatusNotFound)
	}
}

// Server is a fasthttp server on a loopback listener.
type Server struct {
	Addr string
	srv  *fasthttp.Server
	ln   net.Listener
	done chan error
}

// StartServer serves h on addr ("127.0.0.1:0" for a free port).
func StartServer(addr string, h fasthttp.RequestHandler) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	s := &Server{Addr: ln.Addr().String(), ln: ln, done: make(chan error, 1),
		srv: &fasthttp.Server{Handler: h, Name: "collector-bench", ReadTimeout: 30 * time.Second, IdleTimeout: time.Minute}}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// URL is the server's base URL.
func (s *Server) URL() string { return "http://" + s.Addr }

// Close stops the server.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.ShutdownWithContext(ctx)
	<-s.done
	return err
}

// ServeNoop runs the no-op baseline on addr until ctx is done; ready (if not
// nil) receives the bound address.
func ServeNoop(ctx context.Context, addr string, ready func(string)) error {
	s, err := StartServer(addr, NoopHandler())
	if err != nil {
		return err
	}
	if ready != nil {
		ready(s.Addr)
	}
	<-ctx.Done()
	return s.Close()
}
