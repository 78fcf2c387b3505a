package shipper

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
)

// Store is one place objects go: an S3 bucket or a local directory. Keys are
// relative to the store's root (the prefix is part of the key).
type Store interface {
	// Put writes the object only if no object has that key (If-None-Match: *
	// on S3, link(2) locally). It reads body to EOF and returns the size and
	// SHA-256 of what it stored. An existing key gives an error wrapping
	// ErrExists, and nothing is overwritten.
	Put(ctx context.Context, in PutInput) (PutResult, error)
	// Head describes an object; an error wrapping ErrNotFound if there is none.
	Head(ctx context.Context, key string) (ObjectInfo, error)
	// Get opens an object for reading.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// String names the store without credentials (s3://bucket, file:///dir).
	String() string
}

// PutInput is one object to write.
type PutInput struct {
	Key             string
	Body            io.Reader
	ContentType     string
	ContentEncoding string
	// Metadata is stored with the object (x-amz-meta-*) where the store
	// keeps metadata; it identifies the unit so that an existing object can
	// be recognised as this unit's after a crash.
	Metadata map[string]string
}

// PutResult is what a successful Put stored.
type PutResult struct {
	Bytes  int64
	SHA256 string // hex
}

// ObjectInfo is what Head tells about an object.
type ObjectInfo struct {
	Bytes    int64
	Metadata map[string]string // nil where the store keeps none
}

var (
	// ErrExists means the key already holds an object (HTTP 412 on S3).
	ErrExists = errors.New("object already exists")
	// ErrNotFound means the key holds no object.
	ErrNotFound = errors.New("object not found")
)

// hashingReader counts and hashes what is read through it.
type hashingReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func newHashingReader(r io.Reader) *hashingReader { return &hashingReader{r: r, h: sha256.New()} }

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if n > 0 {
		h.h.Write(p[:n])
		h.n += int64(n)
	}
	return n, err
}

func (h *hashingReader) sum() string { return hex.EncodeToString(h.h.Sum(nil)) }

// hashObject reads an object whole and returns its size and SHA-256.
func hashObject(ctx context.Context, s Store, key string) (PutResult, error) {
	rc, err := s.Get(ctx, key)
	if err != nil {
		return PutResult{}, err
	}
	defer rc.Close()
	hr := newHashingReader(rc)
	if _, err := io.Copy(io.Discard, hr); err != nil {
		return PutResult{}, err
	}
	return PutResult{Bytes: hr.n, SHA256: hr.sum()}, nil
}
