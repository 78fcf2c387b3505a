package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// segmentReadBuffer is the read-ahead of one sealed-segment cursor: what a
// reader of a sealed segment holds in memory, whatever the segment's size.
const segmentReadBuffer = 256 << 10

// segmentReader streams the entries of one sealed segment file in order.
// Reading sealed segments here, rather than through tidwall/wal, keeps a
// reader's memory at its buffer: tidwall loads a whole segment into its cache
// to read one entry of it.
type segmentReader struct {
	path  string
	first uint64 // the segment's first index
	f     *os.File
	br    *bufio.Reader
	size  int64  // file size when opened (sealed segments do not change)
	off   int64  // file offset of the next entry
	index uint64 // index of the next entry
	frame []byte // the last entry read, reused
}

func openSegmentReader(path string, first uint64) (*segmentReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat segment: %w", err)
	}
	return &segmentReader{
		path: path, first: first, f: f, br: bufio.NewReaderSize(f, segmentReadBuffer),
		size: st.Size(), index: first,
	}, nil
}

// next returns the payload of the entry at r.index, verified, and advances.
// The payload is valid until the next call. At the end of the file it returns
// io.EOF; anything else that stops it is a *CorruptionError.
func (r *segmentReader) next() ([]byte, error) {
	if r.off >= r.size {
		return nil, io.EOF
	}
	corrupt := func(reason string) error {
		return &CorruptionError{Segment: r.path, Offset: r.off, Index: r.index, Reason: reason}
	}
	size, err := binary.ReadUvarint(r.br)
	if err != nil {
		return nil, r.readErr(err, corrupt, "unreadable entry length")
	}
	n := int64(uvarintLen(size))
	if size > uint64(r.size-r.off-n) {
		return nil, corrupt(fmt.Sprintf("entry of %d bytes runs past the end of the segment", size))
	}
	if cap(r.frame) < int(size) {
		r.frame = make([]byte, size)
	}
	r.frame = r.frame[:size]
	if _, err := io.ReadFull(r.br, r.frame); err != nil {
		return nil, r.readErr(err, corrupt, "entry cut short")
	}
	payload, err := openFrame(r.frame)
	if err != nil {
		return nil, corrupt(err.Error())
	}
	r.off += n + int64(size)
	r.index++
	return payload, nil
}

func (r *segmentReader) readErr(err error, corrupt func(string) error, reason string) error {
	// A failed read(2) comes back as a *fs.PathError; anything else (EOF
	// inside an entry, a length that overflows) is the file's content.
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		return fmt.Errorf("read %s at offset %d: %w", r.path, r.off, err)
	}
	return corrupt(reason)
}

// skipTo advances to index without verifying the skipped payloads' checksums
// (they are verified whenever they are read).
func (r *segmentReader) skipTo(index uint64) error {
	for r.index < index {
		size, err := binary.ReadUvarint(r.br)
		if err != nil {
			return r.readErr(err, func(reason string) error {
				return &CorruptionError{Segment: r.path, Offset: r.off, Index: r.index, Reason: reason}
			}, "unreadable entry length")
		}
		n := int64(uvarintLen(size))
		if size > uint64(r.size-r.off-n) {
			return &CorruptionError{Segment: r.path, Offset: r.off, Index: r.index,
				Reason: fmt.Sprintf("entry of %d bytes runs past the end of the segment", size)}
		}
		if _, err := r.br.Discard(int(size)); err != nil {
			return fmt.Errorf("skip in %s at offset %d: %w", r.path, r.off, err)
		}
		r.off += n + int64(size)
		r.index++
	}
	return nil
}

func (r *segmentReader) close() error { return r.f.Close() }

func uvarintLen(v uint64) int {
	var buf [binary.MaxVarintLen64]byte
	return binary.PutUvarint(buf[:], v)
}
