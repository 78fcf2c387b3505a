package export

import (
	"bytes"
	"io"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// A small object's stream decodes to the same bytes as a default one, with
// the smaller window in its frame header.
func TestSmallObjectZstdDecodesTheSame(t *testing.T) {
	rows := realisticEvents(300, 9)
	encode := func(opts ...Option) []byte {
		var buf bytes.Buffer
		w, err := NewWriter(&buf, FormatNDJSON, CompressionZstd, metaFor(rows), opts...)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if err := w.Write(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	decode := func(b []byte) []byte {
		d, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		out, err := io.ReadAll(d)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	def, small := encode(), encode(SmallObject())
	if !bytes.Equal(decode(def), decode(small)) {
		t.Fatal("the small object's stream decodes to other bytes")
	}
	var h zstd.Header
	if err := h.Decode(small); err != nil {
		t.Fatal(err)
	}
	if h.WindowSize > smallZstdWindow {
		t.Fatalf("small object's window %d, want at most %d", h.WindowSize, smallZstdWindow)
	}
	if err := h.Decode(def); err != nil || h.WindowSize <= smallZstdWindow {
		t.Fatalf("default window %d (%v)", h.WindowSize, err)
	}
}
