package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/internal/redisproc"
	"github.com/replicaof/replicaof/router"
	"github.com/replicaof/replicaof/tlsutil"
)

// clusterWait bounds every wait of the cluster harness: forming the
// cluster, a failover, a promotion after a kill.
const clusterWait = 30 * time.Second

// Cluster is a Redis Cluster of real redis-server processes on 127.0.0.1,
// started for one test and stopped at its cleanup.
//
// A shard is numbered by the master it started with: shard i starts with
// the slots [i*16384/masters, (i+1)*16384/masters) (SlotRange), whichever
// of its nodes is master at the moment. Failover and KillMaster change
// roles, never indexes; Reshard moves slots from one shard to another.
//
// Addr, Client, MasterOf, SlotRange, Slots and KeyInShard may be called
// from any goroutine; Masters, Failover, KillMaster and Reshard fail the
// test, so only from the goroutine of the test they were given, one at a
// time.
type Cluster struct {
	// Nodes are the servers: the masters first, in slot order, then the
	// replicas, replicasPerMaster per shard, shard by shard (replica j of
	// shard i is Nodes[masters+i*replicasPerMaster+j]).
	Nodes []*Redis

	t        testing.TB
	masters  int
	replicas int             // per shard
	password string          // requirepass and masterauth of every node; "" for none
	tls      *tlsutil.Files  // the certificates of a TLS cluster; nil for plain TCP
	tlsPorts []int           // each node's TLS port (TLS clusters), by node index
	ids      []string        // cluster node IDs, by node index
	bus      []int           // cluster bus ports, by node index
	admin    []*redis.Client // one plain client per node, by node index
	client   *redis.ClusterClient

	mu    sync.Mutex
	cur   []int  // current master's node index, by shard
	down  []bool // killed by KillMaster, by node index
	owner []int  // the shard owning each slot; nil means SlotRange's split
}

// ClusterOptions describe the cluster StartClusterWith starts.
type ClusterOptions struct {
	Masters           int // 1..16384
	ReplicasPerMaster int // 0 or more
	// Password, when set, is every node's requirepass and masterauth; the
	// harness's own clients (Client, Masters, each node's Client) and
	// redis-cli use it.
	Password string
	// TLS, when set, gives every node a TLS port (TLSAddr) next to its
	// plain one, with the demo proxy certificate of these files, clients
	// certificates optional, and TLS on the cluster bus and between
	// masters and replicas (tls-cluster, tls-replication); the harness's
	// own clients keep the plain ports. Redis then names a node by its
	// TLS port to TLS clients (CLUSTER SLOTS, SHARDS, MOVED) and by its
	// plain port to the others.
	TLS *tlsutil.Files
	// Extra holds more `--name value` redis-server arguments for every
	// node.
	Extra []string
}

// StartCluster starts masters*(1+replicasPerMaster) redis-server nodes in
// cluster mode (each with its cluster config file, nodes.conf, in its own
// directory; cluster-node-timeout 1000 ms; replicas may always fail over),
// gives shard i the i-th of masters contiguous, near-equal slot ranges,
// joins the nodes with CLUSTER MEET, makes the replicas replicate their
// shard's master, and returns once every node reports cluster_state:ok,
// every replica's link is up and all nodes show the same, expected
// CLUSTER SLOTS. Everything is stopped at the test's cleanup; on failure
// each node's CLUSTER NODES view and log are printed.
//
// Every node announces 127.0.0.1 and has a cluster bus port of its own
// (cluster-port); replicas never migrate to other shards and sync without
// delay (repl-diskless-sync-delay 0). Before returning, each master's
// replication stream got one SET and one DEL of a key
// "__harness:init:<n>" (see the comment in the code); the keyspace is
// empty.
//
// Masters take about two seconds to declare the cluster ok after they
// start (Redis' CLUSTER_WRITABLE_DELAY), so this costs at least that.
func StartCluster(t testing.TB, masters, replicasPerMaster int) *Cluster {
	t.Helper()
	return StartClusterWith(t, ClusterOptions{Masters: masters, ReplicasPerMaster: replicasPerMaster})
}

