package apply

// Checkpoints make the stream exactly-once across reconnects and crashes.
//
// Where: one key per (source, shard), Options.Checkpoint.Key (the
// supervisor uses "__replicaof:ckpt:<hash of the source>"), in db 0 of
// every shard; the proxy hides the "__replicaof:" prefix. db 0 rather
// than the batch's db: a restart then reads one key per shard instead of
// scanning every database, and SELECT inside MULTI costs nothing when the
// batch was already in db 0 (the common case).
//
// What: "<fingerprint> <replid> <offset>" (Checkpoint). The fingerprint
// names the source list the data was loaded for, so a changed list never
// resumes. Offset means: this shard holds the effects of every command of
// the source at or below it, and of none above it.
//
// How: in checkpoint mode every Apply sends, per shard, one transaction
// on the shard's db-0 connection:
//
//	MULTI
//	[SELECT n] cmd … [SELECT m] cmd …   the shard's part, db switches inline;
//	                                    the stream's own MULTI/EXEC blocks
//	                                    are flattened into it (Redis does
//	                                    not nest them)
//	[SELECT 0] SET <key> <ckpt>        the Apply's last offset outside an
//	                                    open block
//	[SET __replicaof:marker <v>]        after a keyless command (FLUSHALL…)
//	EXEC
//
// so the data and the checkpoint land together or not at all, whatever
// the moment replicaof dies. Shards an Apply does not touch get a
// checkpoint-only transaction when theirs is over Options.Checkpoint.Every
// old, so the minimum over shards (where a restarted link resumes) keeps
// up with the source. A snapshot writes the FULLRESYNC offset on every
// shard once it is loaded; a crash during a snapshot leaves no checkpoint,
// which forces flush + full sync.
//
// Skipping: the Applier keeps, per shard, the offset that shard is known
// to hold (held). A command, a split part or a MULTI block (at its EXEC
// offset) is not sent to a shard whose held offset is at or beyond it.
// Continue (every partial resync, the first one after a process start
// included) re-reads the shards' checkpoints, which settles transactions
// whose reply was lost; a shard whose checkpoint went backwards, or that
// has none while nothing is known about it, fails with ErrCheckpointLost
// (the supervisor then flushes and fully resyncs). A checkpoint missing
// while the Applier knows what the shard holds is taken for another
// source's replicated FLUSHALL (which deletes every key of the shard) and
// the known offset stays; a shard that restarted empty is caught by the
// supervisor through its run_id and the marker key (Probe).
//
// Cluster mode (cluster.go has the details): the unit is the slot, not
// the shard. The key is "<key>{<router.SlotTag(slot)>}" in every slot
// (16384 per source), held is per slot, each Apply sends one MULTI …
// EXEC per touched slot with that slot's checkpoint (pipelined per
// group), and untouched slots due a refresh get plain pipelined SETs,
// checked at most once per Every (so within 2×Every). A snapshot ends
// with a SET in every slot; Checkpoints returns one entry per slot and
// the supervisor resumes from the lowest. Costs: a stream batch touching
// k slots sends k transactions (MULTI, SET, EXEC each) instead of one per
// shard, a reload reads 16384 keys. As a replicated FLUSHALL/FLUSHDB
// becomes a full resync (ErrClusterFlush), a missing slot checkpoint
// always means lost data (ErrCheckpointLost); a checkpoint that went back
// means a failover lost acknowledged writes of that slot, which Continue
// replays (RewindError) instead of failing.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/internal/errclass"
	"github.com/replicaof/replicaof/resp"
)

// CheckpointPrefix starts every checkpoint key.
const CheckpointPrefix = destination.KeyPrefix + "ckpt:"

// maxCheckpointLen bounds a checkpoint value read back from a shard.
const maxCheckpointLen = 256

var (
	// ErrBadCheckpoint means a checkpoint value does not parse.
	ErrBadCheckpoint = errors.New("apply: malformed checkpoint")
	// ErrCheckpointLost means a shard no longer holds what its checkpoint
	// said (it restarted, or was flushed behind our back): only a flush
	// and full resync of every source repairs it.
	ErrCheckpointLost = errclass.New(errclass.FullResync, "apply: destination shard lost its checkpoint")
)

// Checkpoint is what one shard holds of one source.
type Checkpoint struct {
	Fingerprint string // the source list's definition
	ReplID      string
	Offset      int64 // effects of every command at or below it are on the shard
}

// Append encodes c as "<fingerprint> <replid> <offset>".
func (c Checkpoint) Append(dst []byte) []byte {
	dst = append(dst, c.Fingerprint...)
	dst = append(dst, ' ')
	dst = append(dst, c.ReplID...)
	dst = append(dst, ' ')
	return strconv.AppendInt(dst, c.Offset, 10)
}

// ParseCheckpoint decodes a value written by Append.
func ParseCheckpoint(b []byte) (Checkpoint, error) {
	if len(b) > maxCheckpointLen {
		return Checkpoint{}, fmt.Errorf("%w: %d bytes", ErrBadCheckpoint, len(b))
	}
	fp, rest, ok1 := bytes.Cut(b, []byte{' '})
	id, off, ok2 := bytes.Cut(rest, []byte{' '})
	if !ok1 || !ok2 || len(fp) == 0 || !validID(fp) || !validID(id) || len(id) == 0 {
		return Checkpoint{}, fmt.Errorf("%w: %q", ErrBadCheckpoint, b)
	}
	n, err := strconv.ParseInt(string(off), 10, 64)
	if err != nil || n < 0 || (len(off) > 1 && off[0] == '0') || off[0] == '+' {
		return Checkpoint{}, fmt.Errorf("%w: offset %q", ErrBadCheckpoint, off)
	}
	return Checkpoint{Fingerprint: string(fp), ReplID: string(id), Offset: n}, nil
}

