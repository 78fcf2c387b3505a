package bench

import (
	"fmt"
	"io"
	"net"
	"sync"
)

// TCPProxy forwards a loopback port to a target, and can be taken down (the
// port refuses connections and open ones are cut) and brought back on the
// same port: a database that goes away and returns, without touching the
// database itself.
type TCPProxy struct {
	Addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// StartProxy listens on a free loopback port and forwards to target.
func StartProxy(target string) (*TCPProxy, error) {
	p := &TCPProxy{target: target, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy listen: %w", err)
	}
	p.Addr = ln.Addr().String()
	p.serve(ln)
	return p, nil
}

func (p *TCPProxy) serve(ln net.Listener) {
	p.ln = ln
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.pipe(c)
		}
	}()
}

func (p *TCPProxy) track(c net.Conn, on bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		if p.ln == nil {
			return false
		}
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *TCPProxy) pipe(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c, true) || !p.track(up, true) {
		c.Close()
		up.Close()
		return
	}
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		dst.Close()
		src.Close()
		done <- struct{}{}
	}
	go cp(up, c)
	go cp(c, up)
	<-done
	<-done
	p.track(c, false)
	p.track(up, false)
}

// Down closes the listener and cuts every open connection.
func (p *TCPProxy) Down() {
	p.mu.Lock()
	ln := p.ln
	p.ln = nil
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	if ln != nil {
		ln.Close()
		p.wg.Wait()
	}
}

// Up listens again on the same port.
func (p *TCPProxy) Up() error {
	p.mu.Lock()
	up := p.ln != nil
	p.mu.Unlock()
	if up {
		return nil
	}
	ln, err := net.Listen("tcp", p.Addr)
	if err != nil {
		return fmt.Errorf("proxy relisten %s: %w", p.Addr, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.serve(ln)
	return nil
}

// Close takes the proxy down for good.
func (p *TCPProxy) Close() { p.Down() }