// StartClusterWith is StartCluster with the options of o: a password on
// every node, more server arguments.
func StartClusterWith(t testing.TB, o ClusterOptions) *Cluster {
	t.Helper()
	masters, replicasPerMaster := o.Masters, o.ReplicasPerMaster
	if masters < 1 || masters > router.SlotCount || replicasPerMaster < 0 {
		t.Fatalf("harness: StartCluster(%d, %d): need 1..16384 masters and replicas >= 0", masters, replicasPerMaster)
	}
	n := masters * (1 + replicasPerMaster)
	c := &Cluster{
		t: t, masters: masters, replicas: replicasPerMaster, password: o.Password, tls: o.TLS,
		ids: make([]string, n), admin: make([]*redis.Client, n),
		cur: make([]int, masters), down: make([]bool, n),
	}
	for i := range c.cur {
		c.cur[i] = i
	}
	for i := 0; i < n; i++ {
		extra := o.Extra
		if o.Password != "" {
			extra = append([]string{"--requirepass", o.Password, "--masterauth", o.Password}, extra...)
		}
		if o.TLS != nil {
			extra = append([]string{
				"--tls-cert-file", o.TLS.ProxyCert, "--tls-key-file", o.TLS.ProxyKey,
				"--tls-ca-cert-file", o.TLS.CA, "--tls-auth-clients", "optional",
				"--tls-cluster", "yes", "--tls-replication", "yes",
			}, extra...)
		}
		r, bus, tlsPort := startClusterNode(t, o.TLS != nil, extra...)
		r.Password = o.Password
		c.Nodes = append(c.Nodes, r)
		c.bus = append(c.bus, bus)
		c.tlsPorts = append(c.tlsPorts, tlsPort)
		c.admin[i] = r.Client()
	}
	t.Cleanup(func() {
		if t.Failed() {
			c.logViews()
		}
		if c.client != nil {
			c.client.Close()
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 2*clusterWait)
	defer cancel()
	for i, a := range c.admin {
		id, err := a.ClusterMyID(ctx).Result()
		if err != nil {
			t.Fatalf("harness: CLUSTER MYID on %s: %v", c.Nodes[i].Addr, err)
		}
		c.ids[i] = id
	}
	for s := 0; s < masters; s++ {
		lo, hi := c.SlotRange(s)
		if err := c.admin[s].Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			t.Fatalf("harness: CLUSTER ADDSLOTSRANGE %d %d on %s: %v", lo, hi, c.Nodes[s].Addr, err)
		}
	}
	first := c.Nodes[0]
	for i := 1; i < n; i++ {
		if err := c.admin[i].Do(ctx, "CLUSTER", "MEET", "127.0.0.1", first.Port, c.bus[0]).Err(); err != nil {
			t.Fatalf("harness: CLUSTER MEET from %s: %v", c.Nodes[i].Addr, err)
		}
	}
	c.waitFor(t, "every node knows every other", func() string {
		for i, a := range c.admin {
			text, err := a.ClusterNodes(ctx).Result()
			if err != nil {
				return fmt.Sprintf("%s: CLUSTER NODES: %v", c.Nodes[i].Addr, err)
			}
			for j, id := range c.ids {
				line := nodesLine(text, id)
				if line == "" || strings.Contains(line, "handshake") || strings.Contains(line, "noaddr") {
					return fmt.Sprintf("%s does not know node %d (%s) yet", c.Nodes[i].Addr, j, c.Nodes[j].Addr)
				}
			}
		}
		return ""
	})
	for i := masters; i < n; i++ {
		m := c.shardOf(i)
		c.waitFor(t, "CLUSTER REPLICATE", func() string {
			if err := c.admin[i].Do(ctx, "CLUSTER", "REPLICATE", c.ids[m]).Err(); err != nil {
				return fmt.Sprintf("%s: CLUSTER REPLICATE %s: %v", c.Nodes[i].Addr, c.ids[m], err)
			}
			return ""
		})
	}
	// A replica whose replication offset is still 0 is left out of
	// CLUSTER SLOTS (isReplicaAvailable in src/cluster.c), and an idle
	// master's offset only moves with its heartbeat PING every 10 s: write
	// (and remove) a key on each master once its replicas are linked.
	c.waitFor(t, "replicas linked", func() string {
		for i := masters; i < n; i++ {
			info, err := ReplicationInfo(ctx, c.admin[i])
			if err != nil {
				return fmt.Sprintf("%s: %v", c.Nodes[i].Addr, err)
			}
			if info["master_link_status"] != "up" {
				return fmt.Sprintf("%s: master_link_status %s", c.Nodes[i].Addr, info["master_link_status"])
			}
		}
		return ""
	})
	for s := 0; s < masters; s++ {
		key := c.KeyInShard(s, "__harness:init:")
		c.waitFor(t, "a write on each master", func() string {
			// CLUSTERDOWN until the master declares the cluster ok.
			if err := c.admin[s].Set(ctx, key, "1", 0).Err(); err != nil {
				return fmt.Sprintf("SET on %s: %v", c.Nodes[s].Addr, err)
			}
			if err := c.admin[s].Del(ctx, key).Err(); err != nil {
				return fmt.Sprintf("DEL on %s: %v", c.Nodes[s].Addr, err)
			}
			return ""
		})
	}
	c.waitHealthy(t, ctx, "cluster formed")

	addrs := make([]string, n)
	for i, r := range c.Nodes {
		addrs[i] = r.Addr
	}
	c.client = redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:    addrs,
		Password: o.Password,
		Protocol: 2,
		// A failover moves slots: MOVED, CLUSTERDOWN, TRYAGAIN and dial
		// errors to a dead master each use one of these attempts.
		MaxRedirects:    16,
		MinRetryBackoff: 10 * time.Millisecond,
		MaxRetryBackoff: 250 * time.Millisecond,
		DialTimeout:     2 * time.Second,
		DialerRetries:   1,
		// Above the 10 s a manual failover may pause writes for.
		ReadTimeout:     15 * time.Second,
		WriteTimeout:    15 * time.Second,
		DisableIdentity: true,
	})
	return c
}

