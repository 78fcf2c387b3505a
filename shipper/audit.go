package shipper

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"
)

// auditEntry is one line of the audit log (<state dir>/audit.jsonl): what
// was exported, where, when, and how it went.
type auditEntry struct {
	Time        time.Time `json:"time"`
	Kind        string    `json:"kind"` // export, manual_run, destination_removed, resumed, retry_requested
	Run         string    `json:"run_id,omitempty"`
	Destination string    `json:"destination,omitempty"`
	Client      string    `json:"client,omitempty"`
	Store       string    `json:"store,omitempty"`
	Unit        string    `json:"unit,omitempty"`
	FirstIndex  uint64    `json:"first_index,omitempty"`
	LastIndex   uint64    `json:"last_index,omitempty"`
	Objects     int       `json:"objects,omitempty"`
	Events      int       `json:"events,omitempty"`
	Bytes       int64     `json:"bytes,omitempty"`
	Manifest    string    `json:"manifest,omitempty"`
	Result      string    `json:"result,omitempty"`
	Error       string    `json:"error,omitempty"`
	DurationMS  int64     `json:"duration_ms,omitempty"`
}

// auditLog appends JSON lines. It is a record for people, not state the
// shipper recovers from (that is the WAL registry and the plan files), so
// lines are written at once but fsync'd only on close.
type auditLog struct {
	mu sync.Mutex
	f  *os.File
}

func openAuditLog(path string) (*auditLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open export audit log: %w", err)
	}
	return &auditLog{f: f}, nil
}

func (a *auditLog) write(e auditEntry) {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	line, _ := json.Marshal(e)
	line = append(line, '\n')
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return
	}
	_, _ = a.f.Write(line)
}

func (a *auditLog) close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return nil
	}
	err := a.f.Sync()
	if cerr := a.f.Close(); err == nil {
		err = cerr
	}
	a.f = nil
	return err
}
