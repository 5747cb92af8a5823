package apply

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strconv"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/resp"
)

// batch is a run of commands for one (shard, db), sent as one pipeline.
// Commands are encoded straight into buf with begin/bulk/.../end; seal
// points each Call at its bytes. A batch is reused after its replies were
// checked.
//
// In checkpoint mode a stream batch is one MULTI … EXEC on the shard's
// db-0 connection that carries the checkpoint (checkpoint.go); cur is the
// database its commands currently address.
type batch struct {
	shard, db int
	cur       int    // database selected inside the batch (checkpoint mode)
	keyless   bool   // holds a keyless command (FLUSHALL…): rewrite the marker
	seq       uint64 // distinguishes reuses of the same batch
	ordered   bool   // must wait for the shard's earlier batches (snapshot)
	// On a cluster (cluster.go): slot is the slot of a slot transaction
	// (-1 otherwise); pipe marks a plain pipeline of any slots of group
	// shard (snapshot, checkpoint refreshes); pre holds a transaction's
	// fence guard calls.
	slot int
	pipe bool
	pre  []*pool.Call
	ctr  *redirects // counts what a cluster made it send again

	buf    []byte
	starts []int // offset of each command in buf
	execs  []execMark
	calls  []*pool.Call
	store  []pool.Call
	left   int // arguments still owed by the command begin started
}

// execMark ties an EXEC to the commands it queued, so an error inside
// its reply array can be traced to the command that caused it.
type execMark struct {
	exec, first int // call index of EXEC and of the first queued command
}

func (b *batch) reset(shard, db int) {
	b.shard, b.db, b.cur = shard, db, db
	b.ordered, b.keyless = false, false
	b.slot, b.pipe = -1, false
	b.left = 0
	b.buf = b.buf[:0]
	b.starts = b.starts[:0]
	b.execs = b.execs[:0]
}

// use makes the batch's next commands address db, with an inline SELECT
// when it addressed another.
func (b *batch) use(db int) *batch {
	if b.cur != db {
		b.commandString("SELECT", strconv.Itoa(db))
		b.cur = db
	}
	return b
}

// Len is the number of commands.
func (b *batch) Len() int { return len(b.starts) }

// Size is the number of bytes encoded.
func (b *batch) Size() int { return len(b.buf) }

func (b *batch) begin(nargs int) {
	b.mustBeComplete()
	b.starts = append(b.starts, len(b.buf))
	b.buf = resp.AppendArray(b.buf, nargs)
	b.left = nargs
}

// mustBeComplete guards the encoder: a command must get exactly the
// arguments its header announced.
func (b *batch) mustBeComplete() {
	if b.left != 0 {
		panic(fmt.Sprintf("apply: command encoded with %d arguments missing", b.left))
	}
}

func (b *batch) bulk(p []byte) {
	b.buf = resp.AppendBulk(b.buf, p)
	b.left--
}

func (b *batch) str(s string) {
	b.buf = resp.AppendBulkString(b.buf, s)
	b.left--
}

func (b *batch) int(n int64) {
	var tmp [20]byte
	b.bulk(strconv.AppendInt(tmp[:0], n, 10))
}

func (b *batch) uint(n uint64) {
	var tmp [20]byte
	b.bulk(strconv.AppendUint(tmp[:0], n, 10))
}

// float writes a score the way ZADD reads it back exactly.
func (b *batch) float(f float64) {
	switch {
	case math.IsInf(f, 1):
		b.str("inf")
	case math.IsInf(f, -1):
		b.str("-inf")
	default:
		var tmp [32]byte
		b.bulk(strconv.AppendFloat(tmp[:0], f, 'g', -1, 64))
	}
}

// command appends one whole command.
func (b *batch) command(args [][]byte) {
	b.mustBeComplete()
	b.starts = append(b.starts, len(b.buf))
	b.buf = resp.AppendCommand(b.buf, args...)
}

// commandString appends one whole command of string arguments.
func (b *batch) commandString(args ...string) {
	b.mustBeComplete()
	b.starts = append(b.starts, len(b.buf))
	b.buf = resp.AppendCommandString(b.buf, args...)
}

// markExec records that the last command is an EXEC whose queued
// commands start at call index first.
func (b *batch) markExec(first int) {
	b.execs = append(b.execs, execMark{exec: b.Len() - 1, first: first})
}

// seal points a Call at every command and returns them.
func (b *batch) seal() []*pool.Call {
	b.mustBeComplete()
	n := b.Len()
	if cap(b.store) < n {
		b.store = make([]pool.Call, n)
		b.calls = make([]*pool.Call, n)
		for i := range b.store {
			b.calls[i] = &b.store[i]
		}
	}
	b.store, b.calls = b.store[:n], b.calls[:n]
	for i, start := range b.starts {
		end := len(b.buf)
		if i+1 < n {
			end = b.starts[i+1]
		}
		b.store[i].Req = b.buf[start:end:end]
		b.calls[i] = &b.store[i]
	}
	return b.calls
}

// send pipelines the batch to its backend and checks every reply.
func (b *batch) send(ctx context.Context, d *destination.Destination) error {
	switch {
	case b.slot >= 0:
		return b.sendTx(ctx, d, 0, notRedirect, destination.Redirect{})
	case b.pipe:
		return b.sendPipeline(ctx, d)
	}
	calls := b.seal()
	if len(calls) == 0 {
		return nil
	}
	epoch, err := d.FenceEpoch()
	if err != nil {
		return err
	}
	if epoch > 0 && bytes.HasPrefix(b.buf, multiReq) {
		return b.sendGuarded(ctx, d, calls, epoch)
	}
	d.Backend(b.shard, b.db).Pipeline(ctx, calls)
	return b.check(d)
}

// check returns the first failure among the batch's calls: a transport
// error (wrapping pool.ErrShardDown and the like), or a *WriteError for
// an error reply, including one inside an EXEC reply.
func (b *batch) check(d *destination.Destination) error {
	ex := 0
	for i, c := range b.calls {
		if c.Err != nil {
			return fmt.Errorf("apply: shard %d (%s) db %d: %w", b.shard, d.Addr(b.shard), b.db, c.Err)
		}
		if e := resp.ReplyError(c.Reply); e != nil {
			return d.Refused(b.shard, b.db, c.Req, e.Error())
		}
		for ex < len(b.execs) && b.execs[ex].exec < i {
			ex++
		}
		if ex < len(b.execs) && b.execs[ex].exec == i {
			if err := b.checkExec(d, c.Reply, b.execs[ex]); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *batch) checkExec(d *destination.Destination, reply []byte, m execMark) error {
	if len(reply) == 0 || reply[0] != resp.TypeArray {
		return d.Refused(b.shard, b.db, b.calls[m.exec].Req, "unexpected EXEC reply "+strconv.Quote(string(reply)))
	}
	v, _, err := resp.ParseValue(reply, resp.Limits{})
	if err != nil {
		return d.Refused(b.shard, b.db, b.calls[m.exec].Req, err.Error())
	}
	if v.Null {
		return d.Refused(b.shard, b.db, b.calls[m.exec].Req, "EXEC aborted")
	}
	for j, e := range v.Elems {
		if e.Type == resp.TypeError || e.Type == resp.TypeBlobError {
			req := b.calls[m.exec].Req
			if k := m.first + j; k < m.exec {
				req = b.calls[k].Req
			}
			return d.Refused(b.shard, b.db, req, string(e.Str))
		}
	}
	return nil
}

func appendInt(dst []byte, n int64) []byte { return strconv.AppendInt(dst, n, 10) }
