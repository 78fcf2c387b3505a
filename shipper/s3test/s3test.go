// Package s3test runs a real S3 server (versitygw with its posix backend) on
// loopback over TLS for tests and benchmarks of any package.
//
// It generates a self-signed certificate for 127.0.0.1, starts
// `versitygw --cert --key --keep-alive --port 127.0.0.1:<free> posix <dir>`,
// waits until it answers, and creates buckets. Stop and Start simulate an
// outage on the same port and data directory. The server is killed by
// t.Cleanup. When the binary is missing the test is skipped, unless the CI
// environment variable is set, in which case it fails: CI must exercise the
// real upload path.
package s3test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// TB is the part of testing.TB the harness needs.
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	TempDir() string
	Logf(format string, args ...any)
}

// Server is a running versitygw.
type Server struct {
	Endpoint  string // https://127.0.0.1:PORT
	Region    string
	AccessKey string
	SecretKey string
	CAPEM     []byte // PEM of the self-signed certificate the server presents
	CAFile    string // the same, as a file
	DataDir   string // posix backend root: one directory per bucket

	bin      string
	addr     string
	certFile string
	keyFile  string
	logFile  string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Binary returns the path of versitygw: $VERSITYGW, then $(go env GOPATH)/bin, then $PATH.
func Binary() (string, error) {
	if p := os.Getenv("VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("VERSITYGW=%s: %w", p, err)
		}
		return p, nil
	}
	var candidates []string
	if gp := os.Getenv("GOPATH"); gp != "" {
		candidates = append(candidates, filepath.Join(gp, "bin", "versitygw"))
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		candidates = append(candidates, filepath.Join(string(bytes.TrimSpace(out)), "bin", "versitygw"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		candidates = append(candidates, filepath.Join(home, "go", "bin", "versitygw"))
	}
	for _, c := range candidates {
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return c, nil
		}
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	return "", errors.New("versitygw not found (install: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)")
}

// Start runs a fresh server with the given buckets. Credentials are
// generated; the server dies with the test.
func Start(t TB, buckets ...string) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("s3test: %v (CI is set: the real S3 server is required)", err)
		}
		t.Skipf("s3test: %v", err)
	}
	dir := t.TempDir()
	s := &Server{
		Region: "us-east-1", AccessKey: "s3testroot", SecretKey: "s3testsecret-" + randHex(8),
		DataDir: filepath.Join(dir, "data"), bin: bin,
		certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem"),
		logFile: filepath.Join(dir, "versitygw.log"),
	}
	if err := os.MkdirAll(s.DataDir, 0o755); err != nil {
		t.Fatalf("s3test: %v", err)
	}
	certPEM, keyPEM, err := SelfSignedCert()
	if err != nil {
		t.Fatalf("s3test: certificate: %v", err)
	}
	s.CAPEM, s.CAFile = certPEM, s.certFile
	if err := os.WriteFile(s.certFile, certPEM, 0o600); err != nil {
		t.Fatalf("s3test: %v", err)
	}
	if err := os.WriteFile(s.keyFile, keyPEM, 0o600); err != nil {
		t.Fatalf("s3test: %v", err)
	}
	for _, b := range buckets {
		// The posix backend treats each top-level directory as a bucket.
		if err := os.MkdirAll(filepath.Join(s.DataDir, b), 0o755); err != nil {
			t.Fatalf("s3test: bucket %s: %v", b, err)
		}
	}
	port, err := freePort()
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	s.addr = fmt.Sprintf("127.0.0.1:%d", port)
	s.Endpoint = "https://" + s.addr
	t.Cleanup(func() { _ = s.Stop() })
	if err := s.Restart(); err != nil {
		t.Fatalf("s3test: %v", err)
	}
	return s
}

// Restart starts the server again after Stop (same port, data and credentials).
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(s.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin,
		"--access", s.AccessKey, "--secret", s.SecretKey,
		"--cert", s.certFile, "--key", s.keyFile,
		"--port", s.addr, "--region", s.Region, "--keep-alive", "--quiet",
		"posix", s.DataDir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start versitygw: %w", err)
	}
	logf.Close()
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd = cmd
	deadline := time.Now().Add(20 * time.Second)
	client := s.HTTPClient()
	for {
		select {
		case <-exited:
			s.cmd = nil
			log, _ := os.ReadFile(s.logFile)
			return fmt.Errorf("versitygw exited at start: %s", log)
		default:
		}
		resp, err := client.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("versitygw not ready on %s: %v", s.addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills the server (SIGKILL: an outage, not a shutdown) and waits for
// the port to be released.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	for i := 0; i < 200; i++ {
		if err := syscall.Kill(s.cmd.Process.Pid, 0); err != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.cmd = nil
	return nil
}

// CreateBucket adds a bucket while the server runs.
func (s *Server) CreateBucket(name string) error {
	return os.MkdirAll(filepath.Join(s.DataDir, name), 0o755)
}

// HTTPClient trusts the server's certificate.
func (s *Server) HTTPClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CAPEM)
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
}

// Objects lists the object files of a bucket (relative keys), read from the
// posix backend directly.
func (s *Server) Objects(bucket string) ([]string, error) {
	root := filepath.Join(s.DataDir, bucket)
	var keys []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".sgwtmp" {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		keys = append(keys, filepath.ToSlash(rel))
		return nil
	})
	return keys, err
}

// SelfSignedCert returns a PEM certificate and key valid for 127.0.0.1, ::1 and localhost.
func SelfSignedCert() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "s3test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		DNSNames:    []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}
