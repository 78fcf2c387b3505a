package shipper

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// FileStore writes objects under a local directory with the same layout as
// a bucket. An object appears whole or not at all: it is written to a hidden
// temporary file in its final directory, fsync'd, linked to its name (which
// fails if the name exists, like If-None-Match) and the directory fsync'd.
type FileStore struct {
	root string
}

// NewFileStore returns a store rooted at dir (created if needed).
func NewFileStore(dir string) (*FileStore, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("export directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("create export directory %s: %w", abs, err)
	}
	return &FileStore{root: abs}, nil
}

func (s *FileStore) String() string { return "file://" + s.root }

func (s *FileStore) path(key string) (string, error) {
	clean := filepath.Clean("/" + key)
	if clean == "/" || strings.Contains(key, "\x00") {
		return "", fmt.Errorf("invalid object key %q", key)
	}
	return filepath.Join(s.root, filepath.FromSlash(clean)), nil
}

// Put implements Store.
func (s *FileStore) Put(ctx context.Context, in PutInput) (PutResult, error) {
	final, err := s.path(in.Key)
	if err != nil {
		return PutResult{}, err
	}
	dir := filepath.Dir(final)
	if err := mkdirAllSync(s.root, dir); err != nil {
		return PutResult{}, fmt.Errorf("create %s: %w", dir, err)
	}
	if _, err := os.Lstat(final); err == nil {
		// Drain the body so the producer finishes; nothing is written.
		_, _ = io.Copy(io.Discard, in.Body)
		return PutResult{}, fmt.Errorf("put %s: %w", in.Key, ErrExists)
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(dir, ".tmp-"+filepath.Base(final)+"-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return PutResult{}, fmt.Errorf("create %s: %w", tmp, err)
	}
	defer os.Remove(tmp)
	hr := newHashingReader(in.Body)
	_, err = io.Copy(f, ctxReader{ctx, hr})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return PutResult{}, fmt.Errorf("write %s: %w", in.Key, err)
	}
	if err := os.Link(tmp, final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return PutResult{}, fmt.Errorf("put %s: %w", in.Key, ErrExists)
		}
		return PutResult{}, fmt.Errorf("link %s: %w", in.Key, err)
	}
	if err := syncDir(dir); err != nil {
		return PutResult{}, fmt.Errorf("fsync %s: %w", dir, err)
	}
	return PutResult{Bytes: hr.n, SHA256: hr.sum()}, nil
}

// Head implements Store. Local files keep no metadata.
func (s *FileStore) Head(ctx context.Context, key string) (ObjectInfo, error) {
	p, err := s.path(key)
	if err != nil {
		return ObjectInfo{}, err
	}
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return ObjectInfo{}, fmt.Errorf("head %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("head %s: %w", key, err)
	}
	return ObjectInfo{Bytes: st.Size()}, nil
}

// Get implements Store.
func (s *FileStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("get %s: %w", key, ErrNotFound)
	}
	return f, err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// mkdirAllSync creates dir and its missing parents below root, fsyncing
// each parent after a child is created so a new partition directory
// survives a crash along with the object in it.
func mkdirAllSync(root, dir string) error {
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir && len(parent) >= len(root) {
		if err := mkdirAllSync(root, parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}
