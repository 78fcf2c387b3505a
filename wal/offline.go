package wal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Info describes a WAL directory.
type Info struct {
	Dir        string
	Segments   []Segment
	FirstIndex uint64 // LastIndex+1 when empty
	LastIndex  uint64
	Bytes      int64
	Consumers  []ConsumerState
}

// Inspect describes a WAL directory without opening it for writing. A torn
// tail of the last segment (which the next Open cuts) is not counted.
func Inspect(dir string) (Info, error) {
	files, err := listSegments(filepath.Join(dir, segmentsDirName))
	if err != nil {
		return Info{}, fmt.Errorf("inspect %s: %w", dir, err)
	}
	info := Info{Dir: dir, FirstIndex: 1}
	for i, f := range files {
		data, err := os.ReadFile(f.path)
		if err != nil {
			return info, fmt.Errorf("inspect %s: %w", f.path, err)
		}
		good, count, _, _ := parseSegment(data, nil)
		st, _ := os.Stat(f.path)
		seg := Segment{FirstIndex: f.first, LastIndex: f.first + count - 1, Bytes: good, Sealed: i < len(files)-1, Path: f.path}
		if seg.Sealed && st != nil {
			seg.SealedAt = st.ModTime()
		}
		info.Segments = append(info.Segments, seg)
		info.Bytes += int64(len(data))
	}
	if n := len(info.Segments); n > 0 {
		info.FirstIndex = info.Segments[0].FirstIndex
		info.LastIndex = info.Segments[n-1].LastIndex
		if info.LastIndex < info.FirstIndex-1 {
			info.LastIndex = info.FirstIndex - 1
		}
	}
	info.Consumers, err = ReadConsumers(dir)
	return info, err
}

// VerifyReport is what Verify found.
type VerifyReport struct {
	Segments int
	Records  uint64
	Bytes    int64
	Problems []CorruptionError
	// TornTail is set when only the end of the last segment is damaged:
	// the next Open cuts it (after keeping the bytes in quarantine/).
	TornTail bool
}

// OK reports whether every record is intact.
func (r VerifyReport) OK() bool { return len(r.Problems) == 0 }

// Verify checks every record's checksum and the continuity of the segments.
// It reads every byte, does not modify anything, and works on a live WAL.
func Verify(dir string) (VerifyReport, error) {
	var rep VerifyReport
	files, err := listSegments(filepath.Join(dir, segmentsDirName))
	if err != nil {
		return rep, fmt.Errorf("verify %s: %w", dir, err)
	}
	rep.Segments = len(files)
	for i, f := range files {
		data, err := os.ReadFile(f.path)
		if err != nil {
			return rep, fmt.Errorf("verify %s: %w", f.path, err)
		}
		rep.Bytes += int64(len(data))
		good, count, problem, _ := parseSegment(data, nil)
		rep.Records += count
		last := i == len(files)-1
		if problem != "" {
			rep.Problems = append(rep.Problems, CorruptionError{Segment: f.path, Offset: good, Index: f.first + count, Reason: problem})
			if last {
				rep.TornTail = len(rep.Problems) == 1
			}
		}
		if !last && files[i+1].first != f.first+count {
			rep.Problems = append(rep.Problems, CorruptionError{Segment: files[i+1].path, Offset: 0,
				Reason: fmt.Sprintf("gap: previous segment ends at index %d, this one starts at %d", f.first+count-1, files[i+1].first)})
			rep.TornTail = false
		}
	}
	return rep, nil
}

// Scan calls fn for every intact record with index >= from, in order,
// reading the segment files directly (read-only; safe on a live WAL and on a
// copy from another node). Damage inside a sealed segment is returned as a
// *CorruptionError; an incomplete last entry of the last segment is taken as
// the end of the log, since a live writer may be in the middle of it.
func Scan(ctx context.Context, dir string, from uint64, fn func(Record) error) error {
	files, err := listSegments(filepath.Join(dir, segmentsDirName))
	if err != nil {
		return fmt.Errorf("scan %s: %w", dir, err)
	}
	for i, f := range files {
		if i+1 < len(files) && files[i+1].first <= from {
			continue
		}
		if err := scanSegment(ctx, f, i == len(files)-1, from, fn); err != nil {
			return err
		}
	}
	return nil
}

