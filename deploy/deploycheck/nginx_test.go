package deploycheck

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func nginxConf(t *testing.T) []nginxDirective {
	t.Helper()
	ds, err := parseNginx(readRepoFile(t, "deploy/nginx.conf"))
	if err != nil {
		t.Fatalf("deploy/nginx.conf: %v", err)
	}
	return ds
}

func nginxHTTP(t *testing.T) []nginxDirective {
	t.Helper()
	http, err := nginxOne(nginxConf(t), "http")
	if err != nil {
		t.Fatalf("deploy/nginx.conf: %v", err)
	}
	return http.Block
}

// nginxUpstream returns the host names and ports of the servers of the
// upstream that the locations proxy to.
func nginxUpstream(t *testing.T) (hosts, ports []string) {
	t.Helper()
	http := nginxHTTP(t)
	ups := nginxFind(http, "upstream")
	if len(ups) != 1 || len(ups[0].Args) != 1 {
		t.Fatalf("deploy/nginx.conf: want one upstream block, found %d", len(ups))
	}
	for _, s := range nginxFind(ups[0].Block, "server") {
		host, port, err := net.SplitHostPort(s.Args[0])
		if err != nil {
			t.Fatalf("deploy/nginx.conf line %d: upstream server %q: %v", s.Line, s.Args[0], err)
		}
		hosts, ports = append(hosts, host), append(ports, port)
	}
	if len(hosts) == 0 {
		t.Fatal("deploy/nginx.conf: the upstream has no server")
	}
	return hosts, ports
}