// validID accepts the characters of a fingerprint or replication id.
func validID(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// CheckpointOptions turn checkpoints on (Options.Checkpoint).
type CheckpointOptions struct {
	// Key is the source's checkpoint key (CheckpointPrefix + an id unique
	// in the source list); "" disables checkpoints: batches are sent as
	// plain pipelines and nothing is skipped.
	Key string
	// Fingerprint identifies the source list; no spaces.
	Fingerprint string
	// Every is how old a shard's checkpoint may get before an Apply that
	// does not touch the shard refreshes it (default 1s).
	Every time.Duration
}

// ckptState is the Applier's checkpoint bookkeeping, owned by the
// goroutine calling the Handler methods.
type ckptState struct {
	on     bool
	key    string
	fp     string
	replID string
	held   []int64 // per shard: the offset it is known to hold; -1 unknown
	wrote  []time.Time
	val    []byte
}

func (c *ckptState) init(a *Applier) {
	o := a.opts.Checkpoint
	c.on = o.Key != ""
	c.key, c.fp = o.Key, o.Fingerprint
	c.held = make([]int64, a.unitCount())
	c.wrote = make([]time.Time, a.unitCount())
	c.forget()
}

func (c *ckptState) forget() {
	for i := range c.held {
		c.held[i] = -1
		c.wrote[i] = time.Time{}
	}
}

// value encodes the checkpoint for offset into a scratch buffer.
func (c *ckptState) value(offset int64) []byte {
	c.val = Checkpoint{Fingerprint: c.fp, ReplID: c.replID, Offset: offset}.Append(c.val[:0])
	return c.val
}

// skip reports whether shard already holds the command ending at offset.
func (c *ckptState) skip(shard int, offset int64) bool {
	return c.on && offset <= c.held[shard]
}

// writeAll sets the checkpoint at offset on every shard (end of a
// snapshot).
func (a *Applier) writeCheckpoints(ctx context.Context, offset int64) error {
	c := &a.ckpt
	if a.cluster {
		return a.writeSlotCheckpoints(ctx, offset)
	}
	val := string(c.value(offset))
	err := a.d.Each(func(shard int) error {
		_, err := a.d.Do(ctx, shard, 0, "SET", c.key, val)
		return err
	})
	if err != nil {
		return err
	}
	now := time.Now()
	for i := range c.held {
		c.held[i], c.wrote[i] = offset, now
	}
	return nil
}

// reloadCheckpoints reads the shards' checkpoints after a reconnect and
// raises held to them; ErrCheckpointLost when a shard lost data.
func (a *Applier) reloadCheckpoints(ctx context.Context) error {
	return a.verify(ctx, true)
}

// verify checks every shard: one without the marker key (restarted
// empty, or flushed from outside) or whose checkpoint went back is
// ErrCheckpointLost. A checkpoint missing while the marker is there was
// deleted by another source's replicated FLUSHALL (which rewrote the
// marker): held stands. With raise, held takes the checkpoints' offsets.
func (a *Applier) verify(ctx context.Context, raise bool) error {
	c := &a.ckpt
	if a.cluster {
		_, err := a.verifySlots(ctx, raise)
		return err
	}
	got, err := Checkpoints(ctx, a.d, c.key)
	if err != nil {
		return err
	}
	probe, err := a.d.Probe(ctx)
	if err != nil {
		return err
	}
	for shard, cp := range got {
		if !probe[shard].Marked {
			return fmt.Errorf("%w: shard %d (%s) lost its marker key (restarted empty, or flushed)",
				ErrCheckpointLost, shard, a.d.Addr(shard))
		}
		switch {
		case cp != nil && cp.Fingerprint == c.fp:
			if cp.Offset < c.held[shard] {
				return fmt.Errorf("%w: shard %d (%s) went back from offset %d to %d",
					ErrCheckpointLost, shard, a.d.Addr(shard), c.held[shard], cp.Offset)
			}
			if raise {
				c.held[shard] = cp.Offset
			}
			continue
		case c.held[shard] < 0:
			return fmt.Errorf("%w: shard %d (%s) has no checkpoint of %s",
				ErrCheckpointLost, shard, a.d.Addr(shard), c.key)
		}
	}
	return nil
}

// Checkpoints reads key on every shard of d: nil where it is missing or does
// not parse. On a cluster destination it reads the key of every slot
// (key{SlotTag(slot)}, cluster.go) and returns one entry per slot.
func Checkpoints(ctx context.Context, d *destination.Destination, key string) ([]*Checkpoint, error) {
	if d.Cluster() {
		return slotCheckpoints(ctx, d, key)
	}
	out := make([]*Checkpoint, d.Len())
	err := d.Each(func(shard int) error {
		reply, err := d.Do(ctx, shard, 0, "GET", key)
		if err != nil {
			return err
		}
		out[shard] = checkpointReply(reply)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// checkpointReply decodes a GET reply holding a checkpoint: nil when the
// key is missing or its value does not parse.
func checkpointReply(reply []byte) *Checkpoint {
	v, _, err := resp.ParseValue(reply, resp.Limits{MaxBulk: maxCheckpointLen + 1})
	if err != nil || v.Null || v.Type != resp.TypeBulk {
		return nil
	}
	cp, err := ParseCheckpoint(v.Str)
	if err != nil {
		return nil
	}
	return &cp
}
