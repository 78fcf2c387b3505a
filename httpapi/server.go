package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"github.com/valyala/fasthttp/pprofhandler"
)

// connLimitSlack is how far fasthttp's own connection limit sits above
// MAX_CONNECTIONS: a closed connection leaves our count before fasthttp's.
const connLimitSlack = 64

// Server is the collector's HTTP server.
type Server struct {
	opts      Options
	log       *slog.Logger
	srv       *fasthttp.Server
	router    *router
	cors      cors
	metrics   *serverMetrics
	unmatched *statusCounters
	reporters []HealthReporter

	adminEnabled   bool
	adminTokenHash [sha256.Size]byte

	draining atomic.Bool
}

// New builds the server with the stages' routes and health reporters. It
// adds GET /health, GET /ready and (when opts.Gatherer is set) GET /metrics.
func New(opts Options, routes []Route, health ...HealthReporter) (*Server, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("http options: %w", err)
	}
	if err := validateReporters(health); err != nil {
		return nil, err
	}
	metrics, err := newServerMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("register http metrics: %w", err)
	}
	s := &Server{
		opts:      opts,
		log:       opts.Logger,
		cors:      newCORS(opts.CORSAllowedOrigins),
		metrics:   metrics,
		unmatched: newStatusCounters(metrics.requests, routeLabelUnmatched),
		reporters: health,
	}
	if opts.AdminToken != "" {
		s.adminEnabled = true
		s.adminTokenHash = sha256.Sum256([]byte(opts.AdminToken))
	}
	all := append([]Route{
		{Method: fasthttp.MethodGet, Path: "/health", Handler: s.serveHealth},
		{Method: fasthttp.MethodGet, Path: "/ready", Handler: s.serveReady},
	}, routes...)
	if opts.Gatherer != nil {
		metricsHandler := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{
			ErrorLog: slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
		}))
		all = append(all, Route{Method: fasthttp.MethodGet, Path: "/metrics", Handler: metricsHandler})
	}
	// Go's profiles, for an operator chasing CPU or memory on a live node
	// (`curl -H "Authorization: Bearer $ADMIN_TOKEN" .../debug/pprof/heap`).
	// Admin only: a profile shows the program's insides and a CPU profile
	// or trace costs CPU while it runs.
	all = append(all, Route{Method: fasthttp.MethodGet, Path: "/debug/pprof/*", Handler: pprofhandler.PprofHandler, Admin: true})
	if s.router, err = newRouter(all, metrics.requests); err != nil {
		return nil, err
	}
	s.srv = &fasthttp.Server{
		Handler:      s.handle,
		ErrorHandler: s.handleProtocolError,
		Logger:       &fasthttpLogger{log: opts.Logger},
		// connLimitListener answers connections over MaxConnections; this
		// is only a backstop for the instant between its count and fasthttp's.
		Concurrency: opts.MaxConnections + connLimitSlack,
		// fasthttp reads the request line and headers into this buffer and
		// refuses requests whose headers do not fit, so it is the header limit.
		ReadBufferSize:               opts.MaxHeaderBytes,
		ReadTimeout:                  opts.ReadTimeout,
		WriteTimeout:                 opts.WriteTimeout,
		IdleTimeout:                  opts.IdleTimeout,
		MaxRequestBodySize:           opts.MaxBodyBytes,
		NoDefaultServerHeader:        true,
		DisablePreParseMultipartForm: true,
		SecureErrorLogMessage:        true,
		// Tell keep-alive clients to reconnect (to another node, or to us
		// after the restart) instead of reusing a connection we are closing.
		CloseOnShutdown: true,
	}
	return s, nil
}

// Handler is the server's request handler (router, CORS, auth, metrics), for
// tests and benchmarks that serve it themselves.
func (s *Server) Handler() fasthttp.RequestHandler { return s.handle }

