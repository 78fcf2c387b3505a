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
	"testing/iotest"
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

func TestReadFirstPartReadsUpToTheLimitLikeReadFull(t *testing.T) {
	const limit = 600 << 10
	for _, n := range []int{0, 1, 255 << 10, 256 << 10, limit - 1, limit, limit + 1, 3 * limit} {
		data := bytes.Repeat([]byte("0123456789abcdef"), n/16+1)[:n]
		for name, r := range map[string]io.Reader{
			"whole":    bytes.NewReader(data),
			"one byte": iotest.OneByteReader(bytes.NewReader(data)),
			"half":     iotest.HalfReader(bytes.NewReader(data)),
		} {
			want := make([]byte, limit)
			wn, wantErr := io.ReadFull(bytes.NewReader(data), want)
			got, err := readFirstPart(r, make([]byte, 0, 16), limit)
			if err != wantErr || !bytes.Equal(got, want[:wn]) {
				t.Fatalf("%d bytes, %s reader: got %d bytes, %v; io.ReadFull gives %d, %v", n, name, len(got), err, wn, wantErr)
			}
		}
	}
}
