package wal

import "os"

// WithSyncFunc returns opts with the fsync of the tail segment replaced, to
// inject slow or failing disks.
func WithSyncFunc(opts Options, f func(*os.File) error) Options {
	opts.syncFile = f
	return opts
}
