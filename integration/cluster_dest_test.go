package integration

// The acceptance suite of a Redis Cluster destination (#16): replicaof
// started as serve starts it (destination.Open on a seed node, the
// supervisor with its lease and spool, the proxy) writes into a real
// cluster of 3 masters and 3 replicas while the cluster fails over, loses
// a master to kill -9 and moves 500 slots with redis-cli; it must end
// equal to the source key by key, with every counter exact and the
// source having served one full sync. The other tests: the mixed dataset
// with big keys, a cluster with a password, a cluster reached over TLS.
//
// Valkey: Debian 12 (bookworm), what CI installs from, ships no
// valkey-server package (`apt-cache policy valkey-server` has no
// candidate), so the suite runs on redis-server only. The harness takes
// the server from REDIS_SERVER: pointing it at a valkey-server (with
// Valkey's redis-cli compatible client in PATH as redis-cli) runs the
// same suite on Valkey.

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/config"
	destpkg "github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/proxy"
	"github.com/replicaof/replicaof/syncer"
	"github.com/replicaof/replicaof/tlsutil"
)

// clusterDeployment is replicaof serving a Redis Cluster destination, put
// together as serve does it.
type clusterDeployment struct {
	cl    *harness.Cluster
	dest  *destpkg.Destination
	sup   *syncer.Supervisor
	proxy *redis.Client // a client of replicaof's proxy
}

// startClusterDeployment opens the destination from one seed node of cl
// (with cl's password) and runs the supervisor (with a lease, as serve
// always has) and the proxy until the test ends.
func startClusterDeployment(t *testing.T, ctx context.Context, cl *harness.Cluster, seed *harness.Redis, srcs ...config.Source) *clusterDeployment {
	t.Helper()
	return startClusterDeploymentAt(t, ctx, cl, destpkg.Shard{Addr: seed.Addr, Password: seed.Password}, srcs...)
}

// startClusterDeploymentAt is startClusterDeployment with the seed given
// as a destination shard (e.g. a TLS address with its dialer).
func startClusterDeploymentAt(t *testing.T, ctx context.Context, cl *harness.Cluster, seed destpkg.Shard, srcs ...config.Source) *clusterDeployment {
	t.Helper()
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	dest, err := destpkg.Open(octx, destpkg.Config{Shards: []destpkg.Shard{seed}})
	if err != nil {
		t.Fatalf("destination.Open on cluster node %s: %v", seed.Addr, err)
	}
	if !dest.Cluster() {
		dest.Close()
		t.Fatalf("destination.Open on cluster node %s: not in cluster mode", seed.Addr)
	}
	d := &clusterDeployment{cl: cl, dest: dest}
	log := harness.Logger(t, slog.LevelInfo)
	d.sup, err = syncer.New(syncer.Config{
		Sources: srcs, Destination: dest, Logger: log,
		RetryMin: 20 * time.Millisecond, RetryMax: 500 * time.Millisecond,
		SampleInterval: 50 * time.Millisecond,
		Lease:          &syncer.LeaseConfig{ID: "cluster-dest", Addr: "http://cluster-dest", Duration: config.DefaultLease},
		SpoolDir:       t.TempDir(),
	})
	if err != nil {
		dest.Close()
		t.Fatal(err)
	}
	srv, err := proxy.New(proxy.Config{Listen: "127.0.0.1:0", Destination: dest, Logger: log.With("component", "proxy")})
	if err != nil {
		dest.Close()
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = d.sup.Run(rctx) })
	wg.Go(func() { _ = srv.Serve(rctx) })
	d.proxy = redis.NewClient(&redis.Options{Addr: srv.Addr().String(), Protocol: 2,
		DialTimeout: 2 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, MaxRetries: -1})
	t.Cleanup(func() {
		d.proxy.Close()
		stop()
		wg.Wait()
		dest.Close()
	})
	t.Logf("replicaof: cluster destination from seed %s: %d groups, masters %v", seed.Addr, dest.Len(), groupAddrs(dest))
	return d
}

func groupAddrs(d *destpkg.Destination) []string {
	out := make([]string, d.Len())
	for i := range out {
		out[i] = d.Addr(i)
	}
	return out
}

