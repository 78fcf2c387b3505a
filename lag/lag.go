package lag

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/evothesis/collector/event"
	"github.com/evothesis/collector/wal"
)

// Report is the lag of every consumer of one node's WAL (the JSON of GET /lag
// and `collector lag --json`).
type Report struct {
	NodeID      string     `json:"node_id"`
	Mode        string     `json:"mode"` // "online" (from a running node) or "offline" (from WAL_DIR)
	GeneratedAt time.Time  `json:"generated_at"`
	WAL         WALInfo    `json:"wal"`
	Consumers   []Consumer `json:"consumers"`
}

// WALInfo describes the WAL the report is about.
type WALInfo struct {
	Dir        string `json:"dir,omitempty"`
	FirstIndex uint64 `json:"first_index"`
	LastIndex  uint64 `json:"last_index"` // the head: last durable index
	Bytes      int64  `json:"bytes"`
	Segments   int    `json:"segments"`
}

// Consumer is one consumer's lag.
type Consumer struct {
	Name string `json:"name"`
	// Position is the last index the consumer has fully processed.
	Position uint64 `json:"position"`
	// PositionSource says where Position comes from: "wal" (the WAL's
	// consumer registry) or what overrode it ("loader" for a running loader,
	// "database" for PostgreSQL's loader_offsets read offline).
	PositionSource string `json:"position_source"`
	Head           uint64 `json:"wal_head"`
	EventsBehind   uint64 `json:"events_behind"`
	BytesBehind    int64  `json:"bytes_behind"` // estimated from segment sizes
	// OldestPendingAt is the received_at of the first event not yet
	// processed; absent when caught up (or when that record cannot be read).
	OldestPendingAt *time.Time `json:"oldest_pending_received_at,omitempty"`
	// OldestPendingAge is GeneratedAt - OldestPendingAt, 0 when caught up.
	OldestPendingAge float64    `json:"oldest_pending_age_seconds"`
	LastSuccess      *time.Time `json:"last_success,omitempty"`
	LastError        string     `json:"last_error,omitempty"`
	LastErrorAt      *time.Time `json:"last_error_at,omitempty"`
}

// Override replaces the WAL registry's state of one consumer with a better
// source's (Source names it in PositionSource).
type Override struct {
	State  wal.ConsumerState
	Source string
}

// build assembles a report. bytesAfter estimates the bytes after an index;
// receivedAt reads the received_at of the record at an index.
func build(nodeID, mode string, now time.Time, info WALInfo, registry []wal.ConsumerState, overrides []Override,
	bytesAfter func(uint64) int64, receivedAt func(uint64) (time.Time, bool)) Report {
	r := Report{NodeID: nodeID, Mode: mode, GeneratedAt: now.UTC(), WAL: info}
	byName := map[string]Override{}
	for _, c := range registry {
		byName[c.Name] = Override{State: c, Source: "wal"}
	}
	for _, o := range overrides {
		if o.Source == "" {
			o.Source = "override"
		}
		if reg, ok := byName[o.State.Name]; ok {
			// Keep what the override does not know.
			if o.State.LastSuccess.IsZero() {
				o.State.LastSuccess = reg.State.LastSuccess
			}
			if o.State.LastError == "" {
				o.State.LastError, o.State.LastErrorAt = reg.State.LastError, reg.State.LastErrorAt
			}
		}
		byName[o.State.Name] = o
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		o := byName[n]
		c := Consumer{Name: n, Position: o.State.Position, PositionSource: o.Source, Head: info.LastIndex, LastError: o.State.LastError}
		if !o.State.LastSuccess.IsZero() {
			t := o.State.LastSuccess.UTC()
			c.LastSuccess = &t
		}
		if !o.State.LastErrorAt.IsZero() {
			t := o.State.LastErrorAt.UTC()
			c.LastErrorAt = &t
		}
		if info.LastIndex > c.Position {
			c.EventsBehind = info.LastIndex - c.Position
			c.BytesBehind = bytesAfter(c.Position)
			if t, ok := receivedAt(c.Position + 1); ok {
				t = t.UTC()
				c.OldestPendingAt = &t
				c.OldestPendingAge = max(0, now.Sub(t).Seconds())
			}
		}
		r.Consumers = append(r.Consumers, c)
	}
	return r
}

