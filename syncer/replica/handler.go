package replica

import (
	"context"
	"io"
)

// Handler receives what one link produces, in order. Calls are made from
// one goroutine.
type Handler interface {
	// FullSync is called when the source starts a full resynchronization.
	// rdb yields exactly the RDB payload (either transfer form) and ends
	// with io.EOF; the handler must read it to the end before returning.
	// size is the payload length, or -1 for a diskless transfer.
	FullSync(ctx context.Context, replID string, offset int64, size int64, rdb io.Reader) error
	// Continue is called when the source accepted a partial
	// resynchronization: the stream goes on from offset.
	Continue(ctx context.Context, replID string, offset int64) error
	// Apply receives stream commands in source order. Args alias link
	// buffers valid only during the call. PING and REPLCONF are not passed
	// on; they still advance the offset.
	Apply(ctx context.Context, cmds []Command) error
}

// Command is one command of the replication stream.
type Command struct {
	Args [][]byte
	// Offset is the replication offset just after this command.
	Offset int64
}
