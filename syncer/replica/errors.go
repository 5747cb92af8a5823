package replica

import (
	"errors"
	"fmt"
	"strings"

	"github.com/replicaof/replicaof/internal/errclass"
	"github.com/replicaof/replicaof/resp"
)

// Run's errors carry their class (internal/errclass): a supervisor calls
// errclass.Classify on them. ErrHandler is a boundary: a Handler's error
// is classified by the classes it carries, and is Fatal without one.
var (
	// ErrAuth means the source refused our credentials (AUTH failed, or it
	// requires authentication we did not give, or resp.Error.Auth). Fatal:
	// retrying cannot help.
	ErrAuth = errclass.New(errclass.Fatal, "replica: authentication failed")
	// ErrProtocol is wrapped by every *ParseError: the source sent bytes
	// that are not the replication protocol. Retry: a new connection starts
	// a new stream.
	ErrProtocol = errclass.New(errclass.Retry, "replica: protocol error")
	// ErrFullResync means the destination must be resynchronized from
	// scratch: the source refused a partial resynchronization (it answered
	// +FULLRESYNC to PSYNC <replid> <offset>), or the link broke while a
	// snapshot was being loaded. It wraps the cause when there is one.
	// FullResync.
	ErrFullResync = errclass.New(errclass.FullResync, "replica: full resynchronization required")
	// ErrHandler marks an error returned by the Handler; Run wraps it as
	// fmt.Errorf("%w: %w", ErrHandler, err) so callers can tell it from a
	// source-side failure. A boundary (errclass.NewBoundary): the handler's
	// error is classified by the classes it carries, and is Fatal without.
	ErrHandler = errclass.NewBoundary("replica: handler")
	// ErrRunning is returned by Run when the Link is already running.
	ErrRunning = errors.New("replica: link already running")
	// ErrSpool wraps a failure of the spool file (creating, writing or
	// reading it: a missing permission, a full disk). Fatal.
	ErrSpool = errclass.New(errclass.Fatal, "replica: spool")
	// ErrSnapshotDropped is wrapped by every *SnapshotDroppedError.
	ErrSnapshotDropped = errors.New("replica: source dropped the link during the snapshot")
)

// SnapshotDroppedError means the source closed the connection after
// +FULLRESYNC and before the whole snapshot payload had arrived. The usual
// cause is the source's client-output-buffer-limit for replicas: the writes
// it buffers for us during the transfer outgrew it. A supervisor that sees
// several in a row (each one costs a full resynchronization) should stop
// with it rather than loop.
//
// When the snapshot had started to load (Transferred > 0 or Loading),
// Run wraps it in an ErrFullResync error; before that (the source was still
// producing the snapshot) it is returned alone and classifies Retry.
type SnapshotDroppedError struct {
	// Loading is set when the payload had started (FullSync was called).
	Loading bool
	// Transferred is the payload bytes received (all handed to FullSync),
	// Size the payload's size (-1 for a diskless transfer); both are 0
	// unless Loading.
	Transferred, Size int64
	// Spool reports whether a spool was configured (Config.SpoolDir), and
	// SpoolMaxBytes its bound.
	Spool         bool
	SpoolMaxBytes int64
	// Paused reports that the link stopped reading at least once because
	// its queue (and spool) were full.
	Paused bool
	// Err is what the connection failed with (io.EOF, a reset...).
	Err error
}

func (e *SnapshotDroppedError) Error() string {
	var b strings.Builder
	b.WriteString("replica: source dropped the link during the snapshot")
	if e.Loading {
		fmt.Fprintf(&b, " after %d", e.Transferred)
		if e.Size >= 0 {
			fmt.Fprintf(&b, " of %d", e.Size)
		}
		b.WriteString(" bytes")
	} else {
		b.WriteString(" before the payload started")
	}
	fmt.Fprintf(&b, " (%v): its client-output-buffer-limit for replicas is probably too small"+
		" for the writes it buffers while the snapshot is transferred;"+
		` raise it on the source, e.g. CONFIG SET client-output-buffer-limit "replica 0 0 0" (no limit)`+
		` or a larger hard limit ("replica 1gb 512mb 60"); `, e.Err)
	switch {
	case !e.Spool:
		b.WriteString("no spool is configured: with one (state_dir) the link reads ahead to disk instead of making the source buffer")
	case e.Paused:
		fmt.Fprintf(&b, "the spool (%d bytes max) filled up and the link stopped reading: make it larger", e.SpoolMaxBytes)
	default:
		b.WriteString("a spool is configured and the link never stopped reading: the limit is too small for the source's write rate")
	}
	return b.String()
}

func (e *SnapshotDroppedError) Unwrap() []error { return []error{ErrSnapshotDropped, e.Err} }

// sourceReply is the error for the source's error reply e to cmd (PING,
// AUTH, REPLCONF, PSYNC): e wrapped with the command it answered, so
// errors.As finds the resp.Error and its Code. A reply refusing our
// credentials (to AUTH, or any resp.Error.Auth reply) wraps ErrAuth too.
func sourceReply(cmd string, e resp.Error) error {
	err := fmt.Errorf("replica: source answered %s with -%w", cmd, e)
	if cmd == "AUTH" || e.Auth() {
		return fmt.Errorf("%w: %w", ErrAuth, err)
	}
	return err
}

// ParseError reports bytes from the source that break the protocol. It
// wraps ErrProtocol.
type ParseError struct {
	Stage   string // "psync reply", "rdb header", "stream"
	Offset  int64  // stream offset (stage "stream") or byte index after PSYNC
	Msg     string
	Snippet string // up to 32 bytes of the offending input
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("replica: protocol error in %s at %d: %s near %q", e.Stage, e.Offset, e.Msg, e.Snippet)
}

func (e *ParseError) Unwrap() error { return ErrProtocol }

func parseErr(stage string, off int64, msg string, snippet []byte) *ParseError {
	if len(snippet) > 32 {
		snippet = snippet[:32]
	}
	return &ParseError{Stage: stage, Offset: off, Msg: msg, Snippet: string(snippet)}
}
