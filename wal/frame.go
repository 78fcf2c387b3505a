package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

const (
	frameVersion    = 1
	frameHeaderSize = 5 // version byte + CRC-32C
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CorruptionError says where a WAL directory is damaged.
type CorruptionError struct {
	Segment string // segment file path
	Offset  int64  // byte offset of the damaged entry in that file
	Index   uint64 // index the damaged entry would have had (0 if unknown)
	Reason  string
}

func (e *CorruptionError) Error() string {
	if e.Index > 0 {
		return fmt.Sprintf("wal corrupt: %s at offset %d (index %d): %s", e.Segment, e.Offset, e.Index, e.Reason)
	}
	return fmt.Sprintf("wal corrupt: %s at offset %d: %s", e.Segment, e.Offset, e.Reason)
}

// appendFrame appends the frame of payload to dst.
func appendFrame(dst, payload []byte) []byte {
	var hdr [frameHeaderSize]byte
	hdr[0] = frameVersion
	binary.LittleEndian.PutUint32(hdr[1:], crc32.Checksum(payload, castagnoli))
	dst = append(dst, hdr[:]...)
	return append(dst, payload...)
}

var errShortFrame = errors.New("frame shorter than its header")

// openFrame checks a frame and returns its payload (a sub-slice of frame).
func openFrame(frame []byte) ([]byte, error) {
	if len(frame) < frameHeaderSize {
		return nil, errShortFrame
	}
	if frame[0] != frameVersion {
		return nil, fmt.Errorf("unknown frame version %d", frame[0])
	}
	payload := frame[frameHeaderSize:]
	if want, got := binary.LittleEndian.Uint32(frame[1:]), crc32.Checksum(payload, castagnoli); want != got {
		return nil, fmt.Errorf("checksum mismatch (stored %08x, computed %08x)", want, got)
	}
	return payload, nil
}

// entrySize is the number of bytes tidwall/wal uses for an entry of n bytes.
func entrySize(n int) int64 {
	var buf [binary.MaxVarintLen64]byte
	return int64(binary.PutUvarint(buf[:], uint64(n)) + n)
}

// parseSegment walks the entries of one segment file's contents. It calls fn
// with each entry's offset and verified payload, and stops at the first entry
// that is incomplete or fails its checksum, returning the offset where the
// good entries end and a description of the problem ("" if none).
func parseSegment(data []byte, fn func(offset int64, payload []byte) error) (good int64, count uint64, problem string, err error) {
	pos := 0
	for pos < len(data) {
		size, n := binary.Uvarint(data[pos:])
		if n <= 0 {
			return int64(pos), count, "unreadable entry length", nil
		}
		if uint64(len(data)-pos-n) < size {
			return int64(pos), count, fmt.Sprintf("entry of %d bytes cut short at %d bytes", size, len(data)-pos-n), nil
		}
		frame := data[pos+n : pos+n+int(size)]
		payload, ferr := openFrame(frame)
		if ferr != nil {
			return int64(pos), count, ferr.Error(), nil
		}
		if fn != nil {
			if err := fn(int64(pos), payload); err != nil {
				return int64(pos), count, "", err
			}
		}
		pos += n + int(size)
		count++
	}
	return int64(pos), count, "", nil
}