// startClusterNode starts one cluster-enabled redis-server like StartRedis
// does, with its cluster bus on a port of its own: the default bus port,
// port+10000, does not exist for ports above 55535, which the kernel hands
// out as free ports. With tls it also listens for TLS on a port of its
// own. It retries when a port it picked was taken meanwhile, and returns
// the node, its bus port and its TLS port (0 without tls).
func startClusterNode(t testing.TB, tls bool, extra ...string) (*Redis, int, int) {
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		dir := t.TempDir()
		bus, err := redisproc.FreePort()
		if err != nil {
			t.Fatalf("harness: no free port: %v", err)
		}
		args := extra
		tlsPort := 0
		if tls {
			if tlsPort, err = redisproc.FreePort(); err != nil {
				t.Fatalf("harness: no free port: %v", err)
			}
			args = append([]string{"--tls-port", strconv.Itoa(tlsPort)}, extra...)
		}
		r, err := start(t, dir, append([]string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-port", strconv.Itoa(bus),
			// A lone node never learns its own address from a peer.
			"--cluster-announce-ip", "127.0.0.1",
			"--cluster-node-timeout", "1000",
			// Any replica may fail over, however long its link was down.
			"--cluster-replica-validity-factor", "0",
			// Replicas stay in the shard they were given.
			"--cluster-allow-replica-migration", "no",
			// Replicas sync at once, not after 5 s.
			"--repl-diskless-sync-delay", "0",
		}, args...)...)
		if err != nil {
			lastErr = err
			continue
		}
		return r, bus, tlsPort
	}
	t.Fatalf("harness: cluster node did not start: %v", lastErr)
	return nil, 0, 0
}

// TLSAddr returns node i's TLS address (a cluster started with TLS).
func (c *Cluster) TLSAddr(i int) string {
	if c.tls == nil {
		c.t.Fatalf("harness: TLSAddr: the cluster has no TLS")
	}
	return "127.0.0.1:" + strconv.Itoa(c.tlsPorts[i])
}

// replPort is the port node i's replicas connect to: its TLS port with
// tls-replication, else its port.
func (c *Cluster) replPort(i int) int {
	if c.tls != nil {
		return c.tlsPorts[i]
	}
	return c.Nodes[i].Port
}

// SlotRange returns the first and last slot shard s started with.
func (c *Cluster) SlotRange(s int) (lo, hi int) {
	return s * router.SlotCount / c.masters, (s+1)*router.SlotCount/c.masters - 1
}

