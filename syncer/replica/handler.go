package replica

import (
	"context"
	"io"
)

// Handler receives what one link produces, in order. Calls are made from
// one goroutine (the one running Link.Run), never concurrently; ctx is
// Run's and ends when the link stops.
//
// A Handler error ends the Run; Run returns it wrapped with ErrHandler.
type Handler interface {
	// FullSync is called when the source starts a full resynchronization.
	// rdb yields exactly the RDB payload (either transfer form) and ends
	// with io.EOF; the handler must read it to the end before returning.
	// size is the payload length, or -1 for a diskless transfer. offset is
	// the replication offset the stream that follows starts at. If the
	// link breaks meanwhile, rdb returns that error (not io.EOF) and Run
	// returns an error wrapping ErrFullResync.
	FullSync(ctx context.Context, replID string, offset int64, size int64, rdb io.Reader) error
	// Continue is called when the source accepted a partial
	// resynchronization: the stream goes on from offset. The source sends
	// no SELECT first: the database selected before the cut still holds.
	Continue(ctx context.Context, replID string, offset int64) error
	// Apply receives stream commands in source order. Args alias link
	// buffers valid only during the call. PING and REPLCONF are not passed
	// on; they still advance the offset (so the last Command's Offset may
	// be lower than the link's offset). A MULTI ... EXEC block may span
	// several calls. The link acknowledges to the source only what Apply
	// has returned from.
	Apply(ctx context.Context, cmds []Command) error
}

// Command is one command of the replication stream.
type Command struct {
	// Args are the command name and its arguments, as sent (the name's
	// case varies: "ping" vs "PING"; compare case-insensitively).
	Args [][]byte
	// Offset is the replication offset just after this command.
	Offset int64
}
