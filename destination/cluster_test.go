package destination_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/router"
)

// openCluster opens the destination at seed (one node of c), closed at
// cleanup.
func openCluster(t *testing.T, ctx context.Context, cfg destination.Config, seed string) *destination.Destination {
	t.Helper()
	cfg.Shards = []destination.Shard{{Addr: seed, Password: cfgPassword(cfg)}}
	d, err := destination.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func cfgPassword(cfg destination.Config) string {
	if len(cfg.Shards) > 0 {
		return cfg.Shards[0].Password
	}
	return ""
}

// doStr runs one command through b and returns its reply's text, failing
// t on a connection error.
func doStr(t *testing.T, ctx context.Context, b *pool.Backend, args ...string) string {
	t.Helper()
	reply, err := b.Do(ctx, resp.AppendCommandString(nil, args...), nil)
	if err != nil {
		t.Fatalf("%v on %s: %v", args, b.Addr(), err)
	}
	return strings.TrimSpace(string(reply))
}

// checkGroups checks that d's groups are c's shards, with their current
// masters and replicas.
func checkGroups(t *testing.T, d *destination.Destination, c *harness.Cluster, replicas int) {
	t.Helper()
	if !d.Cluster() || d.Len() != 3 {
		t.Fatalf("Cluster %v, Len %d", d.Cluster(), d.Len())
	}
	for g := 0; g < 3; g++ {
		if got, want := d.Addr(g), c.MasterOf(g).Addr; got != want {
			t.Errorf("group %d: master %s, want %s", g, got, want)
		}
		if got := len(d.Replicas(g)); got != replicas {
			t.Errorf("group %d: %d replicas, want %d", g, got, replicas)
		}
		if d.Backend(g, 0).Addr() != d.Addr(g) {
			t.Errorf("group %d: Backend at %s, master %s", g, d.Backend(g, 0).Addr(), d.Addr(g))
		}
	}
}

// A cluster destination opened at any node (here a replica) finds the
// groups, their masters and replicas and the slot map; Do follows MOVED;
// replicas serve reads (READONLY); databases other than 0 fail clearly.
func TestClusterOpen(t *testing.T) {
	c := harness.StartCluster(t, 3, 1)
	ctx := harness.Context(t, time.Minute)
	d := openCluster(t, ctx, destination.Config{Refresh: time.Hour}, c.Nodes[4].Addr)
	checkGroups(t, d, c, 1)
	for g := 0; g < 3; g++ {
		lo, hi := c.SlotRange(g)
		if got, want := router.FormatSlotRanges(d.Map().Ranges(g)), fmt.Sprintf("%d-%d", lo, hi); got != want {
			t.Errorf("group %d: slots %s, want %s", g, got, want)
		}
	}
	if n := len(d.Nodes()); n != 6 {
		t.Fatalf("Nodes: %d, want 6: %+v", n, d.Nodes())
	}

	// Writes placed by Map land on the right master.
	for g := 0; g < 3; g++ {
		k := c.KeyInShard(g, "k")
		if got := doStr(t, ctx, d.Backend(d.Map().ShardOf([]byte(k)), 0), "SET", k, "v"+strconv.Itoa(g)); got != "+OK" {
			t.Fatalf("SET %s: %s", k, got)
		}
	}
	// Do follows MOVED: group 0 is asked for a key of group 2.
	k2 := c.KeyInShard(2, "k")
	if reply, err := d.Do(ctx, 0, 0, "GET", k2); err != nil || string(reply) != "$2\r\nv2\r\n" {
		t.Fatalf("Do GET through the wrong group: %q %v", reply, err)
	}
	// A replica's backend reads (READONLY in its Init).
	rep := d.Replicas(2)[0]
	rb, err := d.NodeBackend(rep.Addr, 0)
	if err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, 10*time.Second, "the replica serves the key", func() bool {
		return doStr(t, ctx, rb, "GET", k2) == "$2\r\nv2"
	})
	if _, err := d.NodeBackend("127.0.0.1:1", 0); !errors.Is(err, destination.ErrUnknownNode) {
		t.Fatalf("NodeBackend of an unknown node: %v", err)
	}
	// Only database 0.
	if _, err := d.Backend(0, 1).Do(ctx, resp.AppendCommandString(nil, "PING"), nil); !errors.Is(err, destination.ErrClusterDB) {
		t.Fatalf("database 1: %v", err)
	}
	if _, err := d.Do(ctx, 0, 3, "PING"); !errors.Is(err, destination.ErrClusterDB) {
		t.Fatalf("Do on database 3: %v", err)
	}
	if err := d.SetMap(d.Map()); err == nil {
		t.Fatal("SetMap on a cluster succeeded")
	}
	// Mark and Probe use one marker per group; FLUSHALL through Each
	// reaches every master.
	if err := d.Mark(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	st, err := d.Probe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for g, s := range st {
		if !s.Marked || s.RunID == "" {
			t.Fatalf("group %d: %+v", g, s)
		}
		if sl := router.Slot([]byte(d.MarkerKeyOf(g))); d.Map().ShardOfSlot(sl) != g {
			t.Fatalf("group %d's marker key is in slot %d of group %d", g, sl, d.Map().ShardOfSlot(sl))
		}
	}
	if err := d.Each(func(g int) error { _, err := d.Do(ctx, g, 0, "FLUSHALL"); return err }); err != nil {
		t.Fatal(err)
	}
	for g, m := range c.Masters(ctx) {
		if n := m.DBSize(ctx).Val(); n != 0 {
			t.Fatalf("group %d has %d keys after FLUSHALL", g, n)
		}
	}

	// A standalone server opens as standalone shards.
	r := harness.StartRedis(t)
	sd, err := destination.Open(ctx, destination.Config{Shards: []destination.Shard{{Addr: r.Addr}}})
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	if sd.Cluster() || sd.Len() != 1 {
		t.Fatalf("standalone: Cluster %v Len %d", sd.Cluster(), sd.Len())
	}
}

// Open waits for an unreachable destination within its context, and
// fails at once on a refused password.
func TestClusterOpenErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := destination.Open(ctx, destination.Config{Shards: []destination.Shard{{Addr: "127.0.0.1:1"}}}); err == nil {
		t.Fatal("Open of an unreachable node succeeded")
	}
	r := harness.StartRedis(t, "--requirepass", "pw")
	start := time.Now()
	_, err := destination.Open(context.Background(), destination.Config{Shards: []destination.Shard{{Addr: r.Addr, Password: "bad"}}})
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("Open with a wrong password: %v after %v", err, time.Since(start))
	}
}

