package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/router"
	"github.com/replicaof/replicaof/tlsutil"
)

func TestClusterSlotRanges(t *testing.T) {
	for _, masters := range []int{1, 2, 3, 5, 7, 16384} {
		c := &Cluster{masters: masters}
		next := 0
		for s := 0; s < masters; s++ {
			lo, hi := c.SlotRange(s)
			if lo != next || hi < lo {
				t.Fatalf("%d masters: shard %d has %d-%d, want it to start at %d", masters, s, lo, hi, next)
			}
			if n := hi - lo + 1; n != router.SlotCount/masters && n != router.SlotCount/masters+1 {
				t.Fatalf("%d masters: shard %d has %d slots", masters, s, n)
			}
			for _, sl := range []int{lo, hi} {
				if got := c.shardOfSlot(sl); got != s {
					t.Fatalf("%d masters: slot %d in shard %d, want %d", masters, sl, got, s)
				}
			}
			if masters <= 7 {
				k := c.KeyInShard(s, "k")
				if sl := int(router.Slot([]byte(k))); sl < lo || sl > hi {
					t.Fatalf("KeyInShard(%d) = %q in slot %d, outside %d-%d", s, k, sl, lo, hi)
				}
			}
			next = hi + 1
		}
		if next != router.SlotCount {
			t.Fatalf("%d masters: slots end at %d", masters, next)
		}
	}
}

// The harness itself: a 3-master/1-replica cluster takes writes through
// its cluster client before and after a graceful failover and after a
// master is killed, and Masters follows the roles.
func TestClusterFailoverAndKill(t *testing.T) {
	ctx := Context(t, time.Minute)
	c := StartCluster(t, 3, 1)
	if len(c.Nodes) != 6 {
		t.Fatalf("%d nodes, want 6", len(c.Nodes))
	}
	for _, r := range c.Nodes {
		if _, err := os.Stat(filepath.Join(r.Dir, "nodes.conf")); err != nil {
			t.Fatalf("cluster config not in the node's directory: %v", err)
		}
	}
	if c.Addr() != c.Nodes[0].Addr {
		t.Fatalf("Addr() = %s, want the first master %s", c.Addr(), c.Nodes[0].Addr)
	}
	requireMasters(t, ctx, c, 0, 1, 2)

	writeKeys(t, ctx, c.Client(), "a:", 1000)
	requireKeyCount(t, ctx, c, 1000)

	c.Failover(t, ctx, 1)
	requireMasters(t, ctx, c, 0, 4, 2) // shard 1's replica is Nodes[3+1]
	writeKeys(t, ctx, c.Client(), "b:", 500)
	requireKeyCount(t, ctx, c, 1500)
	if v, err := c.Client().Get(ctx, c.KeyInShard(1, "a:")).Result(); err != nil || v == "" {
		t.Fatalf("key written before the failover: %q %v", v, err)
	}

	// The replica must hold every write before its master dies.
	if n, err := c.Masters(ctx)[2].Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT: %d %v", n, err)
	}
	c.KillMaster(t, ctx, 2)
	requireMasters(t, ctx, c, 0, 4, 5)
	if c.MasterOf(2) != c.Nodes[5] {
		t.Fatalf("MasterOf(2) = %s, want %s", c.MasterOf(2).Addr, c.Nodes[5].Addr)
	}
	writeKeys(t, ctx, c.Client(), "c:", 500)
	requireKeyCount(t, ctx, c, 2000)
}

