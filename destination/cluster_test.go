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
	"github.com/replicaof/replicaof/internal/errclass"
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
	// Mark waited for the replicas: group 2's has its marker already.
	if got := doStr(t, ctx, rb, "EXISTS", d.MarkerKeyOf(2)); got != ":1" {
		t.Fatalf("the replica lacks the marker right after Mark: %s", got)
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

	// Refreshes asked for at once share one flight; all succeed.
	errs := make(chan error, 20)
	for range 20 {
		go func() { errs <- d.Refresh(ctx) }()
	}
	for range 20 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}

	// A connection that fails under a command is not sent the command
	// again: its outcome is unknown.
	kb := c.KeyInShard(1, "b")
	done := make(chan error, 1)
	start := time.Now()
	go func() { _, err := d.Do(ctx, 1, 0, "BLPOP", kb, "5"); done <- err }()
	admin := c.MasterOf(1).Client()
	harness.WaitFor(t, 5*time.Second, "BLPOP blocks", func() bool {
		return strings.Contains(admin.ClientList(ctx).Val(), "cmd=blpop")
	})
	if err := admin.Do(ctx, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, pool.ErrShardDown) || time.Since(start) > 4*time.Second {
		t.Fatalf("Do on a killed connection: %v after %v", err, time.Since(start))
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

// A master outside every group that gets slots (here a replica reset
// into a new, empty master) fails Refresh with ErrTopologyChanged, for
// good.
func TestClusterTopologyChanged(t *testing.T) {
	c := harness.StartCluster(t, 3, 1)
	ctx := harness.Context(t, 2*time.Minute)
	d := openCluster(t, ctx, destination.Config{Refresh: time.Hour}, c.Nodes[0].Addr)
	n := c.Nodes[5] // group 2's replica
	nc := n.Client()
	if err := nc.Do(ctx, "CLUSTER", "RESET", "HARD").Err(); err != nil {
		t.Fatal(err)
	}
	newID := nc.ClusterMyID(ctx).Val()
	// Meet node 0 at its cluster bus port, as CLUSTER NODES shows it.
	m0 := c.Nodes[0].Client()
	var bus string
	for line := range strings.SplitSeq(m0.ClusterNodes(ctx).Val(), "\n") {
		if strings.Contains(line, "myself") {
			addr := strings.Fields(line)[1] // ip:port@bus[,hostname]
			bus = strings.SplitN(strings.SplitN(addr, "@", 2)[1], ",", 2)[0]
		}
	}
	if err := nc.Do(ctx, "CLUSTER", "MEET", "127.0.0.1", c.Nodes[0].Port, bus).Err(); err != nil {
		t.Fatal(err)
	}
	masters := []*redis.Client{m0, c.Nodes[1].Client(), c.Nodes[2].Client(), nc}
	harness.WaitFor(t, 30*time.Second, "every master knows the new node", func() bool {
		for _, m := range masters {
			if !strings.Contains(m.ClusterNodes(ctx).Val(), newID) {
				return false
			}
		}
		return true
	})
	const slot = 16383 // group 2's, empty
	for _, m := range masters {
		if err := m.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", newID).Err(); err != nil {
			t.Fatal(err)
		}
	}
	harness.WaitFor(t, 30*time.Second, "Refresh sees the new master", func() bool {
		return errors.Is(d.Refresh(ctx), destination.ErrTopologyChanged)
	})
	err := d.Refresh(ctx)
	if !errors.Is(err, destination.ErrTopologyChanged) || !strings.Contains(err.Error(), newID) || errclass.Classify(err) != errclass.Fatal {
		t.Fatalf("second Refresh: %v (class %v)", err, errclass.Classify(err))
	}
}

// A multi-key command meeting a migration (TRYAGAIN) is sent again until
// the migration ends, then follows MOVED.
func TestClusterTryAgain(t *testing.T) {
	c := harness.StartCluster(t, 3, 0)
	ctx := harness.Context(t, time.Minute)
	d := openCluster(t, ctx, destination.Config{Refresh: time.Hour}, c.Nodes[0].Addr)
	tag := "{" + router.SlotTag(7) + "}"
	k1, k2 := tag+"a", tag+"b"
	for _, k := range []string{k1, k2} {
		if _, err := d.Do(ctx, 0, 0, "SET", k, k); err != nil {
			t.Fatal(err)
		}
	}
	src, dst := c.Nodes[0].Client(), c.Nodes[1].Client()
	srcID, dstID := src.ClusterMyID(ctx).Val(), dst.ClusterMyID(ctx).Val()
	must := func(cl *redis.Client, args ...any) {
		t.Helper()
		if err := cl.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	must(dst, "CLUSTER", "SETSLOT", 7, "IMPORTING", srcID)
	must(src, "CLUSTER", "SETSLOT", 7, "MIGRATING", dstID)
	must(src, "MIGRATE", "127.0.0.1", c.Nodes[1].Port, "", 0, 5000, "KEYS", k1)
	if reply, err := src.Do(ctx, "MGET", k1, k2).Result(); err == nil || !strings.HasPrefix(fmt.Sprint(err), "TRYAGAIN") {
		t.Fatalf("MGET during the migration answered %v, %v; want TRYAGAIN", reply, err)
	}
	got := make(chan string, 1)
	go func() {
		reply, err := d.Do(ctx, 0, 0, "MGET", k1, k2)
		got <- fmt.Sprintf("%q %v", reply, err)
	}()
	time.Sleep(300 * time.Millisecond) // a few TRYAGAINs
	must(src, "MIGRATE", "127.0.0.1", c.Nodes[1].Port, "", 0, 5000, "KEYS", k2)
	for _, n := range []*redis.Client{dst, src, c.Nodes[2].Client()} {
		must(n, "CLUSTER", "SETSLOT", 7, "NODE", dstID)
	}
	want := fmt.Sprintf("%q <nil>", "*2\r\n$"+strconv.Itoa(len(k1))+"\r\n"+k1+"\r\n$"+strconv.Itoa(len(k2))+"\r\n"+k2+"\r\n")
	if g := <-got; g != want {
		t.Fatalf("MGET across the migration: %s, want %s", g, want)
	}
	if d.Map().ShardOfSlot(7) != 1 {
		t.Fatalf("slot 7 on group %d after MOVED, want 1", d.Map().ShardOfSlot(7))
	}
}
