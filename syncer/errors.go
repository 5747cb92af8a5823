package syncer

import (
	"errors"

	"github.com/replicaof/replicaof/internal/errclass"
)

// The syncer's own errors. Like every error of sync, they carry their
// class (internal/errclass), which errclass.Classify reads.
var (
	// ErrNeedFullResync means sync can only go on by a flush and full
	// resync of every source (FullResync).
	ErrNeedFullResync = errclass.New(errclass.FullResync, "syncer: full resync of all sources required")
	// ErrSnapshotLoop means a source kept dropping the link during
	// snapshots (Fatal).
	ErrSnapshotLoop = errclass.New(errclass.Fatal, "syncer: the source keeps dropping the link during the snapshot")
	// ErrNotRunning is returned by control calls when Run is not running.
	ErrNotRunning = errors.New("syncer: supervisor is not running")
)

// errFatalConfig marks a source configuration sync cannot use, e.g. its
// TLS files (Fatal).
var errFatalConfig = errclass.New(errclass.Fatal, "syncer: source configuration")

// SourceError ties an error that ended a sync run to its source: the one
// error type naming a source (a source's error reply is a resp.Error).
type SourceError struct {
	Source string
	Err    error
}

func (e *SourceError) Error() string { return e.Source + ": " + e.Err.Error() }
func (e *SourceError) Unwrap() error { return e.Err }
