package ingest

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"fmt"
	"mime/multipart"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/evothesis/collector/httpapi"
	"github.com/klauspost/compress/zstd"
)

func compress(t *testing.T, encoding string, data []byte) string {
	t.Helper()
	var buf bytes.Buffer
	var w interface {
		Write([]byte) (int, error)
		Close() error
	}
	switch encoding {
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "deflate":
		w = zlib.NewWriter(&buf) // HTTP "deflate" is the zlib format (RFC 9110)
	case "br":
		w = brotli.NewWriter(&buf)
	case "zstd":
		w, _ = zstd.NewWriter(&buf)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestCollectReadsCompressedBodies(t *testing.T) {
	h := newHarness(t, func(o *Options, ho *httpapi.Options) { o.MaxBodyBytes = 16 << 10; ho.MaxBodyBytes = 16 << 10 })
	event := []byte(`{"eventType":"pageview","siteId":"example-com"}`)
	bomb := []byte(`{"eventType":"pageview","siteId":"example-com","pad":"` + strings.Repeat("a", 1<<20) + `"}`)
	cases := []struct {
		name, encoding, body string
		status               int
		field                string
	}{
		{"gzip", "gzip", compress(t, "gzip", event), 200, ""},
		{"x-gzip", "x-gzip", compress(t, "gzip", event), 200, ""},
		{"deflate", "deflate", compress(t, "deflate", event), 200, ""},
		{"brotli", "br", compress(t, "br", event), 200, ""},
		{"zstd", "zstd", compress(t, "zstd", event), 200, ""},
		{"identity", "identity", string(event), 200, ""},
		{"gzip bomb over MAX_BODY_BYTES once inflated", "gzip", compress(t, "gzip", bomb), 413, "body"},
		{"zstd bomb", "zstd", compress(t, "zstd", bomb), 413, "body"},
		{"corrupt gzip", "gzip", "not gzip at all", 400, "Content-Encoding"},
		{"unknown encoding", "compress", string(event), 415, "Content-Encoding"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.do(request{uri: "/collect", contentType: "application/json", body: c.body, headers: map[string]string{"Content-Encoding": c.encoding}})
			if c.status == 200 {
				checkSeedSuccess(t, r)
				return
			}
			if r.status != c.status || r.decoded["status"] != "error" || r.decoded["field"] != c.field {
				t.Fatalf("status %d %s; want %d field %q", r.status, r.body, c.status, c.field)
			}
		})
	}
	if n := len(h.app.events(t)); n != 6 {
		t.Fatalf("stored %d events, want 6", n)
	}
}

// navigator.sendBeacon(url, formData) sends multipart/form-data.
func TestCollectReadsMultipartForms(t *testing.T) {
	h := newHarness(t)
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, kv := range [][2]string{{"siteId", "example-com"}, {"eventType", "signup"}, {"utm_source", "newsletter"}, {"eventType", "second"}} {
		_ = mw.WriteField(kv[0], kv[1])
	}
	fw, _ := mw.CreateFormFile("upload", "a.txt")
	fmt.Fprint(fw, "file contents are ignored")
	mw.Close()
	checkSeedSuccess(t, h.do(request{uri: "/collect", contentType: mw.FormDataContentType(), body: buf.String()}))
	e := h.app.events(t)[0]
	if e.EventType != "signup" || e.SiteID != "example-com" {
		t.Fatalf("event %+v", e)
	}
	if want := `{"eventType":"signup","siteId":"example-com","attribution":{"utmParams":{"utm_source":"newsletter"}}}`; string(e.Raw) != want {
		t.Fatalf("raw %s, want %s", e.Raw, want)
	}
}