// requireEqual waits until the cluster's masters hold exactly what src
// holds (replicaof's own keys aside), then checks the counters, the
// status, that the source served one full sync, and the proxy's DBSIZE.
func (d *clusterDeployment) requireEqual(t *testing.T, ctx context.Context, src *harness.Redis, counters map[string]int64) {
	t.Helper()
	sc := src.Client()
	waitEqual(t, ctx, map[int][]*redis.Client{0: {sc}}, map[int][]*redis.Client{0: d.cl.Masters(ctx)}, 2*time.Minute)
	if err := checkCounters(ctx, d.cl.Client(), counters); err != nil {
		t.Fatalf("destination: %v", err)
	}
	if err := checkCounters(ctx, sc, counters); err != nil {
		t.Fatalf("source (the workload's own count is off): %v", err)
	}
	waitState(t, d.sup, syncer.StateSynced, time.Minute)
	requireOneFullSync(t, ctx, src, d)
	want, err := sc.DBSize(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := d.proxy.DBSize(ctx).Result(); err != nil || got != want {
		t.Fatalf("DBSIZE through the proxy: %d (%v), the source's: %d", got, err, want)
	}
}

// checkCounters reads every counter through c and compares it with want.
func checkCounters(ctx context.Context, c redis.Cmdable, want map[string]int64) error {
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	for lo := 0; lo < len(keys); lo += 500 {
		part := keys[lo:min(lo+500, len(keys))]
		pipe := c.Pipeline()
		cmds := make([]*redis.StringCmd, len(part))
		for i, k := range part {
			cmds[i] = pipe.Get(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return err
		}
		for i, k := range part {
			v, err := cmds[i].Int64()
			if err != nil {
				return fmt.Errorf("counter %s: %v, want %d", k, err, want[k])
			}
			if v != want[k] {
				return fmt.Errorf("counter %s = %d, want %d", k, v, want[k])
			}
		}
	}
	return nil
}

// counterLoad is the acceptance test's workload on a standalone source:
// INCR and INCRBY on 5000 counters spread over every slot, a MULTI/EXEC
// now and then that moves an amount between two counters of different
// slots (a source transaction the cluster cannot run as one), and SET and
// DEL of 2000 other keys. Bounded by maxOps and its context.
type counterLoad struct {
	c        *redis.Client
	ops      atomic.Int64
	stopping atomic.Bool // set by stop: end after the write in flight
	mu       sync.Mutex
	want     map[string]int64 // counter → exact value, once the load stopped
	done     chan struct{}
	err      error
	maxOps   int64
}

func counterKey(i int) string { return "ctr:" + strconv.Itoa(i) }

// startCounterLoad starts the load on c with a fixed seed.
func startCounterLoad(ctx context.Context, c *redis.Client, seed int64, maxOps int64) *counterLoad {
	l := &counterLoad{c: c, want: map[string]int64{}, done: make(chan struct{}), maxOps: maxOps}
	go func() {
		defer close(l.done)
		l.err = l.run(ctx, rand.New(rand.NewSource(seed)))
	}()
	return l
}

func (l *counterLoad) run(ctx context.Context, rng *rand.Rand) error {
	add := func(k string, n int64) {
		l.mu.Lock()
		l.want[k] += n
		l.mu.Unlock()
	}
	for i := int64(0); i < l.maxOps && !l.stopping.Load(); i++ {
		var err error
		k := counterKey(rng.Intn(5000))
		switch op := rng.Intn(20); {
		case op < 9:
			if err = l.c.Incr(ctx, k).Err(); err == nil {
				add(k, 1)
			}
		case op < 15:
			n := rng.Int63n(1000) - 300
			if err = l.c.IncrBy(ctx, k, n).Err(); err == nil {
				add(k, n)
			}
		case op < 16:
			k2 := counterKey(rng.Intn(5000))
			n := rng.Int63n(50) + 1
			_, err = l.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.DecrBy(ctx, k, n)
				p.IncrBy(ctx, k2, n)
				return nil
			})
			if err == nil {
				add(k, -n)
				add(k2, n)
			}
		case op < 18:
			err = l.c.Set(ctx, "kv:"+strconv.Itoa(rng.Intn(2000)), i, 0).Err()
		default:
			err = l.c.Del(ctx, "kv:"+strconv.Itoa(rng.Intn(2000))).Err()
		}
		if err != nil {
			// Whether the write was applied is unknown (e.g. the test's
			// context ended): the expected counters are no longer exact.
			return fmt.Errorf("workload op %d on the source: %w", i, err)
		}
		l.ops.Add(1)
		if i%8 == 7 {
			time.Sleep(time.Millisecond) // a steady stream, not a flood
		}
	}
	return nil
}

// waitOps waits until the load did n more operations.
func (l *counterLoad) waitOps(t *testing.T, n int64) {
	t.Helper()
	target := l.ops.Load() + n
	harness.WaitFor(t, time.Minute, fmt.Sprintf("%d more workload ops", n), func() bool {
		select {
		case <-l.done:
			return true
		default:
		}
		return l.ops.Load() >= target
	})
	select {
	case <-l.done:
		t.Fatalf("the workload ended early after %d ops: %v", l.ops.Load(), l.err)
	default:
	}
}