func TestNginxConfigAgreesWithTheCollector(t *testing.T) {
	lc := devCompose(t)
	cfg, _ := serviceConfig(t, lc, "collector")
	http := nginxHTTP(t)

	// Bodies: nginx must not refuse what the collector accepts, and should
	// refuse above it itself (with the collector's error shape).
	cmbs, err := nginxOne(http, "client_max_body_size")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := nginxSize(cmbs.Args[0]); err != nil || n != int64(cfg.MaxBodyBytes) {
		t.Errorf("client_max_body_size %s = %d bytes, want MAX_BODY_BYTES = %d (%v)", cmbs.Args[0], n, cfg.MaxBodyBytes, err)
	}
	if hb := nginxFind(http, "large_client_header_buffers"); len(hb) == 1 {
		if n, err := nginxSize(hb[0].Args[1]); err != nil || n < int64(cfg.MaxHeaderBytes) {
			t.Errorf("large_client_header_buffers %v is smaller than MAX_HEADER_BYTES %d", hb[0].Args, cfg.MaxHeaderBytes)
		}
	}

	// Upstream keep-alive, and shorter than the collector's idle timeout.
	up := nginxFind(http, "upstream")[0]
	if len(nginxFind(up.Block, "keepalive")) != 1 {
		t.Error("the upstream has no keepalive: one new TCP connection per event")
	}
	kt, err := nginxOne(up.Block, "keepalive_timeout")
	if err != nil {
		t.Fatal(err)
	}
	if d, err := nginxDuration(kt.Args[0]); err != nil || d >= cfg.IdleTimeout {
		t.Errorf("upstream keepalive_timeout %s must be below the collector's IDLE_TIMEOUT %v, or nginx reuses connections the collector is closing", kt.Args[0], cfg.IdleTimeout)
	}
	if v := directiveArgs(http, "proxy_http_version"); v != "1.1" {
		t.Errorf("proxy_http_version %q; upstream keep-alive needs 1.1", v)
	}
	headers := map[string]string{}
	for _, h := range nginxFind(http, "proxy_set_header") {
		headers[strings.ToLower(h.Args[0])] = strings.Join(h.Args[1:], " ")
	}
	if v, ok := headers["connection"]; !ok || v != "" {
		t.Errorf(`proxy_set_header Connection must be "" for upstream keep-alive, got %q`, v)
	}

	// Real client IP.
	for _, h := range []string{"x-forwarded-for", "x-real-ip"} {
		if headers[h] != "$remote_addr" {
			t.Errorf("proxy_set_header %s = %q; want $remote_addr (the client as established by real_ip)", h, headers[h])
		}
	}
	if directiveArgs(http, "real_ip_header") == "" || len(nginxFind(http, "set_real_ip_from")) == 0 {
		t.Error("no real_ip_header / set_real_ip_from: behind a load balancer every event would record the balancer")
	}

	// Every location that proxies goes to the upstream; the pixel is never
	// buffered and falls back to a GIF of nginx's own.
	server, err := nginxOne(http, "server")
	if err != nil {
		t.Fatal(err)
	}
	upstreamName := up.Args[0]
	locations := map[string]nginxDirective{}
	for _, loc := range nginxFind(server.Block, "location") {
		locations[strings.Join(loc.Args, " ")] = loc
		for _, pp := range nginxFind(loc.Block, "proxy_pass") {
			if pp.Args[0] != "http://"+upstreamName {
				t.Errorf("location %v proxies to %s, not the upstream %s", loc.Args, pp.Args[0], upstreamName)
			}
		}
	}
	for _, path := range []string{"= /pixel.gif", "= /collect", "/"} {
		if _, ok := locations[path]; !ok {
			t.Errorf("no location %s", path)
		}
	}
	if pixel, ok := locations["= /pixel.gif"]; ok {
		if directiveArgs(pixel.Block, "proxy_buffering") != "off" {
			t.Error("location = /pixel.gif buffers the response: proxy_buffering off")
		}
		fallback := ""
		for _, ep := range nginxFind(pixel.Block, "error_page") {
			fallback = ep.Args[len(ep.Args)-1]
		}
		if gif, ok := locations[fallback]; !ok || len(nginxFind(gif.Block, "empty_gif")) == 0 {
			t.Errorf("location = /pixel.gif has no error_page to an empty_gif location (got %q): an unreachable collector shows a broken image", fallback)
		}
	}
	// error_page is inherited only by locations that have none of their own:
	// every proxying location must still turn 413 into the JSON error and
	// an unreachable upstream into something honest.
	errorCodes := func(ds []nginxDirective) map[string]bool {
		codes := map[string]bool{}
		for _, ep := range nginxFind(ds, "error_page") {
			for _, a := range ep.Args {
				codes[a] = true
			}
		}
		return codes
	}
	serverCodes := errorCodes(server.Block)
	for key, loc := range locations {
		if len(nginxFind(loc.Block, "proxy_pass")) == 0 {
			continue
		}
		codes := errorCodes(loc.Block)
		if len(codes) == 0 {
			codes = serverCodes
		}
		for _, code := range []string{"413", "502", "504"} {
			if !codes[code] {
				t.Errorf("location %s has no error_page for %s (a location's own error_page lines hide the server's)", key, code)
			}
		}
	}

	// What nginx answers by itself is never a success.
	for key, loc := range locations {
		for _, r := range nginxFind(loc.Block, "return") {
			if strings.HasPrefix(r.Args[0], "2") && key != "= /nginx-health" {
				t.Errorf("location %s answers %s on nginx's own: only the collector may say an event was stored", key, r.Args[0])
			}
		}
	}
	if m, ok := locations["= /metrics"]; ok && len(nginxFind(m.Block, "proxy_pass")) > 0 {
		t.Error("/metrics is proxied to the public")
	}

	// The TLS example exists (and is checked by TestNginxAcceptsTheConfig).
	src := readRepoFile(t, "deploy/nginx.conf")
	if !strings.Contains(src, tlsBegin) || !strings.Contains(src, tlsEnd) {
		t.Errorf("deploy/nginx.conf has no TLS example between %q and %q", tlsBegin, tlsEnd)
	}
}

func directiveArgs(ds []nginxDirective, name string) string {
	found := nginxFind(ds, name)
	if len(found) == 0 {
		return ""
	}
	return strings.Join(found[len(found)-1].Args, " ")
}

const (
	tlsBegin = "# BEGIN TLS EXAMPLE"
	tlsEnd   = "# END TLS EXAMPLE"
)

