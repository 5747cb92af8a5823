package syncer

import (
	"context"
	"errors"

	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/syncer/apply"
	"github.com/replicaof/replicaof/syncer/replica"
)

// Class says what an error means for sync (docs/semantics.md, Errors).
type Class int

// Error classes.
const (
	// Retry: connection-level trouble; retry with backoff and resume by
	// partial resync when the source still has the backlog.
	Retry Class = iota
	// FullResync: the source can only continue by a full resync, which
	// forces flush + full resync of every source.
	FullResync
	// Fatal: stop sync for everyone and keep the error on the source
	// (authentication, cross-slot, out-of-memory, a rejected payload).
	Fatal
)

func (c Class) String() string {
	return [...]string{"retry", "full-resync", "fatal"}[c]
}

// ErrNeedFullResync means sync can only go on by a flush and full resync of
// every source.
var ErrNeedFullResync = errors.New("syncer: full resync of all sources required")

// Classify maps an error from a link or the applier to its class.
func Classify(err error) Class {
	switch {
	case isTLSFailure(err), errors.Is(err, ErrSnapshotLoop), errors.Is(err, replica.ErrSpool):
		return Fatal
	case errors.Is(err, ErrNeedFullResync), errors.Is(err, replica.ErrFullResync),
		errors.Is(err, apply.ErrCheckpointLost):
		return FullResync
	case errors.Is(err, replica.ErrAuth),
		errors.Is(err, apply.ErrCrossSlot),
		errors.Is(err, apply.ErrOOM),
		errors.Is(err, apply.ErrRejected),
		errors.Is(err, errFatalConfig):
		return Fatal
	case errors.Is(err, pool.ErrShardDown), errors.Is(err, context.DeadlineExceeded):
		// The destination is unreachable: retry; the link resumes.
		return Retry
	}
	switch replica.Classify(err) {
	case replica.Retry:
		return Retry
	case replica.FullResync:
		return FullResync
	}
	return Fatal
}