// shardOfSlot returns the shard owning slot now, as the harness last saw
// it (after StartCluster or Reshard).
func (c *Cluster) shardOfSlot(slot int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.owner != nil {
		return c.owner[slot]
	}
	// The s with SlotRange(s) = [s*N/masters, (s+1)*N/masters) holding slot.
	return ((slot+1)*c.masters - 1) / router.SlotCount
}

// Slots returns the slots shard s owns now, in ascending order, as the
// harness last saw it (after StartCluster or Reshard).
func (c *Cluster) Slots(s int) []int {
	var out []int
	for sl := 0; sl < router.SlotCount; sl++ {
		if c.shardOfSlot(sl) == s {
			out = append(out, sl)
		}
	}
	return out
}

// KeyInShard returns a key, made from prefix and a number, whose slot
// belongs to shard s now. Shard s must own a slot.
func (c *Cluster) KeyInShard(s int, prefix string) string {
	for i := 0; ; i++ {
		k := prefix + strconv.Itoa(i)
		if c.shardOfSlot(int(router.Slot([]byte(k)))) == s {
			return k
		}
	}
}

// Addr returns a node's address to use as a source URL's host:port: the
// first master's, or if it was killed the first live node's.
func (c *Cluster) Addr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, r := range c.Nodes {
		if !c.down[i] {
			return r.Addr
		}
	}
	return c.Nodes[0].Addr
}

// Client returns the cluster's go-redis client (RESP2), closed at cleanup.
// It follows MOVED after a failover; after KillMaster it already routes to
// the promoted replica.
func (c *Cluster) Client() *redis.ClusterClient { return c.client }

// MasterOf returns the node that is master of shard s now, as the harness
// last saw it (after StartCluster, Failover or KillMaster).
func (c *Cluster) MasterOf(s int) *Redis {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Nodes[c.cur[s]]
}

// Masters asks the cluster (CLUSTER SLOTS on the first live node) which
// nodes are masters now, and returns one client per master, ordered by
// the lowest slot each owns,
// e.g. for Compare. The clients are shared: do not close them. It fails
// the test given to StartCluster, so call it from the test's goroutine.
func (c *Cluster) Masters(ctx context.Context) []*redis.Client {
	c.t.Helper()
	var lastErr error
	for i := range c.Nodes {
		if c.isDown(i) {
			continue
		}
		slots, err := c.admin[i].ClusterSlots(ctx).Result()
		if err != nil {
			lastErr = err
			continue
		}
		slices.SortFunc(slots, func(a, b redis.ClusterSlot) int { return a.Start - b.Start })
		var out []*redis.Client
		for _, s := range slots {
			if len(s.Nodes) == 0 {
				continue
			}
			j := c.nodeByAddr(s.Nodes[0].Addr)
			if j < 0 {
				c.t.Fatalf("harness: CLUSTER SLOTS names unknown master %s", s.Nodes[0].Addr)
			}
			// After a reshard a master may own ranges that are not
			// adjacent: list it once, at its lowest slot.
			if !slices.Contains(out, c.admin[j]) {
				out = append(out, c.admin[j])
			}
		}
		return out
	}
	c.t.Fatalf("harness: no cluster node answered CLUSTER SLOTS: %v", lastErr)
	return nil
}