// ListenAndServe listens on opts.Addr and serves until ctx is done, then shuts
// down gracefully (see Serve).
func (s *Server) ListenAndServe(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.opts.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is done. Then it stops accepting, lets
// in-flight requests finish and closes idle keep-alive connections, waiting
// at most ShutdownTimeout; it returns an error if connections were still open
// then. When Serve returns, no new request will start.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	limited := newConnLimitListener(ln, s.opts.MaxConnections, s.metrics.rejectedConns)
	served := make(chan error, 1)
	go func() { served <- s.srv.Serve(limited) }()
	select {
	case err := <-served:
		if err != nil {
			return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
		}
		return nil
	case <-ctx.Done():
	}
	s.draining.Store(true)
	s.log.Info("http server shutting down", "timeout", s.opts.ShutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	err := s.srv.ShutdownWithContext(shutdownCtx)
	// ShutdownWithContext closes only the listeners Serve has registered; if
	// ctx was done before Serve got that far, closing ln ourselves still makes
	// it return.
	_ = ln.Close()
	<-served
	if err != nil {
		return fmt.Errorf("shutdown: %d connections still open after %s: %w",
			s.srv.GetOpenConnectionsCount(), s.opts.ShutdownTimeout, err)
	}
	s.log.Info("http server stopped")
	return nil
}

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	ep := s.router.lookup(ctx.Path())
	counters := s.unmatched
	if ep != nil {
		counters = ep.counters
	}
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("http handler panicked", "path", string(ctx.Path()), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			ctx.Response.Reset()
			WriteError(ctx, fasthttp.StatusInternalServerError, "internal error", "")
			s.cors.apply(ctx)
		}
		counters.inc(ctx.Response.StatusCode())
	}()

	if ep == nil {
		s.notFound(ctx)
		s.cors.apply(ctx)
		return
	}
	method := ctx.Method()
	route := ep.find(method)
	if route == nil && string(method) == fasthttp.MethodOptions {
		if isPreflight(ctx) {
			s.cors.preflight(ctx, ep.allow)
			return
		}
		ctx.Response.Header.Set(fasthttp.HeaderAllow, ep.allow)
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		s.cors.apply(ctx)
		return
	}
	if route == nil {
		ctx.Response.Header.Set(fasthttp.HeaderAllow, ep.allow)
		WriteError(ctx, fasthttp.StatusMethodNotAllowed,
			fmt.Sprintf("method %s not allowed on %s; allowed: %s", truncate(method, 16), ep.pattern, ep.allow), "method")
		s.cors.apply(ctx)
		return
	}
	if route.admin && !s.authorize(ctx) {
		s.cors.apply(ctx)
		return
	}
	route.handler(ctx)
	// After the handler, so that a handler resetting its response cannot drop
	// the CORS headers.
	s.cors.apply(ctx)
}

func (s *Server) notFound(ctx *fasthttp.RequestCtx) {
	WriteError(ctx, fasthttp.StatusNotFound, "no such endpoint: "+truncate(ctx.Path(), 200), "path")
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// authorize checks the admin token and answers the request when it fails.
// Comparing SHA-256 digests keeps the comparison constant-time even when the
// lengths differ.
func (s *Server) authorize(ctx *fasthttp.RequestCtx) bool {
	if !s.adminEnabled {
		WriteError(ctx, fasthttp.StatusForbidden, "admin endpoints disabled: set ADMIN_TOKEN", "Authorization")
		return false
	}
	token, ok := bearerToken(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization))
	sum := sha256.Sum256(token)
	if !ok || subtle.ConstantTimeCompare(sum[:], s.adminTokenHash[:]) != 1 {
		ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, `Bearer realm="collector"`)
		WriteError(ctx, fasthttp.StatusUnauthorized, "missing or wrong admin token: send Authorization: Bearer <ADMIN_TOKEN>", "Authorization")
		return false
	}
	return true
}

func bearerToken(h []byte) ([]byte, bool) {
	const scheme = "bearer "
	if len(h) < len(scheme) {
		return nil, false
	}
	for i := 0; i < len(scheme); i++ {
		c := h[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != scheme[i] {
			return nil, false
		}
	}
	token := h[len(scheme):]
	for len(token) > 0 && token[0] == ' ' {
		token = token[1:]
	}
	for len(token) > 0 && token[len(token)-1] == ' ' {
		token = token[:len(token)-1]
	}
	return token, len(token) > 0
}

// handleProtocolError answers requests fasthttp refused before routing, with
// our JSON errors instead of fasthttp's plain text.
func (s *Server) handleProtocolError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		WriteError(ctx, fasthttp.StatusRequestEntityTooLarge,
			fmt.Sprintf("request body is larger than MAX_BODY_BYTES (%d bytes)", s.opts.MaxBodyBytes), "body")
	case errors.As(err, &small):
		WriteError(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge,
			fmt.Sprintf("request headers are larger than MAX_HEADER_BYTES (%d bytes)", s.opts.MaxHeaderBytes), "headers")
	case errors.As(err, &netErr) && netErr.Timeout():
		WriteError(ctx, fasthttp.StatusRequestTimeout,
			fmt.Sprintf("request not received within READ_TIMEOUT (%s)", s.opts.ReadTimeout), "")
	default:
		WriteError(ctx, fasthttp.StatusBadRequest, "malformed HTTP request", "")
	}
	s.cors.apply(ctx)
	counters := s.unmatched
	if ep := s.router.lookup(ctx.Path()); ep != nil {
		counters = ep.counters
	}
	counters.inc(ctx.Response.StatusCode())
}

// fasthttpLogger sends fasthttp's own messages (accept errors, connection
// limits, malformed requests) to slog, at most one a second: fasthttp logs
// once per bad connection, and a misbehaving client must not flood the log.
type fasthttpLogger struct {
	log        *slog.Logger
	last       atomic.Int64
	suppressed atomic.Int64
}

func (l *fasthttpLogger) Printf(format string, args ...any) {
	now := time.Now().UnixNano()
	last := l.last.Load()
	if now-last < int64(time.Second) || !l.last.CompareAndSwap(last, now) {
		l.suppressed.Add(1)
		return
	}
	l.log.Warn("fasthttp: "+fmt.Sprintf(format, args...), "similar_suppressed", l.suppressed.Swap(0))
}
