package ingest

import (
	"bytes"
	"net"
	"net/netip"
)

// ipResolver finds the client's address. Forwarding headers are believed only
// from trusted proxies, because anyone can send them.
type ipResolver struct {
	trusted   []netip.Prefix
	anonymize bool
}

func (r *ipResolver) isTrusted(a netip.Addr) bool {
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peerAddr converts the socket's remote IP.
func peerAddr(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	return a.Unmap()
}

// resolve returns the client address of a request from peer (the socket's
// remote address), its X-Forwarded-For headers (in order) and X-Real-IP:
//   - an untrusted peer is the client;
//   - otherwise X-Forwarded-For is walked from the right (the hop nearest to
//     us) past trusted proxies; the first untrusted address is the client. If
//     every hop is trusted, the leftmost is. An invalid entry stops the walk,
//     since nothing left of it can be vouched for, and the last good hop wins;
//   - without a usable X-Forwarded-For, a valid X-Real-IP is the client;
//   - failing all that, the peer.
//
// With anonymization the result has its host part zeroed (/24, /48).
func (r *ipResolver) resolve(peer netip.Addr, forwardedFor [][]byte, realIP []byte) netip.Addr {
	a := r.resolveRaw(peer, forwardedFor, realIP)
	if r.anonymize && a.IsValid() {
		bits := 24
		if a.Is6() {
			bits = 48
		}
		if p, err := a.Prefix(bits); err == nil {
			a = p.Addr()
		}
	}
	return a
}

func (r *ipResolver) resolveRaw(peer netip.Addr, forwardedFor [][]byte, realIP []byte) netip.Addr {
	if !peer.IsValid() || !r.isTrusted(peer) {
		return peer
	}
	var last netip.Addr
walk:
	for h := len(forwardedFor) - 1; h >= 0; h-- {
		list := forwardedFor[h]
		for len(list) > 0 {
			var item []byte
			if comma := bytes.LastIndexByte(list, ','); comma >= 0 {
				item, list = list[comma+1:], list[:comma]
			} else {
				item, list = list, nil
			}
			item = bytes.TrimSpace(item)
			if len(item) == 0 {
				continue
			}
			a, ok := parseForwardedAddr(item)
			if !ok {
				break walk
			}
			if !r.isTrusted(a) {
				return a
			}
			last = a
		}
	}
	if last.IsValid() {
		return last
	}
	if a, ok := parseForwardedAddr(bytes.TrimSpace(realIP)); ok {
		return a
	}
	return peer
}

// parseForwardedAddr reads one address as proxies write it: "203.0.113.7",
// "203.0.113.7:4711", "2001:db8::1", "[2001:db8::1]" or "[2001:db8::1]:443".
// Zones are dropped and IPv4-mapped IPv6 becomes IPv4.
func parseForwardedAddr(b []byte) (netip.Addr, bool) {
	if len(b) == 0 || len(b) > 64 {
		return netip.Addr{}, false
	}
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		b = b[1 : len(b)-1]
	}
	if len(b) > 0 && b[0] == '[' {
		end := bytes.IndexByte(b, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		rest := b[end+1:]
		if len(rest) > 0 && (rest[0] != ':' || !allDigits(rest[1:])) {
			return netip.Addr{}, false
		}
		b = b[1:end]
	} else if colon := bytes.IndexByte(b, ':'); colon >= 0 && bytes.IndexByte(b[colon+1:], ':') < 0 {
		// Exactly one colon: IPv4 with a port.
		if !allDigits(b[colon+1:]) {
			return netip.Addr{}, false
		}
		b = b[:colon]
	}
	if pct := bytes.IndexByte(b, '%'); pct >= 0 {
		b = b[:pct]
	}
	a, err := netip.ParseAddr(bytesAsString(b))
	if err != nil || a.IsUnspecified() {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}
