package integration

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/syncer"
)

// syncClusterSource loads n keys of LoadDataset(prefix, seed) into cl and
// syncs cl as one source onto a new 2-shard destination, until synced;
// it returns the status that said so.
func syncClusterSource(t *testing.T, ctx context.Context, cl *harness.Cluster, prefix string, seed int64, n int) (*destination, *syncer.Supervisor, syncer.Status) {
	t.Helper()
	if err := harness.LoadDataset(ctx, cl.Client(), prefix, seed, n); err != nil {
		t.Fatal(err)
	}
	d := startDestination(t, 2)
	src, err := config.ParseSource("cl: redis://" + cl.Addr())
	if err != nil {
		t.Fatal(err)
	}
	sup := runSupervisor(t, d, src)
	return d, sup, waitState(t, sup, syncer.StateSynced, time.Minute)
}

// TestClusterSource: a 3-master Redis Cluster source into a 2-shard
// destination is one source with three links; it stays equal through a
// workload, a manual failover while writes flow (survived by partial
// resync on the promoted replica: no new full sync), and a master killed
// while writes flow (whatever the new master lost, the destination ends
// equal to what the cluster holds).
func TestClusterSource(t *testing.T) {
	ctx := harness.Context(t, 4*time.Minute)
	cl := harness.StartCluster(t, 3, 1)
	cc := cl.Client()
	d, sup, synced := syncClusterSource(t, ctx, cl, "pre:", 3, 3000)
	st := synced.Sources[0]
	if st.Kind != syncer.KindCluster || st.Links != 3 || st.FullSyncs != 3 {
		t.Fatalf("status %+v: want a cluster source with 3 links, each fully synced once", st)
	}
	w := &harness.Workload{Prefix: "w:", Seed: 11, Cluster: true}
	if err := w.Run(ctx, cc, nil, 3000); err != nil {
		t.Fatal(err)
	}
	equal := func(what string) {
		t.Helper()
		waitEqual(t, ctx, map[int][]*redis.Client{0: cl.Masters(ctx)}, map[int][]*redis.Client{0: d.clients(0)}, time.Minute)
		if err := w.CheckCounters(ctx, map[int][]*redis.Client{0: d.clients(0)}); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	equal("after the workload")

	// Writes keep flowing (errors during the failover are the cluster's,
	// and not counted) while shard 1 fails over.
	background := func() (stop func() int64) {
		bctx, cancel := context.WithCancel(ctx)
		var n atomic.Int64
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := 0; i < 200000 && bctx.Err() == nil; i++ {
				if cc.Set(bctx, fmt.Sprintf("bg:%d", i%5000), i, 0).Err() == nil {
					n.Add(1)
				}
			}
		})
		return func() int64 { cancel(); wg.Wait(); return n.Load() }
	}
	stop := background()
	cl.Failover(t, ctx, 1)
	if err := w.Run(ctx, cc, nil, 2000); err != nil {
		t.Fatal(err)
	}
	t.Logf("background writes during the failover: %d", stop())
	equal("after the failover")
	st = sup.Status().Sources[0]
	if st.FullSyncs != 3 || st.PartialSyncs < 1 || sup.Flushes() != 1 {
		t.Fatalf("after the failover: %+v, flushes %d: want it survived by partial resync", st, sup.Flushes())
	}

	// The counted writes must have reached the replica that takes over.
	if err := cl.MasterOf(2).Client().Do(ctx, "WAIT", 1, 5000).Err(); err != nil {
		t.Fatal(err)
	}
	stop = background()
	cl.KillMaster(t, ctx, 2)
	if err := w.Run(ctx, cc, nil, 2000); err != nil {
		t.Fatal(err)
	}
	t.Logf("background writes around the kill: %d", stop())
	equal("after the kill")
	waitState(t, sup, syncer.StateSynced, time.Minute)
}

// TestClusterSourceReshard: a slot moving between masters ends the sync
// run with a full resync of everything (the links no longer partition
// the keyspace the way it was loaded); the destination ends equal.
func TestClusterSourceReshard(t *testing.T) {
	ctx := harness.Context(t, 2*time.Minute)
	cl := harness.StartCluster(t, 2, 0)
	cc := cl.Client()
	d, sup, _ := syncClusterSource(t, ctx, cl, "", 8, 1000)
	if sup.Flushes() != 1 {
		t.Fatalf("flushes %d before the move", sup.Flushes())
	}

	// Move one empty slot of master 0 to master 1, on every node.
	lo, hi := cl.SlotRange(0)
	m0, m1 := cl.MasterOf(0).Client(), cl.MasterOf(1).Client()
	slot := -1
	for s := hi; s >= lo; s-- {
		if n, err := m0.ClusterCountKeysInSlot(ctx, int(s)).Result(); err == nil && n == 0 {
			slot = int(s)
			break
		}
	}
	if slot < 0 {
		t.Fatal("no empty slot on master 0")
	}
	id1, err := m1.Do(ctx, "CLUSTER", "MYID").Text()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*redis.Client{m1, m0} {
		if err := m.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", id1).Err(); err != nil {
			t.Fatalf("SETSLOT: %v", err)
		}
	}
	_ = m1.Do(ctx, "CLUSTER", "BUMPEPOCH").Err()
	harness.WaitFor(t, time.Minute, "full resync after the slot moved", func() bool { return sup.Flushes() >= 2 })
	waitState(t, sup, syncer.StateSynced, time.Minute)
	w := &harness.Workload{Seed: 13, Cluster: true}
	if err := w.Run(ctx, cc, nil, 1000); err != nil {
		t.Fatal(err)
	}
	waitEqual(t, ctx, map[int][]*redis.Client{0: cl.Masters(ctx)}, map[int][]*redis.Client{0: d.clients(0)}, time.Minute)
	if st := sup.Status().Sources[0]; st.Links != 2 {
		t.Fatalf("status %+v", st)
	}
}