// Failover runs a graceful manual failover of shard s (CLUSTER FAILOVER on
// its first live replica) and returns once that replica is master, every
// other live node of the shard (the old master among them) replicates it
// with its link up, and every node reports cluster_state:ok and the same,
// updated CLUSTER SLOTS. The old master's replicas, including raw PSYNC
// clients, are disconnected once it resyncs with the new master.
func (c *Cluster) Failover(t testing.TB, ctx context.Context, s int) {
	t.Helper()
	old, cand := c.shardRoles(t, s)
	if len(cand) == 0 {
		t.Fatalf("harness: Failover(%d): the shard has no live replica", s)
	}
	rep := cand[0]
	var asked time.Time
	c.waitFor(t, fmt.Sprintf("replica %s takes over shard %d", c.Nodes[rep].Addr, s), func() string {
		info, err := ReplicationInfo(ctx, c.admin[rep])
		if err != nil {
			return err.Error()
		}
		if info["role"] == "master" {
			return ""
		}
		// A manual failover that cannot finish is abandoned by Redis
		// after 5 s (CLUSTER_MF_TIMEOUT); ask again after that.
		if time.Since(asked) > 6*time.Second {
			if err := c.admin[rep].Do(ctx, "CLUSTER", "FAILOVER").Err(); err != nil {
				return fmt.Sprintf("CLUSTER FAILOVER on %s: %v", c.Nodes[rep].Addr, err)
			}
			asked = time.Now()
		}
		return fmt.Sprintf("%s is still %s", c.Nodes[rep].Addr, info["role"])
	})
	c.mu.Lock()
	c.cur[s] = rep
	c.mu.Unlock()
	c.waitHealthy(t, ctx, fmt.Sprintf("after failover of shard %d from %s to %s", s, c.Nodes[old].Addr, c.Nodes[rep].Addr))
}

// KillMaster kills shard s's current master with SIGKILL and returns once
// one of its replicas was elected in its place (after the
// cluster-node-timeout), every live node reports cluster_state:ok and the
// same CLUSTER SLOTS, and Client routes the shard's slots to the new
// master (it writes and deletes a key "__harness:probe:<n>" through
// Client to see that). Writes the replica had not received are lost: use
// WAIT first if the test needs them. The killed node stays down. The election needs a
// majority of masters, so the cluster needs 3 masters or more.
func (c *Cluster) KillMaster(t testing.TB, ctx context.Context, s int) {
	t.Helper()
	c.killMaster(t, ctx, s, nil)
}

// KillMasterLosingWrites is KillMaster arranged so that the replica taking
// over misses the master's last acknowledged writes, as kill -9 can do in
// production: it stops shard s's replicas (SIGSTOP), calls write (which
// makes the master take writes, enough to exceed what the kernel buffers
// between master and replica, e.g. several MB, and waits until they were
// acknowledged), kills the master, resumes the replicas and waits as
// KillMaster does. It returns how many bytes of the killed master's
// replication stream the promoted replica never got (its
// second_repl_offset against the master's offset before the kill), and
// fails the test when that is not positive: the kill lost nothing.
func (c *Cluster) KillMasterLosingWrites(t testing.TB, ctx context.Context, s int, write func()) int64 {
	t.Helper()
	var before int64
	rep := c.killMaster(t, ctx, s, func(old int, cand []int) func() {
		resumed := false
		resume := func() {
			if !resumed {
				resumed = true
				for _, i := range cand {
					_ = c.Nodes[i].Signal(syscall.SIGCONT)
				}
			}
		}
		for _, i := range cand {
			if err := c.Nodes[i].Signal(syscall.SIGSTOP); err != nil {
				resume()
				t.Fatalf("harness: SIGSTOP to replica %s: %v", c.Nodes[i].Addr, err)
			}
		}
		ok := false
		defer func() {
			if !ok {
				resume()
			}
		}()
		write()
		info, err := ReplicationInfo(ctx, c.admin[old])
		if err != nil {
			t.Fatalf("harness: INFO replication on %s: %v", c.Nodes[old].Addr, err)
		}
		if before, err = strconv.ParseInt(info["master_repl_offset"], 10, 64); err != nil {
			t.Fatalf("harness: master_repl_offset of %s: %q", c.Nodes[old].Addr, info["master_repl_offset"])
		}
		ok = true
		return resume
	})
	info, err := ReplicationInfo(ctx, c.admin[rep])
	if err != nil {
		t.Fatalf("harness: INFO replication on %s: %v", c.Nodes[rep].Addr, err)
	}
	second, err := strconv.ParseInt(info["second_repl_offset"], 10, 64)
	if err != nil {
		t.Fatalf("harness: second_repl_offset of %s: %q", c.Nodes[rep].Addr, info["second_repl_offset"])
	}
	lost := before - (second - 1)
	if lost <= 0 {
		t.Fatalf("harness: the replica promoted in shard %d had all of the killed master's stream (offset %d, it switched at %d): the kill lost no write; write more in write", s, before, second-1)
	}
	return lost
}