// What a replication link to a cluster shard sees when the shard fails
// over gracefully (redis 7.0.15; src/replication.c and src/cluster.c):
//
//   - A replica of the old master is disconnected (EOF) by the time the
//     failover completes, with no stream bytes after those it had. In the
//     source, becoming a replica keeps the sub-replicas (replicationSetMaster)
//     and they are dropped when the old master's partial resync with the
//     new master returns a new replication ID
//     (slaveTryPartialResynchronization → disconnectSlaves).
//   - The new master took a new replication ID and keeps the old one as
//     master_replid2, valid up to second_repl_offset = the old master's
//     last offset + 1 (shiftReplicationId). `PSYNC <old replid> <offset+1>`
//     to it answers `+CONTINUE <new replid>` and the stream continues
//     byte-exactly, starting with a SELECT (the promoted master resets its
//     stream's db); the old master, now a replica, answers +CONTINUE too.
func TestClusterFailoverKeepsReplicationID(t *testing.T) {
	ctx := Context(t, time.Minute)
	c := StartCluster(t, 3, 1)
	const shard = 1
	old := c.MasterOf(shard)

	link := dialReplica(t, old.Addr)
	replid, offset := link.fullSync(t)
	if want := infoOf(t, ctx, old)["master_replid"]; replid != want {
		t.Fatalf("+FULLRESYNC replid %s, master_replid %s", replid, want)
	}
	if link.offset != offset {
		t.Fatalf("offset %d after +FULLRESYNC %d", link.offset, offset)
	}

	writeKeys(t, ctx, c.Client(), "before:", 300)
	target := infoOffset(t, ctx, old)
	link.readUntil(t, target)
	if link.offset != target {
		t.Fatalf("replica offset %d, master_repl_offset %d", link.offset, target)
	}
	t.Logf("old master %s: replid %s, replica offset %d (%d stream bytes after +FULLRESYNC %d)",
		old.Addr, replid, link.offset, link.offset-offset, offset)

	c.Failover(t, ctx, shard)
	newm := c.MasterOf(shard)

	// The old master drops its replica once it resynced with the new one.
	before := link.offset
	err := link.drain(10 * time.Second)
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the replica of the old master was not disconnected after the failover (offset %d): %v", link.offset, err)
	}
	t.Logf("replica of the old master disconnected (%v) after %d more stream bytes", err, link.offset-before)

	info := infoOf(t, ctx, newm)
	t.Logf("new master %s: master_replid %s master_replid2 %s second_repl_offset %s master_repl_offset %s",
		newm.Addr, info["master_replid"], info["master_replid2"], info["second_repl_offset"], info["master_repl_offset"])
	if info["master_replid2"] != replid || info["master_replid"] == replid {
		t.Fatalf("new master's replids %s/%s, want a new one and %s as the second", info["master_replid"], info["master_replid2"], replid)
	}
	if want := strconv.FormatInt(link.offset+1, 10); info["second_repl_offset"] != want {
		t.Fatalf("second_repl_offset %s, want our offset+1 = %s", info["second_repl_offset"], want)
	}

	// Partial resync with the new master under the old ID.
	resumed := dialReplica(t, newm.Addr)
	resumed.offset = link.offset
	got := resumed.psync(t, replid, link.offset+1)
	if got != "+CONTINUE "+info["master_replid"] {
		t.Fatalf("PSYNC %s %d to the new master: %q, want +CONTINUE %s", replid, link.offset+1, got, info["master_replid"])
	}
	key := c.KeyInShard(shard, "after:")
	if err := c.Client().Set(ctx, key, "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	target = infoOffset(t, ctx, newm)
	resumed.readUntil(t, target)
	if resumed.offset != target {
		t.Fatalf("resumed offset %d, new master_repl_offset %d", resumed.offset, target)
	}
	if !resumed.sawKey("set", key) {
		t.Fatalf("SET %s not in the resumed stream: %v", key, resumed.seen)
	}
	// The promoted master starts its own stream with a SELECT.
	if len(resumed.seen) == 0 || resumed.seen[0] != "SELECT 0" {
		t.Fatalf("resumed stream %v, want it to start with SELECT 0", resumed.seen)
	}
	t.Logf("new master answered %q; resumed stream: %v", got, resumed.seen)

	// The old master, now a replica, continues the same history too.
	again := dialReplica(t, old.Addr)
	if got := again.psync(t, replid, link.offset+1); got != "+CONTINUE "+info["master_replid"] {
		t.Fatalf("PSYNC %s %d to the old master, now a replica: %q", replid, link.offset+1, got)
	}
}

// rawReplica is a bare replication client on a TCP connection: enough
// PSYNC to observe what a source does, nothing of the real link.
type rawReplica struct {
	t      testing.TB
	conn   net.Conn
	br     *bufio.Reader
	cmd    resp.Command
	offset int64
	seen   []string // the stream's commands, abridged, at most 50
}

func dialReplica(t testing.TB, addr string) *rawReplica {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	r := &rawReplica{t: t, conn: conn, br: bufio.NewReader(conn)}
	// capa psync2 so +CONTINUE names the ID; no capa eof, so the
	// snapshot comes as $<len>.
	r.send("REPLCONF", "capa", "psync2")
	if l := r.line(); l != "+OK" {
		t.Fatalf("REPLCONF capa: %q", l)
	}
	return r
}

func (r *rawReplica) send(args ...string) {
	r.t.Helper()
	_ = r.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.conn.Write(resp.AppendCommandString(nil, args...)); err != nil {
		r.t.Fatal(err)
	}
}

// line reads one reply line, skipping the bare "\n" keepalives a master
// sends while it prepares a snapshot.
func (r *rawReplica) line() string {
	r.t.Helper()
	_ = r.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		b, err := r.br.ReadSlice('\n') // bounded by the reader's buffer
		if err != nil {
			r.t.Fatalf("reading a reply line: %v", err)
		}
		if l := strings.TrimRight(string(b), "\r\n"); l != "" {
			return l
		}
	}
}

