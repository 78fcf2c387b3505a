package wal_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/evothesis/collector/wal"
)

// FuzzRecovery damages the tail of a WAL (truncation at any point, then
// arbitrary garbage) and checks that Open repairs it: every record before the
// damage is intact, nothing after it is invented, and appends continue at the
// next index.
func FuzzRecovery(f *testing.F) {
	f.Add(uint16(0), []byte{})
	f.Add(uint16(3), []byte{0xff, 0xff, 0xff})
	f.Add(uint16(40), []byte{0x05, 1, 2, 3, 4, 5, 6})
	f.Add(uint16(1000), []byte("garbage"))
	f.Fuzz(func(t *testing.T, cut uint16, garbage []byte) {
		dir := t.TempDir()
		l, err := wal.Open(context.Background(), wal.Options{Dir: dir, Sync: wal.SyncNever, SegmentBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		const n = 20
		for i := 0; i < n; i++ {
			if _, err := l.Append(context.Background(), [][]byte{payload(i)}); err != nil {
				t.Fatal(err)
			}
		}
		l.Close()
		seg := filepath.Join(dir, "segments", "00000000000000000001")
		st, _ := os.Stat(seg)
		size := st.Size() - int64(cut)%st.Size()
		if err := os.Truncate(seg, size); err != nil {
			t.Fatal(err)
		}
		fh, _ := os.OpenFile(seg, os.O_APPEND|os.O_WRONLY, 0)
		fh.Write(garbage)
		fh.Close()

		l, err = wal.Open(context.Background(), wal.Options{Dir: dir, Sync: wal.SyncNever, SegmentBytes: 1 << 20})
		if err != nil {
			t.Fatalf("open after damage: %v", err)
		}
		defer l.Close()
		recs, err := l.Read(1, 1000, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Garbage may happen to form valid frames only if it carries a
		// correct CRC-32C; anything past the original records must then be
		// a well-formed frame, which is what the checksum is for.
		for i, r := range recs {
			if i < n && !bytes.Equal(r.Data, payload(i)) {
				t.Fatalf("record %d changed by recovery", i+1)
			}
		}
		next, err := l.Append(context.Background(), [][]byte{[]byte("after")})
		if err != nil || next != uint64(len(recs)+1) {
			t.Fatalf("append after recovery = %d, %v; want %d", next, err, len(recs)+1)
		}
		if rep, err := wal.Verify(dir); err != nil || !rep.OK() {
			t.Fatalf("verify after recovery: %+v, %v", rep, err)
		}
	})
}
