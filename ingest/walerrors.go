package ingest

import (
	"errors"

	"github.com/evothesis/collector/wal"
)

// classifyAppendError maps an Append error to its reason, which decides the
// metric label and the message; every one of them is answered 503 with
// Retry-After.
func classifyAppendError(err error) rejectReason {
	switch {
	case errors.Is(err, wal.ErrFull):
		return reasonWALFull
	case errors.Is(err, wal.ErrFailed):
		return reasonWALFailed
	case errors.Is(err, wal.ErrClosed):
		return reasonWALClosed
	}
	return reasonAppendError
}
