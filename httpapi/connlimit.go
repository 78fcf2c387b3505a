package httpapi

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// connLimitListener enforces MAX_CONNECTIONS before fasthttp sees a
// connection, so that the connections over the limit get the same JSON error
// and Retry-After as every other refusal (fasthttp's own limit answers plain
// text). fasthttp's Concurrency stays above it as a backstop.
type connLimitListener struct {
	net.Listener
	max      int64
	open     atomic.Int64
	rejected prometheus.Counter
	response []byte
	// rejecting bounds the goroutines answering refused connections; past
	// it a refused connection is closed without an answer.
	rejecting chan struct{}
}

// rejectTimeout bounds how long a refused connection may take to receive its
// answer and send what it had started.
const rejectTimeout = time.Second

func newConnLimitListener(ln net.Listener, max int, rejected prometheus.Counter) *connLimitListener {
	body := AppendError(nil, fmt.Sprintf("too many connections: MAX_CONNECTIONS (%d) reached; retry later", max), "")
	resp := fmt.Appendf(nil, "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: %s\r\nRetry-After: 1\r\nCache-Control: no-store\r\nContent-Length: %d\r\n\r\n%s",
		ContentTypeJSON, len(body), body)
	return &connLimitListener{Listener: ln, max: int64(max), rejected: rejected, response: resp, rejecting: make(chan struct{}, 256)}
}

func (l *connLimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &countedConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		l.rejected.Inc()
		select {
		case l.rejecting <- struct{}{}:
			go l.reject(c)
		default:
			c.Close()
		}
	}
}

// reject answers 503 and closes. It half-closes and drains what the client
// sent first: closing a socket with unread data makes the kernel send a
// reset, and the client could lose the answer.
func (l *connLimitListener) reject(c net.Conn) {
	defer func() { <-l.rejecting }()
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(rejectTimeout))
	if _, err := c.Write(l.response); err != nil {
		return
	}
	if hc, ok := c.(interface{ CloseWrite() error }); ok {
		_ = hc.CloseWrite()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
}

// countedConn gives its slot back when fasthttp closes it.
type countedConn struct {
	net.Conn
	l    *connLimitListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}
