package ingest

import (
	"net/netip"
	"testing"

	"github.com/evothesis/collector/config"
	"github.com/evothesis/collector/httpapi"
)

func TestClientIPResolution(t *testing.T) {
	trusted, err := config.ParsePrefixes("127.0.0.0/8,::1/128,10.0.0.0/8,fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	r := &ipResolver{trusted: trusted}
	cases := []struct {
		name   string
		peer   string
		xff    []string
		realIP string
		want   string
	}{
		{"untrusted peer ignores headers", "203.0.113.9", []string{"198.51.100.1"}, "198.51.100.2", "203.0.113.9"},
		{"no headers", "127.0.0.1", nil, "", "127.0.0.1"},
		{"one hop", "127.0.0.1", []string{"198.51.100.1"}, "", "198.51.100.1"},
		{"spoofed left part is skipped", "127.0.0.1", []string{"1.2.3.4, 198.51.100.1"}, "", "198.51.100.1"},
		{"walks past trusted hops", "127.0.0.1", []string{"1.2.3.4, 198.51.100.1, 10.0.0.5, 10.0.0.6"}, "", "198.51.100.1"},
		{"several headers in order", "10.1.1.1", []string{"1.2.3.4", "198.51.100.1, 10.0.0.5"}, "", "198.51.100.1"},
		{"all hops trusted: leftmost", "127.0.0.1", []string{"10.0.0.9, 10.0.0.5"}, "", "10.0.0.9"},
		{"ports are dropped", "127.0.0.1", []string{"198.51.100.1:4711"}, "", "198.51.100.1"},
		{"IPv6", "::1", []string{"2001:db8::1"}, "", "2001:db8::1"},
		{"IPv6 bracketed with port", "::1", []string{"[2001:db8::2]:443"}, "", "2001:db8::2"},
		{"IPv6 zone dropped", "::1", []string{"fe80::1%eth0"}, "", "fe80::1"},
		{"IPv4-mapped IPv6 unmapped", "127.0.0.1", []string{"::ffff:198.51.100.7"}, "", "198.51.100.7"},
		{"IPv4-mapped peer is trusted", "::ffff:127.0.0.1", []string{"198.51.100.1"}, "", "198.51.100.1"},
		{"trusted IPv6 proxy", "fd00::1", []string{"198.51.100.1, fd00::2"}, "", "198.51.100.1"},
		{"garbage at the right stops the walk: X-Real-IP", "127.0.0.1", []string{"198.51.100.1, garbage"}, "198.51.100.3", "198.51.100.3"},
		{"garbage after trusted hops: last good hop", "127.0.0.1", []string{"garbage, 10.0.0.5"}, "", "10.0.0.5"},
		{"garbage only, no X-Real-IP: peer", "127.0.0.1", []string{"not-an-ip"}, "", "127.0.0.1"},
		{"unspecified address is garbage", "127.0.0.1", []string{"0.0.0.0"}, "", "127.0.0.1"},
		{"empty entries skipped", "127.0.0.1", []string{" , 198.51.100.1 ,"}, "", "198.51.100.1"},
		{"X-Real-IP alone", "127.0.0.1", nil, "198.51.100.4", "198.51.100.4"},
		{"invalid X-Real-IP: peer", "127.0.0.1", nil, "999.1.1.1", "127.0.0.1"},
		{"bad port is garbage", "127.0.0.1", []string{"198.51.100.1:http"}, "", "127.0.0.1"},
		{"overlong entry is garbage", "127.0.0.1", []string{"1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc:dddd"}, "", "127.0.0.1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var xff [][]byte
			for _, h := range c.xff {
				xff = append(xff, []byte(h))
			}
			got := r.resolve(netip.MustParseAddr(c.peer).Unmap(), xff, []byte(c.realIP))
			if got.String() != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
}

func TestClientIPAnonymized(t *testing.T) {
	r := &ipResolver{anonymize: true}
	for in, want := range map[string]string{
		"203.0.113.77":               "203.0.113.0",
		"2001:db8:abcd:1234:5678::1": "2001:db8:abcd::",
	} {
		if got := r.resolve(netip.MustParseAddr(in), nil, nil); got.String() != want {
			t.Errorf("%s → %s, want %s", in, got, want)
		}
	}
}

// End to end: the socket peer decides whether forwarding headers count.
func TestClientIPFromRequests(t *testing.T) {
	h := newHarness(t, func(o *Options, _ *httpapi.Options) {
		o.TrustedProxies, _ = config.ParsePrefixes("127.0.0.0/8,::1/128")
	})
	cases := []struct {
		peer    string
		headers map[string]string
		want    string
	}{
		{"198.51.100.20:5000", map[string]string{"X-Forwarded-For": "1.1.1.1"}, "198.51.100.20"},
		{"127.0.0.1:5000", map[string]string{"X-Forwarded-For": "1.1.1.1, 198.51.100.21"}, "198.51.100.21"},
		{"127.0.0.1:5000", map[string]string{"X-Real-IP": "198.51.100.22"}, "198.51.100.22"},
		{"[::1]:5000", map[string]string{"X-Forwarded-For": "2001:db8::5"}, "2001:db8::5"},
		{"[2001:db8::9]:5000", nil, "2001:db8::9"},
	}
	for i, c := range cases {
		checkSeedSuccess(t, h.do(request{uri: "/collect", contentType: "application/json", body: seedCurlTest, peer: c.peer, headers: c.headers}))
		if got := h.app.events(t)[i].IPAddress; got != c.want {
			t.Errorf("peer %s headers %v: ip %q, want %q", c.peer, c.headers, got, c.want)
		}
	}
}
