package wal_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/evothesis/collector/wal"
)

// BenchmarkAppend measures group-committed appends from concurrent writers,
// each appending batches of the given size, with every sync mode.
func BenchmarkAppend(b *testing.B) {
	rec := make([]byte, 600) // a realistic event record
	for i := range rec {
		rec[i] = 'a' + byte(i%26)
	}
	for _, mode := range []wal.SyncMode{wal.SyncAlways, wal.SyncInterval, wal.SyncNever} {
		for _, batch := range []int{1, 10, 100} {
			for _, writers := range []int{1, 64} {
				b.Run(fmt.Sprintf("sync=%s/batch=%d/writers=%d", mode, batch, writers), func(b *testing.B) {
					l, err := wal.Open(context.Background(), wal.Options{Dir: b.TempDir(), Sync: mode, MaxBytes: 64 << 30, MinFreeBytes: 1})
					if err != nil {
						b.Fatal(err)
					}
					defer l.Close()
					records := make([][]byte, batch)
					for i := range records {
						records[i] = rec
					}
					b.ReportAllocs()
					b.SetBytes(int64(len(rec) * batch))
					var wg sync.WaitGroup
					per := b.N/writers + 1
					b.ResetTimer()
					for w := 0; w < writers; w++ {
						wg.Add(1)
						go func() {
							defer wg.Done()
							for i := 0; i < per; i++ {
								if _, err := l.Append(context.Background(), records); err != nil {
									b.Error(err)
									return
								}
							}
						}()
					}
					wg.Wait()
					b.ReportMetric(float64(per*writers*batch)/b.Elapsed().Seconds(), "events/s")
				})
			}
		}
	}
}

func BenchmarkRead(b *testing.B) {
	l, err := wal.Open(context.Background(), wal.Options{Dir: b.TempDir(), Sync: wal.SyncNever})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	rec := make([]byte, 600)
	batch := make([][]byte, 1000)
	for i := range batch {
		batch[i] = rec
	}
	for i := 0; i < 20; i++ {
		l.Append(context.Background(), batch)
	}
	b.ReportAllocs()
	b.SetBytes(600 * 1000)
	for b.Loop() {
		if _, err := l.Read(1, 1000, 0); err != nil {
			b.Fatal(err)
		}
	}
}