// scanSegment streams one segment file through fn (from index from on).
func scanSegment(ctx context.Context, f segmentFile, last bool, from uint64, fn func(Record) error) error {
	r, err := openSegmentReader(f.path, f.first)
	if err != nil {
		return fmt.Errorf("scan %s: %w", f.path, err)
	}
	defer r.close()
	if from > f.first {
		if err := r.skipTo(from); err != nil {
			return scanEnd(err, last)
		}
	}
	for {
		payload, err := r.next()
		if err != nil {
			return scanEnd(err, last)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		// Scan's callers may keep Data; the reader reuses its buffer.
		if err := fn(Record{Index: r.index - 1, Data: append([]byte(nil), payload...)}); err != nil {
			return err
		}
	}
}

// scanEnd says whether a stop of the segment reader ends a Scan normally:
// at the end of a file, or at damage in the last segment, which a live
// writer may be in the middle of.
func scanEnd(err error, lastSegment bool) error {
	var corrupt *CorruptionError
	if errors.Is(err, io.EOF) || (lastSegment && errors.As(err, &corrupt)) {
		return nil
	}
	return err
}

// consumerFile is the on-disk form of the consumer registry.
type consumerFile struct {
	Version   int                      `json:"version"`
	Consumers map[string]ConsumerState `json:"consumers"`
}

// ReadConsumers reads the consumer registry of a WAL directory.
func ReadConsumers(dir string) ([]ConsumerState, error) {
	m, err := readConsumerFile(filepath.Join(dir, consumersFileName))
	if err != nil {
		return nil, err
	}
	return sortedConsumers(m), nil
}

func readConsumerFile(path string) (map[string]ConsumerState, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]ConsumerState{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read consumer registry: %w", err)
	}
	var f consumerFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("read consumer registry %s: %w", path, err)
	}
	if f.Consumers == nil {
		f.Consumers = map[string]ConsumerState{}
	}
	for name, c := range f.Consumers {
		c.Name = name
		f.Consumers[name] = c
	}
	return f.Consumers, nil
}

// recoverSegments checks every segment before tidwall/wal sees the directory:
// it cuts a torn tail of the last segment (keeping the bytes in quarantine)
// and refuses damage anywhere else. It returns what the segments hold.
func recoverSegments(dir string, onCut func(path string, offset int64, cut int, reason string)) ([]segMeta, error) {
	segDir := filepath.Join(dir, segmentsDirName)
	files, err := listSegments(segDir)
	if err != nil {
		return nil, err
	}
	metas := make([]segMeta, 0, len(files))
	for i, f := range files {
		data, err := os.ReadFile(f.path)
		if err != nil {
			return nil, fmt.Errorf("read segment: %w", err)
		}
		good, count, problem, _ := parseSegment(data, nil)
		last := i == len(files)-1
		if problem != "" {
			if !last {
				return nil, &CorruptionError{Segment: f.path, Offset: good, Index: f.first + count, Reason: problem}
			}
			if err := quarantineTail(dir, f.path, data, good); err != nil {
				return nil, fmt.Errorf("repair torn tail of %s: %w", f.path, err)
			}
			onCut(f.path, good, len(data)-int(good), problem)
		}
		if !last && files[i+1].first != f.first+count {
			return nil, &CorruptionError{Segment: files[i+1].path, Offset: 0,
				Reason: fmt.Sprintf("gap: previous segment ends at index %d, this one starts at %d", f.first+count-1, files[i+1].first)}
		}
		m := segMeta{first: f.first, count: count, bytes: good, path: f.path}
		if !last {
			if st, err := os.Stat(f.path); err == nil {
				m.sealedAt = st.ModTime()
			} else {
				m.sealedAt = time.Now()
			}
		}
		metas = append(metas, m)
	}
	return metas, nil
}

// quarantineTail moves data[good:] of a segment to quarantine/ and cuts the
// segment file at good. The quarantine copy is durable before the cut.
func quarantineTail(dir, path string, data []byte, good int64) error {
	qdir := filepath.Join(dir, quarantineDirName)
	if err := os.MkdirAll(qdir, 0o750); err != nil {
		return err
	}
	name := fmt.Sprintf("%s-%d-%d.torn", filepath.Base(path), good, time.Now().UnixNano())
	if err := writeFileAtomic(filepath.Join(qdir, name), data[good:], 0o640); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(good)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
