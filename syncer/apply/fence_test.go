package apply

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/internal/harness"
)

// testFence is a Fence whose epoch and clock verdict the test sets.
type testFence struct {
	mu    sync.Mutex
	epoch int64
	err   error
}

func (f *testFence) Epoch() (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.epoch, f.err
}

func (f *testFence) Restore() [][]string {
	return [][]string{{"SET", destination.KeyPrefix + "lease", "kept"}}
}

func (f *testFence) set(epoch int64, err error) {
	f.mu.Lock()
	f.epoch, f.err = epoch, err
	f.mu.Unlock()
}

// A deposed instance's transactions are refused by the destination once a
// newer epoch was raised, and nothing is sent when the clock says the
// lease is not certainly held.
func TestFenceRefusesStaleEpoch(t *testing.T) {
	ctx := harness.Context(t, time.Minute)
	c := startCluster(t, 3)
	f := &testFence{epoch: 5}
	c.dest.SetFence(f)
	c.flush(t, ctx) // guarded; sets the fence key and restores the lease's keys
	for i, s := range c.servers {
		if v, err := s.Client().Get(ctx, FenceKey).Result(); err != nil || v != "5" {
			t.Fatalf("shard %d fence after the flush: %q %v", i, v, err)
		}
	}
	if v, _ := c.servers[0].Client().Get(ctx, destination.KeyPrefix+"lease").Result(); v != "kept" {
		t.Fatalf("the flush did not restore the lease's keys on shard 0: %q", v)
	}
	mark(t, ctx, c)
	keys := keysOnShards(c.dest.Map(), "ctr")
	opts := Options{Checkpoint: CheckpointOptions{Key: CheckpointPrefix + "s", Fingerprint: "fp"}}
	script := cmds(counterScript(keys)...)
	a := New(c.dest, opts)
	fullSyncEmpty(t, ctx, a, 0)
	if err := a.Apply(ctx, script); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, ctx, c, keys, 4)
	more := cmds(counterScript(keys)...)
	for i := range more {
		more[i].Offset += int64(len(script))
	}

	// The clock: not certainly held → nothing sent.
	f.set(5, ErrFenced)
	if err := a.Apply(ctx, more); !errors.Is(err, ErrFenced) {
		t.Fatalf("Apply with a lapsed lease: %v, want ErrFenced", err)
	}
	checkCounts(t, ctx, c, keys, 4)

	// The destination: another instance raised epoch 6 → epoch 5 refused,
	// though this instance's clock says its lease is fine.
	if err := RaiseFence(ctx, c.dest, 6); err != nil {
		t.Fatal(err)
	}
	f.set(5, nil)
	if err := a.Apply(ctx, more); !errors.Is(err, ErrFenced) {
		t.Fatalf("Apply with a stale epoch: %v, want ErrFenced", err)
	}
	checkCounts(t, ctx, c, keys, 4)
	var se *StaleEpochError
	if err := RaiseFence(ctx, c.dest, 4); !errors.Is(err, ErrFenced) || !errors.As(err, &se) || se.Newest != 6 {
		t.Fatalf("raising an older epoch: %v, want a StaleEpochError naming 6", err)
	}
	for i, s := range c.servers {
		if v, _ := s.Client().Get(ctx, FenceKey).Result(); v != "6" {
			t.Fatalf("shard %d fence %q, want 6", i, v)
		}
	}

	// The holder of epoch 6 writes; it resumes where the checkpoints are.
	f.set(6, nil)
	b := New(c.dest, opts)
	if err := b.Continue(ctx, "replid0", int64(len(script))); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(ctx, more); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, ctx, c, keys, 8)
}