// stop ends the load after the write in flight and waits for it.
func (l *counterLoad) stop() {
	l.stopping.Store(true)
	<-l.done
}

// finish stops the load and returns the counters' exact values.
func (l *counterLoad) finish(t *testing.T) map[string]int64 {
	t.Helper()
	l.stop()
	if l.err != nil {
		t.Fatal(l.err)
	}
	return l.want
}

// startClusterSource starts the standalone source of the cluster tests,
// with a backlog large enough that a rewind after a lost master is a
// partial resync.
func startClusterSource(t *testing.T) *harness.Redis {
	return harness.StartRedis(t, "--repl-backlog-size", "256mb", "--repl-diskless-sync-delay", "0")
}

// waitApplied waits until replicaof applied the source's stream up to
// the source's offset now.
func waitApplied(t *testing.T, ctx context.Context, sc *redis.Client, sup *syncer.Supervisor) {
	t.Helper()
	info, err := harness.ReplicationInfo(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	target, err := strconv.ParseInt(info["master_repl_offset"], 10, 64)
	if err != nil {
		t.Fatalf("master_repl_offset %q", info["master_repl_offset"])
	}
	var got int64
	harness.WaitFor(t, time.Minute, fmt.Sprintf("replicaof applies the source up to offset %d", target), func() bool {
		got = sup.Status().Sources[0].AppliedOffset
		return got >= target
	})
}

// requireOneFullSync checks that the source served exactly one full sync.
func requireOneFullSync(t *testing.T, ctx context.Context, src *harness.Redis, d *clusterDeployment) {
	t.Helper()
	sc := src.Client()
	full := harness.InfoField(t, ctx, sc, "stats", "sync_full")
	partial := harness.InfoField(t, ctx, sc, "stats", "sync_partial_ok")
	st := d.sup.Status().Sources[0]
	t.Logf("source: sync_full %s, sync_partial_ok %s; status: full_syncs %d, partial_syncs %d, flushes %d",
		full, partial, st.FullSyncs, st.PartialSyncs, d.sup.Flushes())
	if full != "1" {
		t.Fatalf("the source served %s full syncs, want exactly 1", full)
	}
}

// TestClusterDestinationFaults is #16's acceptance test: a 3-master,
// 3-replica cluster destination; while a counter workload streams from
// the source, a manual CLUSTER FAILOVER of one master, a kill -9 of
// another (its replica, stopped meanwhile, takes over without the last
// acknowledged writes: some MB of big values and counter writes), and a
// reshard of 500 slots by redis-cli. Afterwards: status
// synced, the destination equal to the source key by key, every counter
// exact, DBSIZE through the proxy equal to the source's, and one full
// sync served by the source.
func TestClusterDestinationFaults(t *testing.T) {
	ctx := harness.Context(t, 8*time.Minute)
	cl := harness.StartCluster(t, 3, 1)
	src := startClusterSource(t)
	sc := src.Client()
	// Counters and keys present before the full sync.
	pipe := sc.Pipeline()
	for i := 0; i < 5000; i++ {
		pipe.Set(ctx, counterKey(i), 0, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if err := harness.LoadDataset(ctx, sc, "pre:", 16, 3000); err != nil {
		t.Fatal(err)
	}
	d := startClusterDeployment(t, ctx, cl, cl.Nodes[0], source(t, "src", src, ""))

	load := startCounterLoad(ctx, src.Client(), 1616, 2_000_000)
	defer load.stop()
	waitState(t, d.sup, syncer.StateSynced, 2*time.Minute)
	load.waitOps(t, 3000)

	t.Log("manual failover of shard 0")
	cl.Failover(t, ctx, 0)
	load.waitOps(t, 3000)

	// The replica that takes over misses the master's last writes:
	// replicaof must notice that the group's slots went back and replay
	// them from the source.
	t.Log("kill -9 of shard 1's master, its replica stopped so that it misses writes")
	lost := cl.KillMasterLosingWrites(t, ctx, 1, func() {
		big := strings.Repeat("b", 64<<10)
		for i := 0; i < 200; i++ {
			if err := sc.Set(ctx, cl.KeyInShard(1, fmt.Sprintf("big:%d:", i)), big, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		waitApplied(t, ctx, sc, d.sup)
	})
	t.Logf("the promoted replica missed %d bytes of the killed master's stream", lost)
	load.waitOps(t, 3000)

	t.Log("reshard of 500 slots from shard 0 to shard 2")
	cl.Reshard(t, ctx, 0, 2, 500)
	load.waitOps(t, 3000)

	counters := load.finish(t)
	t.Logf("workload: %d ops", load.ops.Load())
	d.requireEqual(t, ctx, src, counters)
}

// TestClusterDestinationMixedData: the mixed dataset (every type, binary
// values, TTLs, slot-sharing keys) and big keys of every type sync equal
// into a 3-master cluster, and so does the mixed workload streamed after.
func TestClusterDestinationMixedData(t *testing.T) {
	ctx := harness.Context(t, 5*time.Minute)
	cl := harness.StartCluster(t, 3, 1)
	src := startClusterSource(t)
	sc := src.Client()
	if err := harness.LoadDataset(ctx, sc, "", 61, 20000); err != nil {
		t.Fatal(err)
	}
	if err := harness.LoadBigKeys(ctx, sc, "", 100000); err != nil {
		t.Fatal(err)
	}
	d := startClusterDeployment(t, ctx, cl, cl.Nodes[4], source(t, "src", src, ""))
	w := &harness.Workload{Seed: 62}
	if err := w.Run(ctx, sc, nil, 5000); err != nil {
		t.Fatal(err)
	}
	waitState(t, d.sup, syncer.StateSynced, 2*time.Minute)
	if err := w.Run(ctx, sc, nil, 5000); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{}
	for k, n := range w.Counters {
		want[k] = int64(n)
	}
	d.requireEqual(t, ctx, src, want)
}

// TestClusterDestinationPassword: a cluster whose nodes require a
// password (requirepass, masterauth) is reached with the seed's password
// on every node, before and after a failover moves a group's master.
func TestClusterDestinationPassword(t *testing.T) {
	ctx := harness.Context(t, 4*time.Minute)
	cl := harness.StartClusterWith(t, harness.ClusterOptions{Masters: 3, ReplicasPerMaster: 1, Password: "cluster-secret"})
	src := startClusterSource(t)
	if err := harness.LoadDataset(ctx, src.Client(), "", 71, 3000); err != nil {
		t.Fatal(err)
	}
	d := startClusterDeployment(t, ctx, cl, cl.Nodes[2], source(t, "src", src, ""))
	load := startCounterLoad(ctx, src.Client(), 72, 1_000_000)
	defer load.stop()
	waitState(t, d.sup, syncer.StateSynced, 2*time.Minute)
	load.waitOps(t, 2000)
	cl.Failover(t, ctx, 2)
	load.waitOps(t, 2000)
	d.requireEqual(t, ctx, src, load.finish(t))
}

// TestClusterDestinationTLS: a cluster reached over TLS only (the seed's
// TLS address and dialer serve for every node: the nodes name their TLS
// ports to a TLS client) syncs and stays exact through a failover and a
// reshard.
func TestClusterDestinationTLS(t *testing.T) {
	ctx := harness.Context(t, 4*time.Minute)
	certs, err := tlsutil.GenerateDemo(filepath.Join(t.TempDir(), "certs"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cl := harness.StartClusterWith(t, harness.ClusterOptions{Masters: 3, ReplicasPerMaster: 1, TLS: &certs})
	src := startClusterSource(t)
	if err := harness.LoadDataset(ctx, src.Client(), "", 81, 3000); err != nil {
		t.Fatal(err)
	}
	tc, err := tlsutil.ClientConfig("127.0.0.1", tlsutil.ClientOptions{CAFile: certs.CA})
	if err != nil {
		t.Fatal(err)
	}
	d := startClusterDeploymentAt(t, ctx, cl, destpkg.Shard{Addr: cl.TLSAddr(1), Dial: (&tlsutil.Dialer{Config: tc}).DialContext},
		source(t, "src", src, ""))
	for i := 0; i < d.dest.Len(); i++ {
		if a := d.dest.Addr(i); a != cl.TLSAddr(i) {
			t.Fatalf("group %d's master is %s, want its TLS address %s", i, a, cl.TLSAddr(i))
		}
	}
	load := startCounterLoad(ctx, src.Client(), 82, 1_000_000)
	defer load.stop()
	waitState(t, d.sup, syncer.StateSynced, 2*time.Minute)
	load.waitOps(t, 2000)
	cl.Failover(t, ctx, 1)
	load.waitOps(t, 2000)
	cl.Reshard(t, ctx, 1, 2, 200)
	load.waitOps(t, 2000)
	d.requireEqual(t, ctx, src, load.finish(t))
}
