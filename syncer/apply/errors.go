package apply

import (
	"errors"
	"fmt"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/internal/errclass"
	"github.com/replicaof/replicaof/router"
)

// Sentinel errors. Test for them with errors.Is; the typed errors below
// carry the details. Those that stop sync carry errclass.Fatal
// (errclass.IsFatal reports them); ErrCheckpointLost carries FullResync.
var (
	// ErrRejected means a destination shard answered a replicated write
	// with an error reply (a payload it cannot load, WRONGTYPE, ...).
	ErrRejected = destination.ErrRejected
	// ErrOOM means a destination shard is out of memory (-OOM).
	ErrOOM = destination.ErrOOM
	// ErrUnsupported means the source holds something the destination
	// cannot be given: a module value it cannot RESTORE, a pre-GA function
	// library, a command whose keys cannot be located.
	ErrUnsupported = errclass.New(errclass.Fatal, "apply: unsupported value or command")
	// ErrTooLarge means a MULTI/EXEC block exceeds Options.MaxBlockBytes.
	ErrTooLarge = errclass.New(errclass.Fatal, "apply: transaction block over limit")
	// ErrClosed is returned after the Destination was closed.
	ErrClosed = errors.New("apply: destination closed")
)

// CrossSlotError names a replicated command (or a MULTI/EXEC block) whose
// keys are on more than one destination shard and that cannot be split:
// sync must stop, as the destination cannot reproduce it atomically. It
// wraps router.ErrCrossShard.
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

func (e *CrossSlotError) Unwrap() error { return router.ErrCrossShard }

// Class makes a CrossSlotError Fatal (errclass).
func (e *CrossSlotError) Class() errclass.Class { return errclass.Fatal }

// WriteError reports an error reply from a destination shard
// (destination.WriteError): it wraps the reply (a resp.Error) and ErrOOM
// for -OOM replies, ErrRejected for every other error reply.
type WriteError = destination.WriteError