// bytesAfterSegments estimates the bytes of records after index from segment
// sizes, assuming records of one segment are of similar size.
func bytesAfterSegments(segs []wal.Segment, index uint64) int64 {
	var total int64
	for _, s := range segs {
		if s.LastIndex < s.FirstIndex || s.LastIndex <= index {
			continue
		}
		if s.FirstIndex > index {
			total += s.Bytes
			continue
		}
		n := s.LastIndex - s.FirstIndex + 1
		total += int64(float64(s.Bytes) * float64(s.LastIndex-index) / float64(n))
	}
	return total
}

func decodeReceivedAt(data []byte) (time.Time, bool) {
	var dec event.Decoder
	var e event.Event
	if err := dec.DecodeRecord(data, &e); err != nil {
		return time.Time{}, false
	}
	return e.ReceivedAt, true
}

// LiveWAL is what Live needs of an open WAL; *wal.Log implements it.
type LiveWAL interface {
	Stats() wal.Stats
	Segments() []wal.Segment
	Consumers() []wal.ConsumerState
	Read(from uint64, max, maxBytes int) ([]wal.Record, error)
	Dir() string
}

var _ LiveWAL = (*wal.Log)(nil)

// StateSource is a consumer that knows its position better than the WAL
// registry does (the loader: PostgreSQL's offset).
type StateSource interface {
	ConsumerState() wal.ConsumerState
}

// PendingSource is a StateSource that also knows the received_at of its
// oldest pending event (the loader reads it anyway), which saves a WAL read.
type PendingSource interface {
	StateSource
	OldestPendingReceivedAt() (time.Time, bool)
}

// Live reports on an open WAL. Sources override the registry for their
// consumers (PositionSource "loader" for a running loader).
func Live(w LiveWAL, nodeID string, sources ...StateSource) Report {
	st := w.Stats()
	segs := w.Segments()
	overrides := make([]Override, 0, len(sources))
	for _, s := range sources {
		overrides = append(overrides, Override{State: s.ConsumerState(), Source: "loader"})
	}
	info := WALInfo{Dir: w.Dir(), FirstIndex: st.FirstIndex, LastIndex: st.LastIndex, Bytes: st.Bytes, Segments: st.Segments}
	bytesAfter := func(i uint64) int64 { return bytesAfterSegments(segs, i) }
	if ba, ok := w.(interface{ BytesAfter(uint64) int64 }); ok {
		bytesAfter = ba.BytesAfter
	}
	pendingKnown := map[uint64]func() (time.Time, bool){}
	for i, s := range sources {
		if p, ok := s.(PendingSource); ok {
			pendingKnown[overrides[i].State.Position+1] = p.OldestPendingReceivedAt
		}
	}
	return build(nodeID, "online", time.Now(), info, w.Consumers(), overrides, bytesAfter, func(i uint64) (time.Time, bool) {
		if f, ok := pendingKnown[i]; ok {
			return f()
		}
		recs, err := w.Read(i, 1, 1)
		if err != nil || len(recs) == 0 {
			return time.Time{}, false
		}
		return decodeReceivedAt(recs[0].Data)
	})
}

var errFound = errors.New("found")

// Offline reports on a WAL directory without opening it for writing (a
// running node's, or a copy). overrides replace registry entries; pass the
// loader's PostgreSQL offset with Source "database" when it can be read.
func Offline(ctx context.Context, dir, nodeID string, overrides ...Override) (Report, error) {
	info, err := wal.Inspect(dir)
	if err != nil {
		return Report{}, fmt.Errorf("inspect WAL %s: %w", dir, err)
	}
	consumers := info.Consumers
	if consumers == nil {
		if consumers, err = wal.ReadConsumers(dir); err != nil {
			return Report{}, fmt.Errorf("read consumers of WAL %s: %w", dir, err)
		}
	}
	wi := WALInfo{Dir: dir, FirstIndex: info.FirstIndex, LastIndex: info.LastIndex, Bytes: info.Bytes, Segments: len(info.Segments)}
	return build(nodeID, "offline", time.Now(), wi, consumers, overrides,
		func(i uint64) int64 { return bytesAfterSegments(info.Segments, i) },
		func(i uint64) (time.Time, bool) {
			var t time.Time
			var ok bool
			err := wal.Scan(ctx, dir, i, func(r wal.Record) error {
				if r.Index == i {
					t, ok = decodeReceivedAt(r.Data)
				}
				return errFound
			})
			if err != nil && !errors.Is(err, errFound) {
				return time.Time{}, false
			}
			return t, ok
		}), nil
}
