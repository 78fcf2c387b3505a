package shipper

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// spool lets destinations that export the same object (a client's bucket
// and its share of the backup: same unit, site, hour, format and
// compression, hence the same bytes) encode it once. The first destination
// to reach the object leads: it encodes the object into a spool file, then
// uploads the file; the others upload that file instead of encoding it
// again. Encoding and compression are most of the shipper's CPU, so with
// two destinations this halves it.
//
// The spool is only a cache: nothing is acknowledged because of it. Each
// destination still uploads (conditionally, under its own deterministic
// key), checks the bytes stored against the SHA-256 the leader computed,
// and advances its own position only after its own upload. A destination
// that finds no usable entry (a leader that failed, a restart: the
// directory is emptied at start, a spool over its byte budget) encodes the
// object itself, as without a spool.
//
// An entry is removed once every destination expected to use it has used
// it or moved past its unit (sweep), so it holds at most the compressed
// objects of the units between the slowest and the fastest destination,
// and never more than maxBytes (beyond that, objects are not spooled).
type spool struct {
	dir      string
	maxBytes int64

	mu      sync.Mutex
	entries map[string]*spoolEntry
	bytes   int64 // of complete entries
	seq     uint64
}

// spoolEntry is one shared object.
type spoolEntry struct {
	sig  string
	path string
	last uint64        // the unit's last WAL index
	done chan struct{} // closed when the leader finished, well or not

	// Set before done is closed.
	ok     bool
	size   int64
	sha256 string

	users map[string]bool // destinations (besides the leader) still to use it; under spool.mu
}

// defaultSpoolBytes bounds the spool's disk use.
const defaultSpoolBytes = 512 << 20

func openSpool(dir string, maxBytes int64) (*spool, error) {
	// Entries of an earlier process are not trusted, nor needed: whoever
	// wanted them encodes again.
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("clear export spool %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create export spool %s: %w", dir, err)
	}
	return &spool{dir: dir, maxBytes: maxBytes, entries: map[string]*spoolEntry{}}, nil
}

// claim returns the entry for sig: to follow (lead false) when another
// destination leads it, to lead when this one is first and others will want
// it, nil when the object is not to be spooled (nobody else wants it, or
// the spool is full).
func (s *spool) claim(sig string, last uint64, self string, others []string) (e *spoolEntry, lead bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entries[sig]; e != nil {
		return e, false
	}
	if len(others) == 0 || s.bytes >= s.maxBytes {
		return nil, false
	}
	s.seq++
	e = &spoolEntry{sig: sig, path: filepath.Join(s.dir, strconv.FormatUint(s.seq, 10)+".obj"), last: last,
		done: make(chan struct{}), users: map[string]bool{}}
	for _, o := range others {
		if o != self {
			e.users[o] = true
		}
	}
	s.entries[sig] = e
	return e, true
}

// finish records the leader's result: the entry is usable after a nil err.
func (s *spool) finish(e *spoolEntry, size int64, sum string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		e.ok, e.size, e.sha256 = true, size, sum
		s.bytes += size
	} else {
		s.dropLocked(e)
	}
	close(e.done)
}

// release says that destination name no longer needs e.
func (s *spool) release(e *spoolEntry, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(e.users, name)
	if len(e.users) == 0 {
		s.dropLocked(e)
	}
}

// sweep drops what no destination still expects: position reports a
// destination's WAL position, false when it no longer exists.
func (s *spool) sweep(position func(name string) (uint64, bool)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.entries {
		select {
		case <-e.done:
		default:
			continue // its leader is still writing it
		}
		for name := range e.users {
			if pos, ok := position(name); !ok || pos >= e.last {
				delete(e.users, name)
			}
		}
		if len(e.users) == 0 {
			s.dropLocked(e)
		}
	}
}

func (s *spool) dropLocked(e *spoolEntry) {
	if s.entries[e.sig] != e {
		return
	}
	delete(s.entries, e.sig)
	if e.ok {
		s.bytes -= e.size
	}
	// A follower still uploading it keeps its open file; unlinking is safe.
	_ = os.Remove(e.path)
}

// spoolWriter is where a leader's encoder writes: the spool file, counted
// and hashed on the way.
type spoolWriter struct {
	f *os.File
	h hash.Hash
	n int64
}

func createSpoolFile(e *spoolEntry) (*spoolWriter, error) {
	f, err := os.OpenFile(e.path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create spool file: %w", err)
	}
	return &spoolWriter{f: f, h: sha256.New()}, nil
}

func (w *spoolWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	return n, err
}

func (w *spoolWriter) close() (int64, string, error) {
	err := w.f.Close()
	return w.n, hex.EncodeToString(w.h.Sum(nil)), err
}

// openSpooled opens a complete entry's file for an upload.
func openSpooled(e *spoolEntry) (io.ReadCloser, error) {
	f, err := os.Open(e.path)
	if err != nil {
		return nil, fmt.Errorf("open spool file: %w", err)
	}
	return f, nil
}