// killMaster kills shard s's master and waits for its successor, which it
// returns. prepare, when set, runs before the kill with the master and its
// live replicas; the func it returns runs right after the kill.
func (c *Cluster) killMaster(t testing.TB, ctx context.Context, s int, prepare func(master int, replicas []int) func()) int {
	t.Helper()
	if c.masters < 3 {
		t.Fatalf("harness: KillMaster needs >= 3 masters for an election, the cluster has %d", c.masters)
	}
	old, cand := c.shardRoles(t, s)
	if len(cand) == 0 {
		t.Fatalf("harness: KillMaster(%d): the shard has no live replica", s)
	}
	var after func()
	if prepare != nil {
		after = prepare(old, cand)
	}
	c.Nodes[old].Kill()
	c.mu.Lock()
	c.down[old] = true
	c.mu.Unlock()
	if after != nil {
		after()
	}
	rep := -1
	c.waitFor(t, fmt.Sprintf("a replica of shard %d is elected after %s was killed", s, c.Nodes[old].Addr), func() string {
		for _, i := range cand {
			info, err := ReplicationInfo(ctx, c.admin[i])
			if err == nil && info["role"] == "master" {
				rep = i
				return ""
			}
		}
		return "no replica promoted yet"
	})
	c.mu.Lock()
	c.cur[s] = rep
	c.mu.Unlock()
	c.waitHealthy(t, ctx, fmt.Sprintf("after %s was killed and %s promoted", c.Nodes[old].Addr, c.Nodes[rep].Addr))

	// The client only learns of a dead node's successor by reloading the
	// slot map; make sure it has before returning.
	key := c.KeyInShard(s, "__harness:probe:")
	c.waitFor(t, "the cluster client routes to the promoted master", func() string {
		c.client.ReloadState(ctx)
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if err := c.client.Set(cctx, key, "1", 0).Err(); err != nil {
			return err.Error()
		}
		return ""
	})
	if err := c.client.Del(ctx, key).Err(); err != nil {
		t.Fatalf("harness: cluster client after promotion: %v", err)
	}
	return rep
}

// Reshard moves n slots, with their keys, from shard from to shard to as
// an operator does: `redis-cli --cluster reshard --cluster-yes` against
// the target's master (redis-cli picks the slots: the lowest of from's),
// which marks each slot migrating/importing, MIGRATEs its keys a batch at
// a time and then assigns it, while the cluster keeps serving. It returns
// once redis-cli succeeded, exactly n slots of from belong to to, and
// every live node reports cluster_state:ok and the same, updated CLUSTER
// SLOTS. It fails the test, with redis-cli's output, when redis-cli is
// missing or fails; redis-cli gets the cluster's password through
// REDISCLI_AUTH.
func (c *Cluster) Reshard(t testing.TB, ctx context.Context, from, to, n int) {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("harness: Reshard runs `redis-cli --cluster reshard`, and redis-cli is not in PATH: %s", InstallHint)
	}
	src, _ := c.shardRoles(t, from)
	dst, _ := c.shardRoles(t, to)
	if from == to || n < 1 || n > len(c.Slots(from)) {
		t.Fatalf("harness: Reshard(%d → %d, %d slots): shard %d owns %d slots", from, to, n, from, len(c.Slots(from)))
	}
	rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	// MIGRATE between the nodes of a TLS cluster goes over TLS: redis-cli
	// must see the nodes' TLS ports, so it talks TLS too.
	args := []string{"--cluster", "reshard", c.Nodes[dst].Addr}
	if c.tls != nil {
		args = []string{"--tls", "--cacert", c.tls.CA, "--cert", c.tls.ProxyCert, "--key", c.tls.ProxyKey,
			"--cluster", "reshard", c.TLSAddr(dst)}
	}
	cmd := exec.CommandContext(rctx, cli, append(args,
		"--cluster-from", c.ids[src], "--cluster-to", c.ids[dst],
		"--cluster-slots", strconv.Itoa(n), "--cluster-yes")...)
	cmd.Env = os.Environ()
	if c.password != "" {
		cmd.Env = append(cmd.Env, "REDISCLI_AUTH="+c.password)
	}
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("harness: redis-cli --cluster reshard of %d slots from %s to %s: %v\n%s",
			n, c.Nodes[src].Addr, c.Nodes[dst].Addr, err, tail(string(out), 4000))
	}
	if rctx.Err() != nil {
		t.Fatalf("harness: redis-cli --cluster reshard: %v", rctx.Err())
	}
	t.Logf("harness: redis-cli moved %d slots from shard %d (%s) to shard %d (%s) in %v",
		n, from, c.Nodes[src].Addr, to, c.Nodes[dst].Addr, time.Since(t0).Round(time.Millisecond))

	// The target's own view of what it owns is authoritative once
	// redis-cli is done: every slot it gained was from's.
	slots, err := c.admin[dst].ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatalf("harness: CLUSTER SLOTS on %s after the reshard: %v", c.Nodes[dst].Addr, err)
	}
	owner := make([]int, router.SlotCount)
	for sl := range owner {
		owner[sl] = c.shardOfSlot(sl)
	}
	moved := 0
	for _, r := range slots {
		if len(r.Nodes) == 0 || r.Nodes[0].Addr != c.Nodes[dst].Addr {
			continue
		}
		for sl := r.Start; sl <= r.End; sl++ {
			switch owner[sl] {
			case to:
			case from:
				owner[sl] = to
				moved++
			default:
				t.Fatalf("harness: after the reshard %s owns slot %d, which was shard %d's", c.Nodes[dst].Addr, sl, owner[sl])
			}
		}
	}
	if moved != n {
		t.Fatalf("harness: redis-cli moved %d slots from shard %d to %d, want %d\n%s", moved, from, to, n, tail(string(out), 4000))
	}
	c.mu.Lock()
	c.owner = owner
	c.mu.Unlock()
	c.waitHealthy(t, ctx, fmt.Sprintf("after %d slots moved from shard %d to %d", n, from, to))
}