// Through a manual failover, a kill -9 of a master and a slot migration,
// Refresh keeps every group on its current master and Map on the
// cluster's slots; pool sets made before follow; Do follows ASK during
// the migration; Probe's run id survives failovers.
func TestClusterRefresh(t *testing.T) {
	c := harness.StartCluster(t, 3, 1)
	ctx := harness.Context(t, 3*time.Minute)
	d := openCluster(t, ctx, destination.Config{Refresh: time.Hour}, c.Nodes[0].Addr)
	proxyPools := d.NewPools(pool.Config{Conns: 1})
	base, err := d.Probe(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Manual failover of group 1.
	old := d.Addr(1)
	c.Failover(t, ctx, 1)
	if err := d.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	checkGroups(t, d, c, 1)
	if d.Addr(1) == old || proxyPools.Get(1, 0).Addr() != d.Addr(1) {
		t.Fatalf("after failover: master %s (was %s), proxy pool at %s", d.Addr(1), old, proxyPools.Get(1, 0).Addr())
	}
	k1 := c.KeyInShard(1, "f")
	if got := doStr(t, ctx, d.Backend(1, 0), "SET", k1, "1"); got != "+OK" {
		t.Fatalf("SET on the new master: %s", got)
	}
	st, err := d.Probe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st[1].RunID != base[1].RunID {
		t.Fatalf("a failover changed group 1's run id: %s, was %s", st[1].RunID, base[1].RunID)
	}

	// kill -9 of group 2's master: the connection errors ask for a
	// refresh, the periodic one is an hour away.
	c.KillMaster(t, ctx, 2)
	k2 := c.KeyInShard(2, "k")
	harness.WaitFor(t, 30*time.Second, "group 2 follows its promoted master", func() bool {
		reply, err := d.Backend(2, 0).Do(ctx, resp.AppendCommandString(nil, "SET", k2, "1"), nil)
		return err == nil && string(reply) == "+OK\r\n"
	})
	if d.Addr(2) != c.MasterOf(2).Addr || len(d.Replicas(2)) != 0 {
		t.Fatalf("group 2: master %s, want %s; replicas %v", d.Addr(2), c.MasterOf(2).Addr, d.Replicas(2))
	}
	if st, err = d.Probe(ctx); err != nil || st[2].RunID != base[2].RunID {
		t.Fatalf("after kill -9: %+v %v, base %+v", st, err, base)
	}

	// Migrate slot s (with a key) from group 0 to group 1.
	k0 := c.KeyInShard(0, "m")
	s := router.Slot([]byte(k0))
	if _, err := d.Do(ctx, 0, 0, "SET", k0, "old"); err != nil {
		t.Fatal(err)
	}
	src, dst := c.MasterOf(0).Client(), c.MasterOf(1).Client()
	srcID, dstID := src.ClusterMyID(ctx).Val(), dst.ClusterMyID(ctx).Val()
	must := func(cl *redis.Client, args ...any) {
		t.Helper()
		if err := cl.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	must(dst, "CLUSTER", "SETSLOT", s, "IMPORTING", srcID)
	must(src, "CLUSTER", "SETSLOT", s, "MIGRATING", dstID)
	// A key of slot s that the source does not have: ASK to the target.
	other := ""
	for i := 0; other == ""; i++ {
		if k := "{" + router.SlotTag(s) + "}" + strconv.Itoa(i); router.Slot([]byte(k)) == s {
			other = k
		}
	}
	if _, err := d.Do(ctx, 0, 0, "SET", other, "new"); err != nil {
		t.Fatalf("SET during the migration: %v", err)
	}
	if n := src.Exists(ctx, other).Val(); n != 0 {
		t.Fatalf("the key written during the migration is on the source")
	}
	if reply, err := d.Do(ctx, 0, 0, "GET", k0); err != nil || string(reply) != "$3\r\nold\r\n" {
		t.Fatalf("GET of a key not migrated yet: %q %v", reply, err)
	}
	must(src, "MIGRATE", "127.0.0.1", c.MasterOf(1).Port, "", 0, 5000, "KEYS", k0)
	for _, n := range append(c.Masters(ctx), c.MasterOf(0).Client(), c.MasterOf(1).Client()) {
		must(n, "CLUSTER", "SETSLOT", s, "NODE", dstID)
	}
	// Before a refresh, Do meets MOVED and Moved updates the map at once.
	if reply, err := d.Do(ctx, 0, 0, "GET", other); err != nil || string(reply) != "$3\r\nnew\r\n" {
		t.Fatalf("GET after the migration: %q %v", reply, err)
	}
	if d.Map().ShardOfSlot(s) != 1 {
		t.Fatalf("slot %d is on group %d after MOVED, want 1", s, d.Map().ShardOfSlot(s))
	}
	harness.WaitFor(t, 10*time.Second, "the cluster agrees on slot "+strconv.Itoa(int(s)), func() bool {
		for _, n := range c.Masters(ctx) {
			for _, sl := range n.ClusterSlots(ctx).Val() {
				if sl.Start <= int(s) && int(s) <= sl.End && sl.Nodes[0].Addr != c.MasterOf(1).Addr {
					return false
				}
			}
		}
		return true
	})
	if err := d.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if d.Map().ShardOfSlot(s) != 1 || d.Map().ShardOfSlot(s+1) != 0 {
		t.Fatalf("after refresh: slot %d on %d, slot %d on %d", s, d.Map().ShardOfSlot(s), s+1, d.Map().ShardOfSlot(s+1))
	}
	var slots []string
	for _, n := range d.Nodes() {
		if n.Master {
			slots = append(slots, router.FormatSlotRanges(n.Slots))
		}
	}
	if !strings.Contains(slots[1], fmt.Sprintf(",%d", s)) && !strings.Contains(slots[1], fmt.Sprintf("%d,", s)) {
		t.Fatalf("Nodes: group 1 slots %s lack %d", slots[1], s)
	}
}

// A cluster whose nodes require a password: Open, Do and Refresh AUTH on
// every node with the seed's password.
func TestClusterPassword(t *testing.T) {
	c := harness.StartCluster(t, 3, 0)
	ctx := harness.Context(t, time.Minute)
	for _, n := range c.Nodes {
		cl := n.Client()
		if err := cl.ConfigSet(ctx, "masterauth", "pw").Err(); err != nil {
			t.Fatal(err)
		}
		if err := cl.ConfigSet(ctx, "requirepass", "pw").Err(); err != nil {
			t.Fatal(err)
		}
	}
	d := openCluster(t, ctx, destination.Config{Shards: []destination.Shard{{Password: "pw"}}, Refresh: time.Hour}, c.Nodes[1].Addr)
	if !d.Cluster() || d.Len() != 3 {
		t.Fatalf("Cluster %v Len %d", d.Cluster(), d.Len())
	}
	for g := 0; g < 3; g++ {
		k := c.KeyInShard(g, "p")
		if _, err := d.Do(ctx, (g+1)%3, 0, "SET", k, "1"); err != nil {
			t.Fatal(err)
		}
		if got := doStr(t, ctx, d.Backend(g, 0), "GET", k); got != "$1\r\n1" {
			t.Fatalf("GET %s: %q", k, got)
		}
	}
	if err := d.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := destination.Open(ctx, destination.Config{Shards: []destination.Shard{{Addr: c.Nodes[0].Addr, Password: "bad"}}})
	if err == nil {
		t.Fatal("Open with a wrong password succeeded")
	}
}
