package apply

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/internal/errclass"
	"github.com/replicaof/replicaof/internal/harness"
)

func internalKey(k string) bool { return strings.HasPrefix(k, destination.KeyPrefix) }

// fullSyncEmpty runs FullSync with an empty snapshot at offset, which
// writes the first checkpoint on every shard.
func fullSyncEmpty(t testing.TB, ctx context.Context, a *Applier, offset int64) {
	t.Helper()
	f := mustOpen(t, filepath.Join(fixtureDir, "redis-7.0.15-empty.rdb"))
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.FullSync(ctx, "replid0", offset, st.Size(), f); err != nil {
		t.Fatalf("FullSync: %v", err)
	}
}

// mark sets the marker on every shard, waiting out the backoff of a shard
// that was just restarted (its backend fails fast for a moment).
func mark(t testing.TB, ctx context.Context, c *cluster) {
	t.Helper()
	harness.WaitFor(t, 10*time.Second, "marker set on every shard", func() bool {
		return c.dest.Mark(ctx, "m") == nil
	})
}

func TestParseCheckpoint(t *testing.T) {
	good := Checkpoint{Fingerprint: "0123abcd", ReplID: strings.Repeat("f", 40), Offset: 123456}
	if got, err := ParseCheckpoint(good.Append(nil)); err != nil || got != good {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for _, bad := range []string{
		"", "fp", "fp id", "fp id x", "fp id -1", "fp id 01", "fp id +1", " id 1", "fp  1",
		"fp id 1 extra", "fp id 99999999999999999999", "f\x00p id 1", strings.Repeat("a", 300) + " id 1",
	} {
		if c, err := ParseCheckpoint([]byte(bad)); !errors.Is(err, ErrBadCheckpoint) {
			t.Errorf("ParseCheckpoint(%q) = %+v, %v; want ErrBadCheckpoint", bad, c, err)
		}
	}
}

// FuzzParseCheckpoint: whatever parses re-encodes to the same bytes.
func FuzzParseCheckpoint(f *testing.F) {
	for _, s := range []string{"fp replid 0", "0123456789abcdef 8c7e1b 99", "a b 1 2", "x y -3", "", " "} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCheckpoint(b)
		if err != nil {
			return
		}
		if out := c.Append(nil); string(out) != string(b) {
			t.Fatalf("%q parsed to %+v, encodes to %q", b, c, out)
		}
	})
}

// counterScript increments counters on every shard, in and out of MULTI
// blocks, with split commands and db switches: re-applying any of it
// shows as a wrong count.
func counterScript(keys []string) []string {
	var s []string
	for round := range 4 {
		for _, k := range keys {
			s = append(s, "INCR "+k)
		}
		s = append(s, "MULTI", "INCR {tx}a", "INCR {tx}b", "EXEC")
		s = append(s, fmt.Sprintf("MSET %s %d %s %d", keys[0]+"m", round, keys[1]+"m", round))
		s = append(s, "SELECT 2", "INCR "+keys[2], "SELECT 0")
	}
	return s
}

func checkCounts(t *testing.T, ctx context.Context, c *cluster, keys []string, want int) {
	t.Helper()
	for _, k := range append([]string{"{tx}a", "{tx}b"}, keys...) {
		if n, err := c.client(k, 0).Get(ctx, k).Int(); err != nil || n != want {
			t.Errorf("%s = %d (%v), want %d", k, n, err, want)
		}
	}
	if n, err := c.client(keys[2], 2).Get(ctx, keys[2]).Int(); err != nil || n != want {
		t.Errorf("db 2 %s = %d (%v), want %d", keys[2], n, err, want)
	}
}