// tail returns the last max bytes of s.
func tail(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return "…" + s[len(s)-max:]
}

// shardRoles returns shard s's current master and its live replicas.
func (c *Cluster) shardRoles(t testing.TB, s int) (master int, replicas []int) {
	t.Helper()
	if s < 0 || s >= c.masters {
		t.Fatalf("harness: no shard %d (the cluster has %d)", s, c.masters)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	master = c.cur[s]
	for i := range c.Nodes {
		if c.shardOf(i) == s && i != master && !c.down[i] {
			replicas = append(replicas, i)
		}
	}
	return master, replicas
}

// shardOf returns the shard node i was started in.
func (c *Cluster) shardOf(i int) int {
	if i < c.masters {
		return i
	}
	return (i - c.masters) / c.replicas
}

func (c *Cluster) isDown(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.down[i]
}

func (c *Cluster) nodeByAddr(addr string) int {
	for i, r := range c.Nodes {
		if r.Addr == addr {
			return i
		}
	}
	return -1
}

// wantSlots renders the slot map the harness expects, in the form of
// slotsText.
func (c *Cluster) wantSlots() string {
	owner := make([]int, router.SlotCount)
	for sl := range owner {
		owner[sl] = c.shardOfSlot(sl)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for lo := 0; lo < router.SlotCount; {
		s, hi := owner[lo], lo
		for hi+1 < router.SlotCount && owner[hi+1] == s {
			hi++
		}
		var reps []string
		for i := range c.Nodes {
			if c.shardOf(i) == s && i != c.cur[s] && !c.down[i] {
				reps = append(reps, c.Nodes[i].Addr)
			}
		}
		slices.Sort(reps)
		fmt.Fprintf(&b, "%d-%d %s %v\n", lo, hi, c.Nodes[c.cur[s]].Addr, reps)
		lo = hi + 1
	}
	return b.String()
}

// slotsText renders CLUSTER SLOTS independently of the order a node lists
// ranges and replicas in: one "lo-hi master [replicas]" line per range.
func slotsText(slots []redis.ClusterSlot) string {
	slices.SortFunc(slots, func(a, b redis.ClusterSlot) int { return a.Start - b.Start })
	var b strings.Builder
	for _, s := range slots {
		master := ""
		var reps []string
		for j, n := range s.Nodes {
			if j == 0 {
				master = n.Addr
			} else {
				reps = append(reps, n.Addr)
			}
		}
		slices.Sort(reps)
		fmt.Fprintf(&b, "%d-%d %s %v\n", s.Start, s.End, master, reps)
	}
	return b.String()
}

// waitHealthy waits until every live node reports cluster_state:ok and the
// expected CLUSTER SLOTS, every shard's current master is a master, and
// every other live node replicates its shard's master with its link up.
func (c *Cluster) waitHealthy(t testing.TB, ctx context.Context, what string) {
	t.Helper()
	want := c.wantSlots()
	c.waitFor(t, what+": cluster ok, replicas linked, CLUSTER SLOTS agreed", func() string {
		for i, a := range c.admin {
			if c.isDown(i) {
				continue
			}
			addr := c.Nodes[i].Addr
			pipe := a.Pipeline()
			state := pipe.ClusterInfo(ctx)
			slots := pipe.ClusterSlots(ctx)
			repl := pipe.Info(ctx, "replication")
			if _, err := pipe.Exec(ctx); err != nil {
				return fmt.Sprintf("%s: %v", addr, err)
			}
			if !strings.Contains(state.Val(), "cluster_state:ok") {
				return addr + ": cluster_state is not ok"
			}
			if got := slotsText(slots.Val()); got != want {
				return fmt.Sprintf("%s: CLUSTER SLOTS\n%swant\n%s", addr, got, want)
			}
			info := InfoFields(repl.Val())
			c.mu.Lock()
			m := c.cur[c.shardOf(i)]
			c.mu.Unlock()
			switch {
			case i == m && info["role"] != "master":
				return fmt.Sprintf("%s: role %s, want master", addr, info["role"])
			case i != m && (info["role"] != "slave" || info["master_port"] != strconv.Itoa(c.replPort(m))):
				return fmt.Sprintf("%s: role %s of port %s, want replica of %s", addr, info["role"], info["master_port"], c.Nodes[m].Addr)
			case i != m && info["master_link_status"] != "up":
				return fmt.Sprintf("%s: master_link_status %s", addr, info["master_link_status"])
			}
		}
		return ""
	})
}

// waitFor is WaitFor over a condition that explains itself: cond returns ""
// when it holds, else what is missing, which is logged if time runs out.
func (c *Cluster) waitFor(t testing.TB, msg string, cond func() string) {
	t.Helper()
	why, done := "", false
	defer func() {
		if !done {
			t.Logf("harness: %s: last seen: %s", msg, why)
		}
	}()
	WaitFor(t, clusterWait, msg, func() bool {
		why = cond()
		return why == ""
	})
	done = true
}

// logViews logs every live node's CLUSTER NODES, to explain a failure.
func (c *Cluster) logViews() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i, a := range c.admin {
		if c.isDown(i) {
			c.t.Logf("cluster node %d %s: killed", i, c.Nodes[i].Addr)
			continue
		}
		text, err := a.ClusterNodes(ctx).Result()
		c.t.Logf("cluster node %d %s CLUSTER NODES (err %v):\n%s", i, c.Nodes[i].Addr, err, strings.TrimSpace(text))
	}
}

// nodesLine returns the CLUSTER NODES line of node id, or "".
func nodesLine(text, id string) string {
	for line := range strings.SplitSeq(text, "\n") {
		if strings.HasPrefix(line, id+" ") {
			return line
		}
	}
	return ""
}

// InfoField returns the field name of INFO section on c, failing t when
// INFO fails or has no such field.
func InfoField(t testing.TB, ctx context.Context, c *redis.Client, section, name string) string {
	t.Helper()
	text, err := c.Info(ctx, section).Result()
	if err != nil {
		t.Fatal(err)
	}
	v, ok := InfoFields(text)[name]
	if !ok {
		t.Fatalf("no %s in INFO %s", name, section)
	}
	return v
}

// ReplicationInfo returns the fields of INFO replication.
func ReplicationInfo(ctx context.Context, c *redis.Client) (map[string]string, error) {
	text, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return nil, err
	}
	return InfoFields(text), nil
}

// InfoFields parses INFO output into its name:value fields.
func InfoFields(text string) map[string]string {
	out := map[string]string{}
	for line := range strings.SplitSeq(text, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && !strings.HasPrefix(k, "#") {
			out[k] = v
		}
	}
	return out
}
