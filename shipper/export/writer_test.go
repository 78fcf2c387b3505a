package export

import (
	"bytes"
	"errors"
	"io"
	"sync/atomic"
	"testing"
)

// guardedSink fails the test on any write after closed is set.
type guardedSink struct {
	t      *testing.T
	closed atomic.Bool
	n      atomic.Int64
}

func (s *guardedSink) Write(p []byte) (int, error) {
	if s.closed.Load() {
		s.t.Errorf("write of %d bytes after Abort returned", len(p))
	}
	s.n.Add(int64(len(p)))
	return len(p), nil
}

func TestAbortStopsEveryWriteToTheSink(t *testing.T) {
	rows := realisticEvents(3000, 9)
	for _, tc := range []struct {
		f Format
		c Compression
	}{
		{FormatNDJSON, CompressionZstd}, {FormatJSON, CompressionZstd}, {FormatCSV, CompressionZstd},
		{FormatNDJSON, CompressionGzip}, {FormatNDJSON, CompressionNone}, {FormatParquet, CompressionZstd},
	} {
		t.Run(string(tc.f)+"+"+string(tc.c), func(t *testing.T) {
			sink := &guardedSink{t: t}
			w, err := NewWriter(sink, tc.f, tc.c, Metadata{ExportID: "e", EventCount: len(rows)})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rows[:2000] {
				if err := w.Write(r); err != nil {
					t.Fatal(err)
				}
			}
			w.Abort()
			sink.closed.Store(true)
			if err := w.Write(rows[2000]); !errors.Is(err, ErrAborted) {
				t.Errorf("Write after Abort: %v, want ErrAborted", err)
			}
			if err := w.Close(); !errors.Is(err, ErrAborted) {
				t.Errorf("Close after Abort: %v, want ErrAborted", err)
			}
			w.Abort() // again: nothing
			// The pooled compressor it gave back writes a sound object.
			var buf bytes.Buffer
			w, err = NewWriter(&buf, tc.f, tc.c, Metadata{ExportID: "e", EventCount: 10})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rows[:10] {
				if err := w.Write(r); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := Decode(bytes.NewReader(buf.Bytes()), tc.f, tc.c)
			if err != nil || len(got) != 10 {
				t.Fatalf("object after an abort: %d events, %v", len(got), err)
			}
		})
	}
}

// TestAbortAfterAFailedSinkWrite: the sink fails; the error reaches the
// writer's caller, and Abort after it returns the compressor all the same.
func TestAbortAfterAFailedSinkWrite(t *testing.T) {
	pr, pw := io.Pipe()
	pr.CloseWithError(errors.New("upload ended"))
	w, err := NewWriter(pw, FormatNDJSON, CompressionZstd, Metadata{})
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	for _, r := range realisticEvents(5000, 3) {
		if werr = w.Write(r); werr != nil {
			break
		}
	}
	if werr == nil {
		werr = w.Close()
	}
	if werr == nil {
		t.Fatal("no error from a writer whose sink fails")
	}
	w.Abort()
}
