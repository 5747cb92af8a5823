package apply

import (
	"errors"
	"fmt"

	"github.com/replicaof/replicaof/destination"
)

// Sentinel errors. Test for them with errors.Is; the typed errors below
// carry the details.
var (
	// ErrCrossSlot means a replicated command (or a MULTI/EXEC block) touches
	// keys on more than one destination shard and cannot be split. Sync
	// must stop: the destination cannot reproduce it atomically.
	ErrCrossSlot = errors.New("apply: cross-slot command on a sharded destination")
	// ErrRejected means a destination shard answered a replicated write
	// with an error reply (a payload it cannot load, WRONGTYPE, ...).
	ErrRejected = destination.ErrRejected
	// ErrOOM means a destination shard is out of memory (-OOM).
	ErrOOM = destination.ErrOOM
	// ErrUnsupported means the source holds something the destination
	// cannot be given: a module value it cannot RESTORE, a pre-GA function
	// library, a command whose keys cannot be located.
	ErrUnsupported = errors.New("apply: unsupported value or command")
	// ErrTooLarge means a MULTI/EXEC block exceeds Options.MaxBlockBytes.
	ErrTooLarge = errors.New("apply: transaction block over limit")
	// ErrClosed is returned after the Destination was closed.
	ErrClosed = errors.New("apply: destination closed")
)

// CrossSlotError names the command that broke the cross-slot rule. It
// wraps ErrCrossSlot.
type CrossSlotError struct {
	Command string // the command name, or "MULTI" for a block
	Keys    []string
	// Offset is the replication offset just after the command (the EXEC
	// for a block); 0 when not known.
	Offset int64
}

func (e *CrossSlotError) Error() string {
	return fmt.Sprintf("apply: %s: keys %q span destination shards (cross-slot)", e.Command, e.Keys)
}

func (e *CrossSlotError) Unwrap() error { return ErrCrossSlot }

// WriteError reports an error reply from a destination shard
// (destination.WriteError): it wraps ErrOOM for -OOM replies and
// ErrRejected for every other error reply.
type WriteError = destination.WriteError

// Fatal reports whether err must stop sync (cross-slot, rejected write,
// OOM, unsupported data) rather than be retried after reconnecting.
// Connection errors (pool.ErrShardDown) and context cancellation are not
// fatal.
func Fatal(err error) bool {
	return errors.Is(err, ErrCrossSlot) || errors.Is(err, ErrRejected) ||
		errors.Is(err, ErrOOM) || errors.Is(err, ErrUnsupported) || errors.Is(err, ErrTooLarge)
}
