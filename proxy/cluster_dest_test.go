package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/router"
)

// clusterDest is a real Redis Cluster (3 masters, a replica each) as the
// destination, with keys written into it directly, and a proxy over it.
type clusterDest struct {
	t      *testing.T
	c      *harness.Cluster
	d      *destination.Destination
	srv    *Server
	addr   string
	keys   []string // each holds "v-" + itself
	hidden int64    // replicaof's own keys on it
}

func newClusterDest(t *testing.T, ctx context.Context, nkeys int, mut func(*Config)) *clusterDest {
	t.Helper()
	cd := &clusterDest{t: t, c: harness.StartCluster(t, 3, 1)}
	d, err := destination.Open(ctx, destination.Config{
		Shards:  []destination.Shard{{Addr: cd.c.Nodes[0].Addr}},
		Refresh: time.Hour, // refreshes come from MOVED and connection errors here
		Logger:  harness.Logger(t, slog.LevelDebug),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if !d.Cluster() || d.Len() != 3 {
		t.Fatalf("Open: cluster %v, %d groups", d.Cluster(), d.Len())
	}
	cd.d = d
	cc := cd.c.Client()
	for i := 0; i < nkeys; i++ {
		k := "k:" + strconv.Itoa(i)
		if err := cc.Set(ctx, k, "v-"+k, 0).Err(); err != nil {
			t.Fatal(err)
		}
		cd.keys = append(cd.keys, k)
	}
	cfg := Config{Listen: "127.0.0.1:0", Timeout: 2 * time.Second, Logger: harness.Logger(t, slog.LevelDebug), Destination: d, AllowWrites: true,
		Loops: *testLoops}
	cfg.Backend.RetryBackoff = 20 * time.Millisecond
	if mut != nil {
		mut(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("Serve did not stop")
		}
	})
	cd.srv, cd.addr = srv, srv.Addr().String()
	return cd
}

func (cd *clusterDest) client() *redis.Client {
	cl := redis.NewClient(&redis.Options{Addr: cd.addr, MaxRetries: -1})
	cd.t.Cleanup(func() { cl.Close() })
	return cl
}

// dbsizeOfCluster sums DBSIZE over the cluster's masters, less
// replicaof's own keys.
func (cd *clusterDest) dbsizeOfCluster(ctx context.Context) int64 {
	var n int64
	seen := map[*redis.Client]bool{} // Masters lists one per slot range
	for _, m := range cd.c.Masters(ctx) {
		if !seen[m] {
			seen[m] = true
			n += m.DBSize(ctx).Val()
		}
	}
	return n - cd.hidden
}

// checkReads reads every key through p: GET, MGET (split by slot), and
// the fan-outs.
func (cd *clusterDest) checkReads(ctx context.Context, p *redis.Client) {
	t := cd.t
	t.Helper()
	for _, k := range cd.keys {
		if v, err := p.Get(ctx, k).Result(); err != nil || v != "v-"+k {
			t.Fatalf("GET %s = %q %v", k, v, err)
		}
	}
	vals, err := p.MGet(ctx, cd.keys...).Result()
	if err != nil {
		t.Fatalf("MGET over every slot: %v", err)
	}
	for i, v := range vals {
		if v != "v-"+cd.keys[i] {
			t.Fatalf("MGET %s = %v", cd.keys[i], v)
		}
	}
	if n, err := p.Exists(ctx, cd.keys...).Result(); err != nil || n != int64(len(cd.keys)) {
		t.Fatalf("EXISTS = %d %v", n, err)
	}
	want := cd.dbsizeOfCluster(ctx)
	if n, err := p.DBSize(ctx).Result(); err != nil || n != want {
		t.Fatalf("DBSIZE through the proxy = %d %v; the cluster's %d", n, err, want)
	}
	if ks, err := p.Keys(ctx, "k:*").Result(); err != nil || len(ks) != len(cd.keys) {
		t.Fatalf("KEYS: %d %v", len(ks), err)
	}
	seen := cd.scanAll(ctx, p)
	if len(seen) != len(cd.keys) {
		t.Fatalf("SCAN saw %d keys of %d", len(seen), len(cd.keys))
	}
	// Any key of the cluster will do: the migration test adds its own.
	k, err := p.RandomKey(ctx).Result()
	if err != nil || strings.HasPrefix(k, "__replicaof:") {
		t.Fatalf("RANDOMKEY = %q %v", k, err)
	}
	if n, err := p.Exists(ctx, k).Result(); err != nil || n != 1 {
		t.Fatalf("RANDOMKEY = %q, which EXISTS counts %d (%v)", k, n, err)
	}
}

func (cd *clusterDest) scanAll(ctx context.Context, p *redis.Client) map[string]int {
	cd.t.Helper()
	seen := map[string]int{}
	var cursor uint64
	for {
		keys, next, err := p.Scan(ctx, cursor, "k:*", 50).Result()
		if err != nil {
			cd.t.Fatalf("SCAN %d: %v", cursor, err)
		}
		for _, k := range keys {
			seen[k]++
		}
		if cursor = next; cursor == 0 {
			return seen
		}
	}
}

// TestClusterDestination: a proxy over a Redis Cluster serves reads, the
// fan-outs (DBSIZE equal to the cluster's), writes split by slot, and
// cluster-mode clients.
func TestClusterDestination(t *testing.T) {
	ctx := harness.Context(t, 2*time.Minute)
	cd := newClusterDest(t, ctx, 300, nil)
	// A checkpoint per slot, as the syncer keeps on a cluster: more
	// hidden keys per group than on standalone shards.
	pipe := cd.c.Client().Pipeline()
	for sl := 0; sl < router.SlotCount; sl++ {
		pipe.Set(ctx, destination.KeyPrefix+"ckpt:test{"+router.SlotTag(uint16(sl))+"}", "1", 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	cd.hidden = router.SlotCount
	p := cd.client()
	cd.checkReads(ctx, p)
	if n, err := p.DBSize(ctx).Result(); err != nil || n != int64(len(cd.keys)) {
		t.Fatalf("DBSIZE = %d %v, want %d", n, err, len(cd.keys))
	}

	// Writes across slots of one group: MSET and DEL are split by slot.
	var same []string // keys of group 0, on different slots
	for i := 0; len(same) < 4; i++ {
		k := "w:" + strconv.Itoa(i)
		if cd.d.Map().ShardOf([]byte(k)) == 0 {
			same = append(same, k)
		}
	}
	if err := p.MSet(ctx, same[0], "1", same[1], "2", same[2], "3", same[3], "4").Err(); err != nil {
		t.Fatalf("MSET over slots of one group: %v", err)
	}
	if n, err := p.Del(ctx, same...).Result(); err != nil || n != 4 {
		t.Fatalf("DEL = %d %v", n, err)
	}
	wantErr(t, p.Do(ctx, "SELECT", "1").Err(), "ERR SELECT is not allowed in cluster mode")
	if info, err := p.Info(ctx, "proxy").Result(); err != nil || !strings.Contains(info, "destination_kind:cluster\r\n") ||
		!strings.Contains(info, "shard1:addr="+cd.d.Addr(1)+",slots=") {
		t.Fatalf("INFO proxy = %q %v", info, err)
	}

	// A cluster client through the proxy.
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{cd.addr}, MaxRedirects: -1})
	t.Cleanup(func() { cc.Close() })
	clusterClientReads(t, ctx, cc, cd.keys)

	// The status: every node, the masters with their slots and IDs.
	nodes := cd.srv.Nodes()
	var masters, replicas int
	for _, n := range nodes {
		if n.ID == "" {
			t.Errorf("node %s has no ID", n.Addr)
		}
		switch {
		case n.Role == "primary" && !n.Unread:
			masters++
			if n.Addr != cd.d.Addr(n.Shard) || router.FormatSlotRanges(n.Slots) != router.FormatSlotRanges(cd.d.Map().Ranges(n.Shard)) {
				t.Errorf("primary %+v", n)
			}
		case n.Role == "replica" && n.Unread:
			replicas++
		default:
			t.Errorf("node %+v", n)
		}
	}
	if masters != 3 || replicas != 3 {
		t.Fatalf("Nodes: %d masters, %d replicas: %+v", masters, replicas, nodes)
	}

	// FLUSHALL through the proxy keeps replicaof's keys of every slot.
	if err := p.FlushAll(ctx).Err(); err != nil {
		t.Fatalf("FLUSHALL: %v", err)
	}
	if n, err := p.DBSize(ctx).Result(); err != nil || n != 0 || cd.dbsizeOfCluster(ctx) != 0 {
		t.Fatalf("after FLUSHALL: DBSIZE %d %v, the cluster's less hidden keys %d", n, err, cd.dbsizeOfCluster(ctx))
	}
}

// reader reads keys through the proxy until stopped (or n reads), and
// records every failed or wrong read.
type reader struct {
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []string
	n    int
}

func startReader(ctx context.Context, p *redis.Client, keys []string, max int) *reader {
	r := &reader{stop: make(chan struct{})}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for i := 0; i < max; i++ {
			select {
			case <-r.stop:
				return
			default:
			}
			k := keys[i%len(keys)]
			v, err := p.Get(ctx, k).Result()
			r.mu.Lock()
			r.n++
			if err != nil || v != "v-"+k {
				r.errs = append(r.errs, fmt.Sprintf("GET %s = %q %v", k, v, err))
			}
			r.mu.Unlock()
			if i%len(keys) == len(keys)-1 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	return r
}

// end stops the reader and returns how many reads it made and the failed
// ones.
func (r *reader) end() (int, []string) {
	close(r.stop)
	r.wg.Wait()
	return r.n, r.errs
}

// TestClusterDestinationFailover: reads through the proxy go on through
// a manual failover (the old master answers as a replica until the
// proxy's pools follow the new one); a SCAN cursor on another group
// survives it, one on the failed-over group fails clearly.
func TestClusterDestinationFailover(t *testing.T) {
	ctx := harness.Context(t, 3*time.Minute)
	cd := newClusterDest(t, ctx, 200, nil)
	p := cd.client()

	// A SCAN cursor inside group 0, another inside group 1.
	cursorIn := func(g int) uint64 {
		var cursor uint64
		b := scanBits(3)
		for i := 0; i < 1000; i++ {
			_, next, err := p.Scan(ctx, cursor, "k:*", 5).Result()
			if err != nil || next == 0 {
				t.Fatalf("SCAN: %d %v", next, err)
			}
			cursor = next
			if int(cursor&(1<<b-1)) == g && cursor>>(b+scanTagBits) != 0 {
				return cursor
			}
		}
		t.Fatalf("no cursor inside group %d", g)
		return 0
	}
	in0, in1 := cursorIn(0), cursorIn(1)

	r := startReader(ctx, p, cd.keys, 200000)
	old := cd.d.Addr(1)
	cd.c.Failover(t, ctx, 1)
	if err := cd.d.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if cd.d.Addr(1) == old {
		t.Fatalf("group 1's master is still %s after the failover", old)
	}
	time.Sleep(100 * time.Millisecond) // reads on the new master
	n, errs := r.end()
	if len(errs) > 0 {
		t.Fatalf("%d of %d reads during the failover failed, first: %s", len(errs), n, errs[0])
	}
	t.Logf("%d reads during the failover, none failed", n)
	if got := cd.srv.pools.db(0)[1].Addr(); got != cd.d.Addr(1) {
		t.Fatalf("the proxy reads group 1 from %s, its master is %s", got, cd.d.Addr(1))
	}
	cd.checkReads(ctx, p)

	if _, _, err := p.Scan(ctx, in0, "k:*", 5).Result(); err != nil {
		t.Fatalf("a cursor on group 0 after group 1 failed over: %v", err)
	}
	wantErr(t, p.Do(ctx, "SCAN", strconv.FormatUint(in1, 10), "MATCH", "k:*").Err(), errStaleCursor)
}

// TestClusterDestinationKill: a master killed with kill -9: the proxy
// follows the promoted replica (a connection error asks the destination
// for a refresh) and serves every key again.
func TestClusterDestinationKill(t *testing.T) {
	ctx := harness.Context(t, 3*time.Minute)
	cd := newClusterDest(t, ctx, 100, nil)
	p := cd.client()
	// Wait until each replica holds every key before killing a master.
	for _, m := range cd.c.Masters(ctx) {
		if err := m.Do(ctx, "WAIT", 1, 5000).Err(); err != nil {
			t.Fatal(err)
		}
	}
	cd.c.KillMaster(t, ctx, 2)
	k := cd.keys[0]
	for _, key := range cd.keys {
		if cd.d.Map().ShardOf([]byte(key)) == 2 {
			k = key
			break
		}
	}
	harness.WaitFor(t, 30*time.Second, "the proxy reads group 2 again", func() bool {
		v, err := p.Get(ctx, k).Result()
		return err == nil && v == "v-"+k
	})
	if cd.d.Addr(2) != cd.c.MasterOf(2).Addr {
		t.Fatalf("group 2's master %s, want %s", cd.d.Addr(2), cd.c.MasterOf(2).Addr)
	}
	cd.checkReads(ctx, p)
}

// TestClusterDestinationMigration: a slot migrating between groups, and
// moved, is followed by the proxy before any refresh: ASK while keys are
// on both sides, MOVED after; clients never see either.
func TestClusterDestinationMigration(t *testing.T) {
	ctx := harness.Context(t, 3*time.Minute)
	cd := newClusterDest(t, ctx, 50, nil)
	p := cd.client()
	c := cd.c

	// Two keys of one slot of group 0: one stays until MIGRATE, one is
	// written on the importing node.
	k0 := c.KeyInShard(0, "m")
	s := router.Slot([]byte(k0))
	k1 := "{" + router.SlotTag(s) + "}new"
	if router.Slot([]byte(k1)) != s {
		t.Fatalf("SlotTag(%d) does not hash to it", s)
	}
	cc := c.Client()
	if err := cc.Set(ctx, k0, "old", 0).Err(); err != nil {
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
	// Through the proxy: a write of a key the source lacks is ASKed to
	// the importing node; a read of the key still on the source is
	// served there; a read of the new key is ASKed too.
	if err := p.Set(ctx, k1, "new", 0).Err(); err != nil {
		t.Fatalf("SET during the migration: %v", err)
	}
	if n := src.Exists(ctx, k1).Val(); n != 0 {
		t.Fatal("the key written during the migration is on the source")
	}
	if v, err := p.Get(ctx, k0).Result(); err != nil || v != "old" {
		t.Fatalf("GET %s during the migration = %q %v", k0, v, err)
	}
	if v, err := p.Get(ctx, k1).Result(); err != nil || v != "new" {
		t.Fatalf("GET %s during the migration = %q %v", k1, v, err)
	}
	// A multi-key read of keys on both sides: -TRYAGAIN, retried a few
	// times, then answered as the node answers.
	mgets := func() int { // refused by the node: counted as rejected calls
		f := harness.InfoFields(src.Info(ctx, "commandstats").Val())["cmdstat_mget"]
		_, rest, _ := strings.Cut(f, "rejected_calls=")
		calls, _, _ := strings.Cut(rest, ",")
		n, _ := strconv.Atoi(calls)
		return n
	}
	before := mgets()
	_, err := p.MGet(ctx, k0, k1).Result()
	wantErr(t, err, "TRYAGAIN")
	if n := mgets() - before; n != 1+maxRedirects {
		t.Fatalf("the source node refused the MGET %d times, want %d", n, 1+maxRedirects)
	}
	must(src, "MIGRATE", "127.0.0.1", c.MasterOf(1).Port, "", 0, 5000, "KEYS", k0)
	for _, n := range append(c.Masters(ctx), src, dst) {
		must(n, "CLUSTER", "SETSLOT", s, "NODE", dstID)
	}
	if cd.d.Map().ShardOfSlot(s) != 0 {
		t.Fatal("the map moved before any MOVED")
	}
	// Before any refresh: a transaction meets MOVED on every queued
	// command and EXECABORT: nothing ran, it is sent to the new owner.
	cmds, err := p.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Append(ctx, k1, "+tx")
		pipe.Get(ctx, k0)
		return nil
	})
	if err != nil || cmds[0].(*redis.IntCmd).Val() != int64(len("new+tx")) || cmds[1].(*redis.StringCmd).Val() != "old" {
		t.Fatalf("MULTI/EXEC after the migration: %v %v", cmds, err)
	}
	if cd.d.Map().ShardOfSlot(s) != 1 {
		t.Fatalf("slot %d on group %d after MOVED, want 1", s, cd.d.Map().ShardOfSlot(s))
	}
	vals, err := p.MGet(ctx, k0, k1).Result()
	if err != nil || len(vals) != 2 || vals[0] != "old" || vals[1] != "new+tx" {
		t.Fatalf("MGET after the migration = %v %v", vals, err)
	}

	// A slot of group 2 moved whole to group 0, then read before any
	// refresh: MOVED, followed.
	k2 := c.KeyInShard(2, "n")
	s2 := router.Slot([]byte(k2))
	if err := cc.Set(ctx, k2, "two", 0).Err(); err != nil {
		t.Fatal(err)
	}
	src, dst = c.MasterOf(2).Client(), c.MasterOf(0).Client()
	srcID, dstID = src.ClusterMyID(ctx).Val(), dst.ClusterMyID(ctx).Val()
	must(dst, "CLUSTER", "SETSLOT", s2, "IMPORTING", srcID)
	must(src, "CLUSTER", "SETSLOT", s2, "MIGRATING", dstID)
	must(src, "MIGRATE", "127.0.0.1", c.MasterOf(0).Port, "", 0, 5000, "KEYS", k2)
	for _, n := range append(c.Masters(ctx), src, dst) {
		must(n, "CLUSTER", "SETSLOT", s2, "NODE", dstID)
	}
	if cd.d.Map().ShardOfSlot(s2) != 2 {
		t.Fatal("the map moved before any MOVED")
	}
	if v, err := p.Get(ctx, k2).Result(); err != nil || v != "two" {
		t.Fatalf("GET %s after its slot moved = %q %v", k2, v, err)
	}
	if cd.d.Map().ShardOfSlot(s2) != 0 {
		t.Fatalf("slot %d on group %d after MOVED, want 0", s2, cd.d.Map().ShardOfSlot(s2))
	}
	cd.checkReads(ctx, p)
}

// TestClusterDestinationReplicaReads: with read_from replica the proxy
// reads from each group's replicas (READONLY), and after a failover from
// the group's new replicas.
func TestClusterDestinationReplicaReads(t *testing.T) {
	ctx := harness.Context(t, 3*time.Minute)
	cd := newClusterDest(t, ctx, 100, func(cfg *Config) {
		cfg.ReadFrom = ReadReplica
		cfg.ReplicaRefresh = 100 * time.Millisecond
		cfg.MaxReplicaLag = 5 * time.Second
	})
	p := cd.client()
	inRotation := func(g int, addr string) bool {
		for _, n := range cd.srv.Nodes() {
			if n.Shard == g && n.Role == "replica" && n.Addr == addr && n.Up && !n.Unread {
				return true
			}
		}
		return false
	}
	for g := 0; g < 3; g++ {
		harness.WaitFor(t, 10*time.Second, "the replica of group "+strconv.Itoa(g)+" in rotation", func() bool {
			rs := cd.d.Replicas(g)
			return len(rs) == 1 && inRotation(g, rs[0].Addr)
		})
	}
	cd.checkReads(ctx, p)
	replicaReads := func(g int) int64 {
		var n int64
		for _, nd := range cd.srv.Nodes() {
			if nd.Shard == g && nd.Role == "replica" {
				n += nd.Reads
			}
		}
		return n
	}
	for g := 0; g < 3; g++ {
		if replicaReads(g) == 0 {
			t.Fatalf("no read went to group %d's replica: %+v", g, cd.srv.Nodes())
		}
	}

	old := cd.d.Addr(1)
	r := startReader(ctx, p, cd.keys, 200000)
	cd.c.Failover(t, ctx, 1)
	if err := cd.d.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, 10*time.Second, "the old master "+old+" in rotation as group 1's replica", func() bool {
		return inRotation(1, old)
	})
	n, errs := r.end()
	if len(errs) > 0 {
		t.Fatalf("%d of %d reads during the failover failed, first: %s", len(errs), n, errs[0])
	}
	before := replicaReads(1)
	cd.checkReads(ctx, p)
	if replicaReads(1) == before {
		t.Fatalf("no read went to group 1's new replica: %+v", cd.srv.Nodes())
	}
}
