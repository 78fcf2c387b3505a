package ingest

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestEventIDsAreUUIDv7InOrder(t *testing.T) {
	base := time.Date(2026, 12, 1, 16, 30, 0, 123_456_000, time.UTC)
	tests := []struct {
		name     string
		last     int64       // the generator's state before
		times    []time.Time // receive times, one id each
		wantMs   []int64     // each id's milliseconds
		wantSeqs []int64     // each id's order bits
	}{
		{
			name:     "fresh generator: the receive time",
			times:    []time.Time{base},
			wantMs:   []int64{base.UnixMilli()},
			wantSeqs: []int64{456_000 >> 8},
		},
		{
			name:     "one request's batch: same time, consecutive",
			times:    []time.Time{base, base, base},
			wantMs:   []int64{base.UnixMilli(), base.UnixMilli(), base.UnixMilli()},
			wantSeqs: []int64{456_000 >> 8, 456_000>>8 + 1, 456_000>>8 + 2},
		},
		{
			name:     "a later request moves on to its own time",
			times:    []time.Time{base, base.Add(5 * time.Millisecond)},
			wantMs:   []int64{base.UnixMilli(), base.UnixMilli() + 5},
			wantSeqs: []int64{456_000 >> 8, 456_000 >> 8},
		},
		{
			name:     "an earlier receive time never goes back",
			last:     (base.UnixMilli()+2)<<12 | 7,
			times:    []time.Time{base},
			wantMs:   []int64{base.UnixMilli() + 2},
			wantSeqs: []int64{8},
		},
		{
			name:     "the order bits carry into the next millisecond",
			last:     base.UnixMilli()<<12 | 0xfff,
			times:    []time.Time{base, base},
			wantMs:   []int64{base.UnixMilli() + 1, base.UnixMilli() + 1},
			wantSeqs: []int64{0, 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var g eventIDs
			g.last.Store(tc.last)
			var buf [8]byte
			var prev string
			for i, tm := range tc.times {
				u, err := g.newID(tm, rand.Reader, &buf)
				if err != nil {
					t.Fatal(err)
				}
				var text [36]byte
				encodeUUID(&text, u)
				parsed, err := uuid.Parse(string(text[:]))
				if err != nil || parsed.Version() != 7 || parsed.Variant() != uuid.RFC4122 || parsed.String() != string(text[:]) {
					t.Fatalf("id %s: not a UUIDv7 (%v, version %d, variant %v)", text, err, parsed.Version(), parsed.Variant())
				}
				ms := int64(u[0])<<40 | int64(u[1])<<32 | int64(u[2])<<24 | int64(u[3])<<16 | int64(u[4])<<8 | int64(u[5])
				seq := int64(u[6]&0x0f)<<8 | int64(u[7])
				if ms != tc.wantMs[i] || seq != tc.wantSeqs[i] {
					t.Fatalf("id %d: ms %d seq %d, want ms %d seq %d", i, ms, seq, tc.wantMs[i], tc.wantSeqs[i])
				}
				if string(text[:]) <= prev {
					t.Fatalf("id %s does not sort after %s", text, prev)
				}
				prev = string(text[:])
			}
		})
	}
}

func TestEventIDsUniqueAcrossGoroutines(t *testing.T) {
	var g eventIDs
	now := time.Now()
	const goroutines, each = 4, 2000
	ids := make([][]string, goroutines)
	var wg sync.WaitGroup
	for w := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf [8]byte
			for range each {
				u, err := g.newID(now, rand.Reader, &buf)
				if err != nil {
					t.Error(err)
					return
				}
				var text [36]byte
				encodeUUID(&text, u)
				ids[w] = append(ids[w], string(text[:]))
			}
		}()
	}
	wg.Wait()
	var all []string
	for _, own := range ids {
		if !sort.StringsAreSorted(own) {
			t.Fatal("one goroutine's ids are not in the order it got them")
		}
		all = append(all, own...)
	}
	sort.Strings(all)
	for i := 1; i < len(all); i++ {
		if all[i] == all[i-1] {
			t.Fatalf("id %s given twice", all[i])
		}
	}
}

func TestEventIDWithoutRandomBitsFails(t *testing.T) {
	var g eventIDs
	var buf [8]byte
	if _, err := g.newID(time.Now(), bytes.NewReader([]byte{1, 2, 3}), &buf); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short random source: %v", err)
	}
}