func TestCheckpointExactlyOnce(t *testing.T) {
	ctx := harness.Context(t, time.Minute)
	c := startCluster(t, 3)
	c.flush(t, ctx)
	mark(t, ctx, c)
	keys := keysOnShards(c.dest.Map(), "ctr")
	opts := Options{Checkpoint: CheckpointOptions{Key: CheckpointPrefix + "s", Fingerprint: "fp"}}
	script := cmds(counterScript(keys)...)

	a := New(c.dest, opts)
	fullSyncEmpty(t, ctx, a, 0)
	for i := 0; i < len(script); i += 5 {
		if err := a.Apply(ctx, script[i:min(i+5, len(script))]); err != nil {
			t.Fatal(err)
		}
	}
	checkCounts(t, ctx, c, keys, 4)

	t.Run("restart-redelivers-everything", func(t *testing.T) {
		// A new process resumes below every checkpoint: nothing is
		// applied twice.
		b := New(c.dest, opts)
		if err := b.Continue(ctx, "replid0", 0); err != nil {
			t.Fatal(err)
		}
		if err := b.Apply(ctx, script); err != nil {
			t.Fatal(err)
		}
		checkCounts(t, ctx, c, keys, 4)
		if b.Stats().Skipped == 0 {
			t.Error("nothing counted as skipped")
		}
	})
	t.Run("partial-failure-then-redelivery", func(t *testing.T) {
		// Shard 1 refuses the batch (killed): shards 0 and 2 apply it and
		// must not apply it again when the link redelivers it.
		more := cmds(counterScript(keys)...)
		for i := range more {
			more[i].Offset += int64(len(script))
		}
		c.servers[1].Kill()
		err := a.Apply(ctx, more)
		if err == nil || errclass.IsFatal(err) {
			t.Fatalf("err %v, want a retryable error", err)
		}
		c.servers[1].Restart() // empty: its counters start over
		// An empty shard is lost...
		if err := a.Continue(ctx, "replid0", int64(len(script))); !errors.Is(err, ErrCheckpointLost) {
			t.Fatalf("Continue after a shard restarted empty: %v, want ErrCheckpointLost", err)
		}
		// ...unless it has the marker: then its checkpoint was deleted by
		// another source's FLUSHALL and the offset known in memory holds.
		mark(t, ctx, c)
		harness.WaitFor(t, 10*time.Second, "shard 1 back", func() bool {
			return a.Continue(ctx, "replid0", int64(len(script))) == nil && a.Apply(ctx, more) == nil
		})
		for i, k := range keys {
			want := 8
			if i == 1 {
				want = 4
			}
			if n, err := c.client(k, 0).Get(ctx, k).Int(); err != nil || n != want {
				t.Errorf("%s = %d (%v), want %d", k, n, err, want)
			}
		}
	})
	t.Run("lost-checkpoint", func(t *testing.T) {
		// A fresh applier knows nothing: a shard without checkpoint (shard
		// 1 restarted above, and an untouched shard has none yet) is lost.
		if err := c.servers[0].Client().FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		b := New(c.dest, opts)
		if err := b.Continue(ctx, "replid0", 0); !errors.Is(err, ErrCheckpointLost) {
			t.Fatalf("err %v, want ErrCheckpointLost", err)
		}
	})
	t.Run("checkpoint-went-back", func(t *testing.T) {
		b := New(c.dest, opts)
		fullSyncEmpty(t, ctx, b, 100)
		if err := c.servers[2].Client().Set(ctx, CheckpointPrefix+"s", "fp replid0 50", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := b.Continue(ctx, "replid0", 100); !errors.Is(err, ErrCheckpointLost) {
			t.Fatalf("err %v, want ErrCheckpointLost", err)
		}
	})
}

// An open MULTI block is not covered by the checkpoint of the Apply that
// carried its start: a restart resumes at its MULTI.
func TestCheckpointOpenBlock(t *testing.T) {
	ctx := harness.Context(t, time.Minute)
	c := startCluster(t, 2)
	c.flush(t, ctx)
	mark(t, ctx, c)
	opts := Options{Checkpoint: CheckpointOptions{Key: CheckpointPrefix + "s", Fingerprint: "fp", Every: time.Nanosecond}}
	script := cmds("INCR {x}n", "MULTI", "INCR {x}n", "INCR {x}m", "EXEC", "INCR {x}n")
	a := New(c.dest, opts)
	fullSyncEmpty(t, ctx, a, 0)
	if err := a.Apply(ctx, script[:3]); err != nil {
		t.Fatal(err)
	}
	cps, err := Checkpoints(ctx, c.dest, CheckpointPrefix+"s")
	if err != nil {
		t.Fatal(err)
	}
	for i, cp := range cps {
		if cp == nil || cp.Offset != 1 {
			t.Fatalf("shard %d checkpoint %+v, want offset 1 (before MULTI)", i, cp)
		}
	}
	// Crash: a new applier gets the stream again from offset 2.
	b := New(c.dest, opts)
	if err := b.Continue(ctx, "replid0", 1); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(ctx, script[1:]); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.client("{x}n", 0).Get(ctx, "{x}n").Int(); n != 3 {
		t.Errorf("{x}n = %d, want 3", n)
	}
	if n, _ := c.client("{x}m", 0).Get(ctx, "{x}m").Int(); n != 1 {
		t.Errorf("{x}m = %d, want 1", n)
	}
}