// upstreamServerHost matches a host name (not an address) in an upstream's
// server line; `nginx -t` resolves those at load time.
var upstreamServerHost = regexp.MustCompile(`(?m)^(\s*server\s+)([A-Za-z][A-Za-z0-9.-]*)(:\d+)`)

// testableNginxConf rewrites the shipped config so that `nginx -t` can load
// it on a machine that is not inside the compose network: the upstream's
// host names ("collector", resolvable only by Docker's DNS) become 127.0.0.1,
// which changes nothing that nginx -t checks. With tls, it also enables the
// TLS example, with a certificate made for the test.
func testableNginxConf(t *testing.T, dir string, tls bool) string {
	t.Helper()
	src := readRepoFile(t, "deploy/nginx.conf")
	out := upstreamServerHost.ReplaceAllString(src, "${1}127.0.0.1${3}")
	if out == src {
		t.Fatal("found no upstream server host name to substitute")
	}
	if tls {
		begin, end := strings.Index(out, tlsBegin), strings.Index(out, tlsEnd)
		if begin < 0 || end < begin {
			t.Fatal("no TLS example block")
		}
		var b strings.Builder
		for _, line := range strings.Split(out[begin+len(tlsBegin):end], "\n") {
			trimmed := strings.TrimLeft(line, " ")
			indent := line[:len(line)-len(trimmed)]
			switch {
			case strings.HasPrefix(trimmed, "## "):
				b.WriteString(indent + "# " + trimmed[3:])
			case strings.HasPrefix(trimmed, "# "):
				b.WriteString(indent + trimmed[2:])
			default:
				b.WriteString(line)
			}
			b.WriteByte('\n')
		}
		block := b.String()
		cert, key := selfSignedPair(t, dir)
		block = regexp.MustCompile(`ssl_certificate\s+\S+;`).ReplaceAllString(block, "ssl_certificate "+cert+";")
		block = regexp.MustCompile(`ssl_certificate_key\s+\S+;`).ReplaceAllString(block, "ssl_certificate_key "+key+";")
		if !strings.Contains(block, "listen 443 ssl") || !strings.Contains(block, cert) || !strings.Contains(block, key) {
			t.Fatalf("the TLS example did not uncomment into a listen/ssl_certificate/ssl_certificate_key block:\n%s", block)
		}
		out = out[:begin] + block + out[end:]
	}
	p := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func selfSignedPair(t *testing.T, dir string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "collect.example.com"},
		DNSNames: []string{"collect.example.com"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

func TestNginxAcceptsTheConfig(t *testing.T) {
	nginx := requireTool(t, "nginx", "nginx -t validates deploy/nginx.conf")
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"as shipped", false}, {"with the TLS example enabled", true}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			conf := testableNginxConf(t, dir, tc.tls)
			// -p: relative paths under the temp dir; -e: nginx's own startup
			// log to stderr instead of its compiled-in log file.
			cmd := exec.Command(nginx, "-t", "-q", "-p", dir+"/", "-c", conf, "-e", "stderr")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				t.Fatalf("nginx -t rejects deploy/nginx.conf (%s): %v\n%s", tc.name, err, out.String())
			}
			if strings.Contains(out.String(), "[emerg]") || strings.Contains(out.String(), "[warn]") {
				t.Fatalf("nginx -t complains about deploy/nginx.conf (%s):\n%s", tc.name, out.String())
			}
		})
	}
}

func TestNginxTestCatchesABrokenConfig(t *testing.T) {
	nginx := requireTool(t, "nginx", "nginx -t validates deploy/nginx.conf")
	dir := t.TempDir()
	conf := testableNginxConf(t, dir, false)
	data, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(data), "proxy_buffering off;", "proxy_buffering sideways;", 1)
	if err := os.WriteFile(conf, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(nginx, "-t", "-q", "-p", dir+"/", "-c", conf, "-e", "stderr").CombinedOutput(); err == nil {
		t.Fatalf("nginx -t accepted an invalid directive value; the check above would not catch a broken config:\n%s", out)
	}
}
