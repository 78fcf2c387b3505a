package shipper

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/evothesis/collector/shipper/export"
)

// Unit statuses.
const (
	unitPending = "pending"
	unitDone    = "done"
	unitDead    = "dead_lettered"
)

// unit is one planned export: a WAL range whose boundaries are fixed (and
// persisted) before anything is uploaded, so a retry or a restart exports
// exactly the same range under exactly the same keys.
type unit struct {
	ID          string                 `json:"id"`
	First       uint64                 `json:"first_index"`
	Last        uint64                 `json:"last_index"`
	PlannedAt   time.Time              `json:"planned_at"` // export_time of its objects: fixed, so retries write identical bytes
	Status      string                 `json:"status"`
	Attempts    int                    `json:"attempts"`
	LastError   string                 `json:"last_error,omitempty"`
	LastErrorAt time.Time              `json:"last_error_at,omitzero"`
	DeadAt      time.Time              `json:"dead_lettered_at,omitzero"`
	Stored      []export.ManifestEntry `json:"stored,omitempty"` // objects already durable (skipped on retry)
	Events      int                    `json:"events"`

	exporting bool // being exported (destRunner.mu)
}

// destState is what a destination keeps in the shipper state directory.
// The WAL consumer registry holds its position (authoritative); this file
// holds the plan beyond it: units contiguous from position+1.
type destState struct {
	Name     string    `json:"name"`
	LastTick time.Time `json:"last_tick,omitzero"`
	Units    []*unit   `json:"units"`
}

func unitID(node string, first, last uint64) string {
	return fmt.Sprintf("%s-%020d-%020d", export.EscapePartitionValue(node), first, last)
}

func stateFileName(dest string) string {
	return strings.NewReplacer(":", "_", "/", "_", "\\", "_").Replace(dest) + ".json"
}

// loadState reads a destination's plan; a missing file is an empty plan.
func loadState(dir, dest string) (*destState, error) {
	p := filepath.Join(dir, "destinations", stateFileName(dest))
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return &destState{Name: dest}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read shipper state %s: %w", p, err)
	}
	var st destState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("decode shipper state %s: %w", p, err)
	}
	st.Name = dest
	return &st, nil
}

// saveState replaces the file atomically and durably.
func saveState(dir string, st *destState) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode shipper state %s: %w", st.Name, err)
	}
	return writeFileAtomic(filepath.Join(dir, "destinations", stateFileName(st.Name)), data)
}

func writeFileAtomic(p string, data []byte) error {
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}
