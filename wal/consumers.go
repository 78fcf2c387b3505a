package wal

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// ConsumerState is a consumer's entry in the registry.
type ConsumerState struct {
	Name        string    `json:"-"`
	Position    uint64    `json:"position"` // last index fully processed; 0 = none
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// registry is the durable consumer registry. Commits are written through;
// error reports are written lazily by the maintenance loop.
type registry struct {
	path  string
	mu    sync.Mutex
	m     map[string]ConsumerState
	dirty bool
}

func openRegistry(path string) (*registry, error) {
	m, err := readConsumerFile(path)
	if err != nil {
		return nil, err
	}
	return &registry{path: path, m: m}, nil
}

// persist writes the registry; callers hold r.mu.
func (r *registry) persist() error {
	data, err := json.MarshalIndent(consumerFile{Version: 1, Consumers: r.m}, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(r.path, data, 0o640); err != nil {
		return fmt.Errorf("persist consumer registry: %w", err)
	}
	r.dirty = false
	return nil
}

func (r *registry) flushIfDirty() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.dirty {
		return nil
	}
	return r.persist()
}

func (r *registry) flush() error { return r.flushIfDirty() }

func (r *registry) minPosition() (uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.m) == 0 {
		return 0, false
	}
	first := true
	var min uint64
	for _, c := range r.m {
		if first || c.Position < min {
			min, first = c.Position, false
		}
	}
	return min, true
}

func sortedConsumers(m map[string]ConsumerState) []ConsumerState {
	out := make([]ConsumerState, 0, len(m))
	for name, c := range m {
		c.Name = name
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

var errNoConsumerName = errors.New("consumer name is empty")

// RegisterConsumer adds a consumer (idempotent) and returns its persisted
// state. A new consumer starts at position FirstIndex()-1: it is owed every
// record still in the log, and from then on segments wait for it.
func (l *Log) RegisterConsumer(name string) (ConsumerState, error) {
	if name == "" {
		return ConsumerState{}, errNoConsumerName
	}
	r := l.consumers
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.m[name]; ok {
		c.Name = name
		return c, nil
	}
	c := ConsumerState{Position: l.first.Load() - 1}
	r.m[name] = c
	if err := r.persist(); err != nil {
		delete(r.m, name)
		return ConsumerState{}, err
	}
	l.log.Info("wal consumer registered", "consumer", name, "position", c.Position)
	c.Name = name
	return c, nil
}

// CommitConsumer records that name has fully processed every index up to
// position. It is durable when it returns. Positions may move backwards (a
// consumer re-reading after a restore), but segments already removed do not
// come back.
func (l *Log) CommitConsumer(name string, position uint64) error {
	r := l.consumers
	r.mu.Lock()
	c, ok := r.m[name]
	if !ok {
		r.mu.Unlock()
		return fmt.Errorf("commit consumer %q: not registered", name)
	}
	if last := l.visible.Load(); position > last {
		r.mu.Unlock()
		return fmt.Errorf("commit consumer %q at %d: past the last index %d", name, position, last)
	}
	c.Position, c.LastSuccess = position, time.Now().UTC()
	r.m[name] = c
	err := r.persist()
	r.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case l.maintKick <- struct{}{}:
	default:
	}
	return nil
}

// ReportConsumerError records a consumer's latest failure for `collector lag`.
func (l *Log) ReportConsumerError(name string, err error) {
	if err == nil {
		return
	}
	r := l.consumers
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.m[name]
	if !ok {
		return
	}
	c.LastError, c.LastErrorAt = err.Error(), time.Now().UTC()
	r.m[name] = c
	r.dirty = true
}

// UnregisterConsumer removes a consumer, so segments no longer wait for it.
func (l *Log) UnregisterConsumer(name string) error {
	r := l.consumers
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.m[name]; !ok {
		return nil
	}
	delete(r.m, name)
	return r.persist()
}

// Consumers returns every registered consumer, sorted by name.
func (l *Log) Consumers() []ConsumerState {
	r := l.consumers
	r.mu.Lock()
	defer r.mu.Unlock()
	return sortedConsumers(r.m)
}
