package export

import (
	"bufio"
	"encoding/csv"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// CSVHeader is the seed's CSV header, exactly.
var CSVHeader = []string{"id", "event_id", "event_type", "session_id", "visitor_id", "site_id", "timestamp", "url", "path", "raw_event_data"}

type csvEncoder struct {
	bw      *bufio.Writer
	w       *csv.Writer
	record  []string
	scratch []byte
	wroteHd bool
}

func newCSVEncoder(out io.Writer) *csvEncoder {
	// csv.Writer makes its own small bufio.Writer when given something that is
	// not one; a larger one saves calls into the compressor.
	bw := bufio.NewWriterSize(out, flushBytes)
	return &csvEncoder{bw: bw, w: csv.NewWriter(bw), record: make([]string, len(CSVHeader))}
}

func (e *csvEncoder) header() error {
	e.wroteHd = true
	return e.w.Write(CSVHeader)
}

func (e *csvEncoder) write(r *Row) error {
	if !e.wroteHd {
		if err := e.header(); err != nil {
			return err
		}
	}
	ev := r.Event
	rec := e.record
	rec[0] = strconv.FormatUint(r.ID, 10)
	rec[1] = validUTF8(ev.EventID)
	rec[2] = validUTF8(ev.EventType)
	rec[3] = validUTF8(ev.SessionID)
	rec[4] = validUTF8(ev.VisitorID)
	rec[5] = validUTF8(ev.SiteID)
	e.scratch = appendTime(e.scratch[:0], ev.Timestamp)
	rec[6] = string(e.scratch)
	rec[7] = validUTF8(ev.URL)
	rec[8] = validUTF8(ev.Path)
	e.scratch = appendRaw(e.scratch[:0], ev.Raw)
	rec[9] = string(e.scratch)
	if err := e.w.Write(rec); err != nil {
		return err
	}
	// csv.Writer reports write errors only at Flush; a broken destination
	// should stop the export at the next buffer, not at the end.
	return e.w.Error()
}

func (e *csvEncoder) close(int) error {
	if !e.wroteHd {
		if err := e.header(); err != nil {
			return err
		}
	}
	e.w.Flush()
	if err := e.w.Error(); err != nil {
		return err
	}
	return e.bw.Flush()
}

// validUTF8 replaces each invalid UTF-8 byte with U+FFFD, exactly as the
// JSON encodings (event.AppendJSONString) do, so that every format holds the
// same text.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for _, r := range s { // ranging yields U+FFFD for each invalid byte
		b.WriteRune(r)
	}
	return b.String()
}

// validUTF8Bytes is validUTF8 for a byte slice; it returns b itself when it
// is valid.
func validUTF8Bytes(b []byte) []byte {
	if utf8.Valid(b) {
		return b
	}
	out := make([]byte, 0, len(b)+8)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		out = utf8.AppendRune(out, r)
		b = b[size:]
	}
	return out
}