func (r *rawReplica) psync(t testing.TB, replid string, offset int64) string {
	t.Helper()
	r.send("PSYNC", replid, strconv.FormatInt(offset, 10))
	return r.line()
}

// fullSync asks for a full resync, skips the snapshot, and returns the
// replication ID and offset of +FULLRESYNC.
func (r *rawReplica) fullSync(t testing.TB) (string, int64) {
	t.Helper()
	l := r.psync(t, "?", -1)
	f := strings.Fields(l)
	if len(f) != 3 || f[0] != "+FULLRESYNC" {
		t.Fatalf("PSYNC ? -1: %q", l)
	}
	offset, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		t.Fatalf("PSYNC ? -1: %q", l)
	}
	l = r.line()
	n, err := strconv.ParseInt(strings.TrimPrefix(l, "$"), 10, 64)
	if !strings.HasPrefix(l, "$") || err != nil || n < 0 || n > 64<<20 {
		t.Fatalf("snapshot header %q", l)
	}
	if _, err := io.CopyN(io.Discard, r.br, n); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	r.offset = offset
	return f[1], offset
}

// next reads one stream command and counts its bytes.
func (r *rawReplica) next(deadline time.Time) error {
	_ = r.conn.SetReadDeadline(deadline)
	if err := resp.ReadCommand(r.br, &r.cmd, resp.DefaultLimits); err != nil {
		return err
	}
	if len(r.cmd.Args) == 0 {
		return nil // a keepalive, not part of the stream
	}
	r.offset += int64(r.cmd.Size)
	if len(r.seen) < 50 {
		var parts []string
		for _, a := range r.cmd.Args {
			parts = append(parts, string(a))
		}
		r.seen = append(r.seen, strings.Join(parts, " "))
	}
	return nil
}

// readUntil reads the stream up to offset target.
func (r *rawReplica) readUntil(t testing.TB, target int64) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for r.offset < target {
		if err := r.next(deadline); err != nil {
			t.Fatalf("stream at offset %d (want %d): %v", r.offset, target, err)
		}
	}
}

// drain reads the stream until it fails, and returns why.
func (r *rawReplica) drain(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if err := r.next(deadline); err != nil {
			return err
		}
	}
}

func (r *rawReplica) sawKey(cmd, key string) bool {
	for _, s := range r.seen {
		if f := strings.Fields(s); len(f) >= 2 && strings.EqualFold(f[0], cmd) && f[1] == key {
			return true
		}
	}
	return false
}

