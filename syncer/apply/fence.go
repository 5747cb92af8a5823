package apply

// Fencing: with a lease (syncer/lease.go), only the instance holding it
// may write. Two guards:
//
//   - Every write first asks the Fence (destination.Destination.SetFence) whether the
//     lease is certainly still held, by the monotonic clock; when it is
//     not, nothing is sent and the write fails with ErrFenced.
//   - Every MULTI … EXEC (the stream's transactions, which carry the
//     checkpoints, and the cross-shard write-backs) is sent as
//
//     [SELECT 0] WATCH __replicaof:fence
//     EVAL <guard> 1 __replicaof:fence <epoch>
//     [SELECT db] MULTI … EXEC
//
//     where the guard rewrites the fence key (with its own value) when it
//     holds a higher epoch than ours, which aborts our EXEC (a watched
//     key was modified). An instance that took the lease over raises the
//     fence key of every shard to its epoch before its first write, so a
//     deposed instance that was paused past its lease and resumes
//     mid-batch gets its transactions refused by the destination itself,
//     whatever its clock says.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/resp"
)

// FenceKey holds, on every shard (db 0), the highest lease epoch that
// wrote there. On a cluster destination every slot has its own,
// FenceKey{SlotTag(slot)} (cluster.go), guarding that slot's
// transactions.
const FenceKey = destination.KeyPrefix + "fence"

// ErrFenced means this instance does not (certainly) hold the
// destination's lease: it must not write.
var ErrFenced = errors.New("apply: fenced: this instance does not hold the destination's lease")

// restoreCommands appends, for shard 0, the fence's Restore commands
// (destination.Fence).
func restoreCommands(d *destination.Destination, b *batch, shard int) {
	if shard != 0 {
		return
	}
	f := d.Fence()
	if f == nil {
		return
	}
	for _, c := range f.Restore() {
		b.commandString(c...)
	}
}

// guardScript refuses a stale epoch: it touches the watched fence key
// (same value) so that the EXEC that follows aborts.
const guardScript = `local v = tonumber(redis.call('GET', KEYS[1]) or '0')
if v > tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], tostring(v))
  return redis.error_reply('FENCED epoch ' .. ARGV[1] .. ' is older than ' .. v)
end
return 1`

// raiseScript raises the fence key to ARGV[1] and answers 0, or answers
// the key's epoch when it is newer.
const raiseScript = `local v = tonumber(redis.call('GET', KEYS[1]) or '0')
if v > tonumber(ARGV[1]) then return v end
redis.call('SET', KEYS[1], ARGV[1])
return 0`

var multiReq = resp.AppendCommandString(nil, "MULTI")

// StaleEpochError is RaiseFence's error when a shard holds a newer epoch.
type StaleEpochError struct {
	Shard  int
	Epoch  int64 // the one refused
	Newest int64 // the shard's
}

func (e *StaleEpochError) Error() string {
	return fmt.Sprintf("apply: fenced: shard %d holds epoch %d, newer than %d", e.Shard, e.Newest, e.Epoch)
}

func (e *StaleEpochError) Unwrap() error { return ErrFenced }

// RaiseFence sets the fence key of every shard to epoch unless one holds
// a newer one (then a *StaleEpochError): a new lease holder calls it
// before its first write.
func RaiseFence(ctx context.Context, d *destination.Destination, epoch int64) error {
	if d.Cluster() {
		return raiseSlotFences(ctx, d, epoch)
	}
	return d.Each(func(shard int) error {
		reply, err := d.DoUnfenced(ctx, shard, 0, "EVAL", raiseScript, "1", FenceKey, strconv.FormatInt(epoch, 10))
		if err != nil {
			return err
		}
		v, _, err := resp.ParseValue(reply, resp.Limits{})
		if err != nil || v.Type != resp.TypeInteger {
			return fmt.Errorf("apply: shard %d (%s): unexpected fence reply %q", shard, d.Addr(shard), reply)
		}
		if v.Int != 0 {
			return &StaleEpochError{Shard: shard, Epoch: epoch, Newest: v.Int}
		}
		return nil
	})
}

// sendGuarded sends a batch that starts with MULTI behind the epoch guard.
func (b *batch) sendGuarded(ctx context.Context, d *destination.Destination, calls []*pool.Call, epoch int64) error {
	var pre []*pool.Call
	add := func(args ...string) *pool.Call {
		c := &pool.Call{Req: resp.AppendCommandString(nil, args...)}
		pre = append(pre, c)
		return c
	}
	if b.db != 0 {
		add("SELECT", "0")
	}
	add("WATCH", FenceKey)
	guard := add("EVAL", guardScript, "1", FenceKey, strconv.FormatInt(epoch, 10))
	if b.db != 0 {
		add("SELECT", strconv.Itoa(b.db))
	}
	all := append(pre, calls...)
	d.Backend(b.shard, b.db).Pipeline(ctx, all)
	for _, c := range pre {
		if c.Err != nil {
			return fmt.Errorf("apply: shard %d (%s): %w", b.shard, d.Addr(b.shard), c.Err)
		}
	}
	if e := resp.ReplyError(guard.Reply); e != nil {
		if bytes.Contains(guard.Reply, []byte("FENCED")) {
			return fmt.Errorf("%w: shard %d (%s): %v", ErrFenced, b.shard, d.Addr(b.shard), e)
		}
		return d.Refused(b.shard, 0, guard.Req, e.Error())
	}
	err := b.check(d)
	if err != nil && len(b.execs) > 0 {
		if last := b.calls[b.execs[len(b.execs)-1].exec]; bytes.Equal(last.Reply, []byte("*-1\r\n")) {
			// The guard passed but a newer epoch was written before EXEC.
			return fmt.Errorf("%w: shard %d (%s): transaction aborted by a newer lease epoch", ErrFenced, b.shard, d.Addr(b.shard))
		}
	}
	return err
}
