package shipper

import (
	"bytes"
	"context"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// A store without conditional writes (501 to If-None-Match): the first
// attempt fails and is retried; later ones check with HEAD and write.
func TestS3StoreFallsBackWhenConditionalWritesAreUnsupported(t *testing.T) {
	var mu sync.Mutex
	objects := map[string][]byte{}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.Method {
		case http.MethodPut:
			if r.Header.Get("If-None-Match") != "" {
				w.WriteHeader(http.StatusNotImplemented)
				io.WriteString(w, `<Error><Code>NotImplemented</Code><Message>no</Message></Error>`)
				return
			}
			body, _ := io.ReadAll(r.Body)
			objects[r.URL.Path] = body
			w.WriteHeader(http.StatusOK)
		case http.MethodHead:
			if _, ok := objects[r.URL.Path]; !ok {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			w.WriteHeader(http.StatusOK)
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	}))
	defer srv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	st, err := NewS3Store(context.Background(), S3Config{Bucket: "b", Endpoint: srv.URL, UsePathStyle: true,
		AccessKey: "a", SecretKey: "s", CAPEM: ca, SDKMaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	put := func() error {
		_, err := st.Put(context.Background(), PutInput{Key: "k/x.json", Body: bytes.NewReader([]byte("hello"))})
		return err
	}
	if err := put(); err == nil || !strings.Contains(err.Error(), "If-None-Match") {
		t.Fatalf("first put: %v", err)
	}
	if err := put(); err != nil {
		t.Fatalf("second put: %v", err)
	}
	if err := put(); err == nil || !strings.Contains(err.Error(), ErrExists.Error()) {
		t.Fatalf("third put should find the object: %v", err)
	}
}
