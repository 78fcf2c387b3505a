package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The record file is text, one acknowledged event per line:
//
//	# collector-bench-record v1 run=<run> target=<url> started=<RFC 3339>
//	<seq>\t<event_id>\t<kind>
//	<seq>\t-\tpixel
//
// A "# ... run=" line applies to the lines after it, so several runs (the two
// halves of a crash test) can share one file. The bench_id of a line is
// "<run>-<seq>".
const recordMagic = "# collector-bench-record v1"

// Recorder appends acknowledged events to a record file. Workers write
// through their own RecordBuffer and only take the lock to hand over 64 KiB
// at a time.
type Recorder struct {
	mu  sync.Mutex
	f   *os.File
	w   *bufio.Writer
	err error
}

// CreateRecord opens path for appending (creating it) and writes a header
// for run.
func CreateRecord(path, run, target string) (*Recorder, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open record: %w", err)
	}
	r := &Recorder{f: f, w: bufio.NewWriterSize(f, 256<<10)}
	fmt.Fprintf(r.w, "%s run=%s target=%s started=%s\n", recordMagic, run, target, time.Now().UTC().Format(time.RFC3339))
	return r, nil
}

func (r *Recorder) write(p []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		_, r.err = r.w.Write(p)
	}
}

// Close flushes and closes the file.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.w.Flush(); err != nil && r.err == nil {
		r.err = err
	}
	if err := r.f.Close(); err != nil && r.err == nil {
		r.err = err
	}
	if r.err != nil {
		return fmt.Errorf("write record: %w", r.err)
	}
	return nil
}

// RecordBuffer is one worker's buffer. Not safe for concurrent use.
type RecordBuffer struct {
	r   *Recorder
	buf []byte
}

// Buffer returns a new worker buffer.
func (r *Recorder) Buffer() *RecordBuffer { return &RecordBuffer{r: r, buf: make([]byte, 0, 80<<10)} }

// Add records the acknowledged events of one request: ids[i] belongs to
// sequence first+i; nil ids are skipped unless the kind is a pixel, which is
// acknowledged without an id.
func (b *RecordBuffer) Add(k Kind, first uint64, ids [][]byte, accepted int) {
	if k == KindPixel {
		if accepted > 0 {
			b.buf = strconv.AppendUint(b.buf, first, 10)
			b.buf = append(b.buf, "\t-\tpixel\n"...)
		}
	} else {
		for i, id := range ids {
			if id == nil {
				continue
			}
			b.buf = strconv.AppendUint(b.buf, first+uint64(i), 10)
			b.buf = append(b.buf, '\t')
			b.buf = append(b.buf, id...)
			b.buf = append(b.buf, '\t')
			b.buf = append(b.buf, kindNames[k]...)
			b.buf = append(b.buf, '\n')
		}
	}
	if len(b.buf) >= 64<<10 {
		b.Flush()
	}
}

// Flush hands the buffer to the recorder.
func (b *RecordBuffer) Flush() {
	if len(b.buf) > 0 {
		b.r.write(b.buf)
		b.buf = b.buf[:0]
	}
}

// RecordedEvent is one acknowledged event.
type RecordedEvent struct {
	BenchID string
	EventID string // empty for pixels
	Kind    Kind
}

// Record is a record file read back.
type Record struct {
	Runs   []string
	Events []RecordedEvent
}

// ReadRecord parses a record file.
func ReadRecord(r io.Reader) (*Record, error) {
	rec := &Record{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	run := ""
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(b) == 0 {
			continue
		}
		if b[0] == '#' {
			if !bytes.HasPrefix(b, []byte(recordMagic)) {
				return nil, fmt.Errorf("record line %d: not a collector bench record header", line)
			}
			for _, f := range strings.Fields(string(b[len(recordMagic):])) {
				if v, ok := strings.CutPrefix(f, "run="); ok {
					run = v
					rec.Runs = appendUnique(rec.Runs, v)
				}
			}
			continue
		}
		if run == "" {
			return nil, fmt.Errorf("record line %d: event before any header", line)
		}
		parts := bytes.Split(b, []byte{'\t'})
		if len(parts) != 3 {
			return nil, fmt.Errorf("record line %d: want 3 tab-separated fields", line)
		}
		seq, err := strconv.ParseUint(string(parts[0]), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("record line %d: bad sequence: %w", line, err)
		}
		k := kindFromName(string(parts[2]))
		if k == numKinds {
			return nil, fmt.Errorf("record line %d: unknown kind %q", line, parts[2])
		}
		ev := RecordedEvent{BenchID: BenchID(run, seq), Kind: k}
		if string(parts[1]) != "-" {
			ev.EventID = string(parts[1])
		} else if k != KindPixel {
			return nil, fmt.Errorf("record line %d: %s event without event_id", line, k)
		}
		rec.Events = append(rec.Events, ev)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read record: %w", err)
	}
	if len(rec.Runs) == 0 {
		return nil, fmt.Errorf("read record: no header (empty or not a record file)")
	}
	return rec, nil
}

// ReadRecordFile reads the record at path.
func ReadRecordFile(path string) (*Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open record: %w", err)
	}
	defer f.Close()
	rec, err := ReadRecord(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rec, nil
}

func kindFromName(s string) Kind {
	for i, n := range kindNames {
		if n == s {
			return Kind(i)
		}
	}
	return numKinds
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}
