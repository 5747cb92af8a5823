package apply

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/replicaof/replicaof/internal/harness"
)

// appliedObserver sums what an Applier reports, by source and shard.
type appliedObserver struct {
	mu sync.Mutex
	n  map[string]int // "source/shard" → commands
}

func (o *appliedObserver) Applied(source string, shard, n int) {
	o.mu.Lock()
	o.n[fmt.Sprintf("%s/%d", source, shard)] += n
	o.mu.Unlock()
}

func TestApplyObserver(t *testing.T) {
	ctx := harness.Context(t, time.Minute)
	c := startCluster(t, 3)
	c.flush(t, ctx)
	k := keysOnShards(c.dest.Map(), "o")
	obs := &appliedObserver{n: map[string]int{}}
	a := New(c.dest, Options{Source: "src", Observer: obs})
	// One SET per shard, and a second on shard 1.
	if err := a.Apply(ctx, cmds("SET "+k[0]+" 1", "SET "+k[1]+" 1", "SET "+k[2]+" 1", "SET "+k[1]+" 2")); err != nil {
		t.Fatal(err)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	// Each shard's batch starts with SELECT 0 when the batch needs it;
	// count at least the SETs.
	for shard, want := range []int{1, 2, 1} {
		if got := obs.n[fmt.Sprintf("src/%d", shard)]; got < want || got > want+1 {
			t.Errorf("shard %d: %d commands reported, want %d (+1 for a SELECT)", shard, got, want)
		}
	}
	if len(obs.n) != 3 {
		t.Errorf("reported %v, want three shards of src", obs.n)
	}
}