func infoOf(t testing.TB, ctx context.Context, r *Redis) map[string]string {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.Addr, Protocol: 2, DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second})
	defer c.Close()
	info, err := ReplicationInfo(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func infoOffset(t testing.TB, ctx context.Context, r *Redis) int64 {
	t.Helper()
	n, err := strconv.ParseInt(infoOf(t, ctx, r)["master_repl_offset"], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func writeKeys(t testing.TB, ctx context.Context, c *redis.ClusterClient, prefix string, n int) {
	t.Helper()
	pipe := c.Pipeline()
	for i := 0; i < n; i++ {
		pipe.Set(ctx, fmt.Sprint(prefix, i), i, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("writing %d keys through the cluster client: %v", n, err)
	}
}

func requireKeyCount(t testing.TB, ctx context.Context, c *Cluster, want int64) {
	t.Helper()
	var sum int64
	for _, m := range c.Masters(ctx) {
		n, err := m.DBSize(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		sum += n
	}
	if sum != want {
		t.Fatalf("DBSIZE over the masters: %d, want %d", sum, want)
	}
}

// requireMasters checks Masters against the node indexes expected, in
// slot order.
func requireMasters(t testing.TB, ctx context.Context, c *Cluster, want ...int) {
	t.Helper()
	ms := c.Masters(ctx)
	var got, exp []string
	for _, m := range ms {
		got = append(got, m.Options().Addr)
	}
	for _, i := range want {
		exp = append(exp, c.Nodes[i].Addr)
	}
	if strings.Join(got, ",") != strings.Join(exp, ",") {
		t.Fatalf("Masters() = %v, want %v", got, exp)
	}
}

// Reshard on a cluster with a password, after a failover and a kill (the
// order of the cluster-destination acceptance test): redis-cli moves the
// slots with their keys, the harness follows the new owners (Slots,
// KeyInShard, Masters), and the keys are all still there.
func TestClusterReshardWithPassword(t *testing.T) {
	ctx := Context(t, 2*time.Minute)
	c := StartClusterWith(t, ClusterOptions{Masters: 3, ReplicasPerMaster: 1, Password: "harness-pw"})
	if err := c.Nodes[0].Client().Ping(ctx).Err(); err != nil {
		t.Fatalf("a node's client with the password: %v", err)
	}
	plain := redis.NewClient(&redis.Options{Addr: c.Nodes[0].Addr, Protocol: 2, MaxRetries: -1})
	defer plain.Close()
	if err := plain.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("PING without the password: %v, want NOAUTH", err)
	}
	writeKeys(t, ctx, c.Client(), "k:", 3000)
	c.Failover(t, ctx, 0)
	if n, err := c.Masters(ctx)[1].Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT: %d %v", n, err)
	}
	c.KillMaster(t, ctx, 1)

	before, before2 := c.Slots(0), c.Slots(2)
	c.Reshard(t, ctx, 0, 2, 500)
	after0, after2 := c.Slots(0), c.Slots(2)
	if len(after0) != len(before)-500 || len(after2) != len(before2)+500 {
		t.Fatalf("after the reshard shard 0 has %d slots (had %d), shard 2 has %d (had %d)", len(after0), len(before), len(after2), len(before2))
	}
	for _, sl := range before[:500] {
		if c.shardOfSlot(sl) != 2 {
			t.Fatalf("slot %d (one of shard 0's lowest) not moved to shard 2", sl)
		}
	}
	k := c.KeyInShard(2, "moved:")
	if sl := int(router.Slot([]byte(k))); !slices.Contains(after2, sl) {
		t.Fatalf("KeyInShard(2) = %q in slot %d, not shard 2's", k, sl)
	}
	// Shard 2 (Nodes[2]) now owns slot 0: it comes first.
	requireMasters(t, ctx, c, 2, 3, 4)
	requireKeyCount(t, ctx, c, 3000)
	for i := 0; i < 3000; i += 97 {
		if v, err := c.Client().Get(ctx, fmt.Sprint("k:", i)).Result(); err != nil || v != strconv.Itoa(i) {
			t.Fatalf("k:%d after the reshard: %q %v", i, v, err)
		}
	}
}

// A TLS cluster: TLS clients see the nodes' TLS ports in CLUSTER SLOTS,
// replicas follow over TLS through a failover, and Reshard (redis-cli over
// TLS, MIGRATE over TLS) moves slots with their keys.
func TestClusterTLS(t *testing.T) {
	ctx := Context(t, 2*time.Minute)
	certs, err := tlsutil.GenerateDemo(filepath.Join(t.TempDir(), "certs"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := StartClusterWith(t, ClusterOptions{Masters: 3, ReplicasPerMaster: 1, TLS: &certs})
	writeKeys(t, ctx, c.Client(), "k:", 1000)
	c.Failover(t, ctx, 1)
	c.Reshard(t, ctx, 1, 0, 100)
	requireKeyCount(t, ctx, c, 1000)

	tc, err := tlsutil.ClientConfig("127.0.0.1", tlsutil.ClientOptions{CAFile: certs.CA})
	if err != nil {
		t.Fatal(err)
	}
	tcl := redis.NewClient(&redis.Options{Addr: c.TLSAddr(0), TLSConfig: tc, Protocol: 2, MaxRetries: -1})
	defer tcl.Close()
	slots, err := tcl.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatalf("CLUSTER SLOTS over TLS: %v", err)
	}
	tlsAddrs := map[string]bool{}
	for i := range c.Nodes {
		tlsAddrs[c.TLSAddr(i)] = true
	}
	for _, s := range slots {
		for _, n := range s.Nodes {
			if !tlsAddrs[n.Addr] {
				t.Fatalf("CLUSTER SLOTS over TLS names %s, not a TLS address (%v)", n.Addr, slots)
			}
		}
	}
}

// KillMasterLosingWrites makes the promoted replica miss acknowledged
// writes: keys the master had are gone after the failover.
func TestClusterKillMasterLosingWrites(t *testing.T) {
	ctx := Context(t, 2*time.Minute)
	c := StartCluster(t, 3, 1)
	value := strings.Repeat("x", 64<<10)
	var keys []string
	lost := c.KillMasterLosingWrites(t, ctx, 1, func() {
		for i := 0; i < 200; i++ {
			k := c.KeyInShard(1, fmt.Sprintf("big:%d:", i))
			if err := c.Client().Set(ctx, k, value, 0).Err(); err != nil {
				t.Fatalf("SET before the kill: %v", err)
			}
			keys = append(keys, k)
		}
	})
	n, err := c.Client().Exists(ctx, keys[len(keys)-1]).Result()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the promoted replica missed %d bytes; the last key written exists: %v", lost, n == 1)
	if n != 0 {
		t.Fatalf("the last acknowledged write survived a kill that lost %d bytes", lost)
	}
}
