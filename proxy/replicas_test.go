package proxy

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/internal/redisproc"
	"github.com/replicaof/replicaof/router"
)

// replicated is a destination of standalone shards, each with replicas
// started with --replicaof, behind a proxy.
type replicated struct {
	*cluster
	replicas [][]*harness.Redis // by shard
}

func newReplicated(t *testing.T, shards, perShard int, mut func(*Config)) *replicated {
	t.Helper()
	c := &cluster{t: t}
	r := &replicated{cluster: c}
	for i := 0; i < shards; i++ {
		p := harness.StartRedis(t, "--repl-diskless-sync-delay", "0")
		c.shards = append(c.shards, p)
		var reps []*harness.Redis
		for j := 0; j < perShard; j++ {
			reps = append(reps, harness.StartReplica(t, p))
		}
		r.replicas = append(r.replicas, reps)
	}
	c.m, _ = router.EvenSlotMap(shards)
	for _, reps := range r.replicas {
		for _, rp := range reps {
			cl := rp.Client()
			harness.WaitFor(t, 20*time.Second, "replica link up", func() bool {
				s, err := cl.Info(context.Background(), "replication").Result()
				return err == nil && strings.Contains(s, "master_link_status:up")
			})
		}
	}
	c.start(func(cfg *Config) {
		cfg.Timeout = time.Second
		cfg.ReplicaRefresh = 100 * time.Millisecond
		cfg.MaxReplicaLag = 500 * time.Millisecond
		cfg.ReadFrom = ReadReplica
		if mut != nil {
			mut(cfg)
		}
	})
	return r
}

// waitNodes waits until every replica of the proxy is (up) or is not in
// rotation, as the proxy sees it.
func (r *replicated) waitReplica(addr string, up bool) {
	r.t.Helper()
	harness.WaitFor(r.t, 20*time.Second, fmt.Sprintf("replica %s up=%v", addr, up), func() bool {
		for _, n := range r.srv.Nodes() {
			if n.Addr == addr && n.Role == "replica" {
				return n.Up == up
			}
		}
		return false
	})
}

// fill writes n keys on the primaries and waits until every replica has
// them.
func (r *replicated) fill(prefix string, n int) []string {
	r.t.Helper()
	ctx := context.Background()
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s%d", prefix, i)
		r.put(ctx, keys[i], "v-"+keys[i])
	}
	for i, p := range r.shards {
		if err := p.Client().Do(ctx, "WAIT", len(r.replicas[i]), 10000).Err(); err != nil {
			r.t.Fatal(err)
		}
	}
	return keys
}

func getCalls(t *testing.T, rd *harness.Redis) int64 {
	t.Helper()
	s, err := rd.Client().Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(s, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_get:calls="); ok {
			n, _ := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
			return n
		}
	}
	return 0
}

// gets reads n keys through the proxy, pipelined by 100, and fails on any
// error or wrong value.
func gets(t *testing.T, cl *redis.Client, keys []string, n int) {
	t.Helper()
	ctx := harness.Context(t, 60*time.Second)
	for done := 0; done < n; {
		pipe := cl.Pipeline()
		var cmds []*redis.StringCmd
		for j := 0; j < 100 && done < n; j++ {
			cmds = append(cmds, pipe.Get(ctx, keys[done%len(keys)]))
			done++
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatalf("after %d GETs: %v", done, err)
		}
		for _, c := range cmds {
			k := c.Args()[1].(string)
			if c.Val() != "v-"+k {
				t.Fatalf("GET %s = %q, want %q", k, c.Val(), "v-"+k)
			}
		}
	}
}

func TestReadFromReplica(t *testing.T) {
	r := newReplicated(t, 2, 1, nil)
	keys := r.fill("k", 500)
	for _, reps := range r.replicas {
		r.waitReplica(reps[0].Addr, true)
	}
	var before [2][2]int64 // shard, primary/replica
	for i := range r.shards {
		before[i][0], before[i][1] = getCalls(t, r.shards[i]), getCalls(t, r.replicas[i][0])
	}
	cl := r.client(nil)
	gets(t, cl, keys, 20000)
	var prim, rep int64
	for i := range r.shards {
		prim += getCalls(t, r.shards[i]) - before[i][0]
		rep += getCalls(t, r.replicas[i][0]) - before[i][1]
	}
	t.Logf("GETs: %d on primaries, %d on replicas", prim, rep)
	if prim+rep != 20000 {
		t.Errorf("%d GETs reached the servers, want 20000", prim+rep)
	}
	if rep*10 < 9*20000 {
		t.Errorf("replicas served %d of 20000 GETs, want at least 90%%", rep)
	}
	for _, n := range r.srv.Nodes() {
		if n.Role == "replica" && n.Reads == 0 {
			t.Errorf("node %+v: no reads counted", n)
		}
	}

	// Writes and scripts that may write still go to the primaries.
	if err := cl.Set(context.Background(), "w", "1", 0).Err(); err == nil || !strings.Contains(err.Error(), "READONLY") {
		t.Errorf("SET without allow_writes: %v", err)
	}
}

func TestReadFromReplicaWritesGoToPrimary(t *testing.T) {
	r := newReplicated(t, 2, 1, func(c *Config) { c.AllowWrites = true })
	for _, reps := range r.replicas {
		r.waitReplica(reps[0].Addr, true)
	}
	ctx := context.Background()
	cl := r.client(nil)
	for i := 0; i < 100; i++ {
		k := fmt.Sprintf("w%d", i)
		if err := cl.Set(ctx, k, "v-"+k, 0).Err(); err != nil {
			t.Fatal(err)
		}
		// A transaction and a script read their own write: they ran on
		// the primary.
		tx := cl.TxPipeline()
		tx.Incr(ctx, k+"n")
		g := tx.Get(ctx, k+"n")
		if _, err := tx.Exec(ctx); err != nil || g.Val() != "1" {
			t.Fatalf("MULTI INCR GET: %q %v", g.Val(), err)
		}
		v, err := cl.Eval(ctx, "redis.call('SET', KEYS[1], 'x') return redis.call('GET', KEYS[1])", []string{k + "e"}).Result()
		if err != nil || v != "x" {
			t.Fatalf("EVAL: %v %v", v, err)
		}
	}
}

func TestReplicaKilled(t *testing.T) {
	r := newReplicated(t, 2, 1, nil)
	keys := r.fill("k", 500)
	for _, reps := range r.replicas {
		r.waitReplica(reps[0].Addr, true)
	}
	cl := r.client(nil)
	gets(t, cl, keys, 2000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(20 * time.Millisecond)
		r.replicas[0][0].Kill() // kill -9
	}()
	gets(t, cl, keys, 10000) // no error, right values, across the kill
	<-done
	gets(t, cl, keys, 2000)
	// It is out of rotation, or gone once the primary stops listing it.
	for _, n := range r.srv.Nodes() {
		if n.Addr == r.replicas[0][0].Addr && n.Up {
			t.Errorf("killed replica still in rotation: %+v", r.srv.Nodes())
		}
	}
}

func TestReplicaPaused(t *testing.T) {
	r := newReplicated(t, 2, 1, nil)
	keys := r.fill("k", 500)
	for _, reps := range r.replicas {
		r.waitReplica(reps[0].Addr, true)
	}
	paused := r.replicas[1][0]
	cl := r.client(nil)
	gets(t, cl, keys, 2000)
	g0 := getCalls(t, paused)
	if err := paused.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = paused.Signal(syscall.SIGCONT)
		}
	}()
	// The primary keeps taking writes, so the replica falls behind.
	ctx := context.Background()
	stopWrites := make(chan struct{})
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		p := r.shards[1].Client()
		for i := 0; ; i++ {
			select {
			case <-stopWrites:
				return
			case <-time.After(20 * time.Millisecond):
			}
			_ = p.Set(ctx, fmt.Sprintf("tick{%d}", i%10), i, 0).Err()
		}
	}()
	defer func() {
		select {
		case <-stopWrites:
		default:
			close(stopWrites)
		}
		<-wrote
	}()
	r.waitReplica(paused.Addr, false)
	time.Sleep(600 * time.Millisecond) // past max_replica_lag
	gets(t, cl, keys, 4000)
	if err := paused.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	if g := getCalls(t, paused); g != g0 {
		t.Errorf("paused replica served %d GETs", g-g0)
	}
	close(stopWrites)
	<-wrote
	r.waitReplica(paused.Addr, true)
	g1 := getCalls(t, paused)
	gets(t, cl, keys, 4000)
	if g := getCalls(t, paused); g-g1 < 1000 {
		t.Errorf("resumed replica served %d of 4000 GETs", g-g1)
	}
	var stale, errs int64
	for _, n := range r.srv.Nodes() {
		if n.Addr == paused.Addr {
			stale, errs = n.Stale, n.Errors
		}
	}
	if stale+errs == 0 {
		t.Errorf("the pause was not counted: %+v", r.srv.Nodes())
	}
}

func TestReplicaLagFromSamples(t *testing.T) {
	var sn shardNodes
	t0 := time.Unix(1000, 0)
	for i := 0; i < 100; i++ {
		sn.sample(int64(100*i), t0.Add(time.Duration(i)*time.Second))
	}
	sn.sample(50, t0.Add(200*time.Second)) // not ascending: ignored
	if len(sn.samples) != maxLagSamples {
		t.Fatalf("%d samples kept, want %d", len(sn.samples), maxLagSamples)
	}
	now := t0.Add(99 * time.Second)
	if l := sn.lagOf(9900, now); l != 0 {
		t.Errorf("caught-up replica lag %v", l)
	}
	if l := sn.lagOf(9850, now); l != 0 {
		t.Errorf("replica just behind the last sample: lag %v, want 0 (sample at now)", l)
	}
	if l := sn.lagOf(9750, now); l != time.Second {
		t.Errorf("lag %v, want 1s", l)
	}
	// Behind every kept sample: the oldest one's age, a lower bound.
	if l := sn.lagOf(0, now); l != time.Duration(maxLagSamples-1)*time.Second {
		t.Errorf("lag %v, want %v", l, time.Duration(maxLagSamples-1)*time.Second)
	}
}

func TestParseReplInfo(t *testing.T) {
	text := "$300\r\n# Replication\r\nrole:master\r\nconnected_slaves:3\r\n" +
		"slave0:ip=127.0.0.1,port=7001,state=online,offset=10,lag=0\r\n" +
		"slave1:ip=10.0.0.2,port=7002,state=wait_bgsave,offset=0,lag=0\r\n" +
		"slave2:ip=::1,port=7003,state=online,offset=10,lag=1\r\n" +
		"slave3:ip=h,port=99999,state=online\r\n" +
		"slave4:ip=[:1,port=7004,state=online\r\n" +
		"slave5:ip=a b,port=7005,state=online\r\n" +
		"master_repl_offset:10\r\n"
	f, online := parseReplInfo([]byte(text))
	if f["role"] != "master" || f["master_repl_offset"] != "10" {
		t.Errorf("fields %v", f)
	}
	if fmt.Sprint(online) != "[127.0.0.1:7001 [::1]:7003]" {
		t.Errorf("online %v", online)
	}
}

func TestParseReadFrom(t *testing.T) {
	for _, s := range []string{"primary", "prefer-primary", "replica", "prefer-replica", "any"} {
		r, err := ParseReadFrom(s)
		if err != nil || r.String() != s {
			t.Errorf("ParseReadFrom(%q) = %v, %v", s, r, err)
		}
	}
	if r, err := ParseReadFrom(""); err != nil || r != ReadPrimary {
		t.Errorf("empty: %v %v", r, err)
	}
	if _, err := ParseReadFrom("slave"); err == nil {
		t.Error("ParseReadFrom(slave) did not fail")
	}
}

// A replica the primary reports under a wrong address is reached at the
// one the config lists; the wrong one never gets into rotation.
func TestStaticReplica(t *testing.T) {
	c := &cluster{t: t}
	p := harness.StartRedis(t, "--repl-diskless-sync-delay", "0")
	wrong, err := redisproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	rep := harness.StartReplica(t, p, "--replica-announce-port", strconv.Itoa(wrong))
	c.shards = []*harness.Redis{p}
	c.m, _ = router.EvenSlotMap(1)
	r := &replicated{cluster: c, replicas: [][]*harness.Redis{{rep}}}
	c.start(func(cfg *Config) {
		cfg.Timeout = time.Second
		cfg.ReplicaRefresh = 100 * time.Millisecond
		cfg.ReadFrom = ReadReplica
		d, err := destination.New(destination.Config{Shards: []destination.Shard{{Addr: p.Addr}},
			Replicas: [][]destination.Shard{{{Addr: rep.Addr}}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		cfg.Destination = d
	})
	keys := r.fill("k", 100)
	r.waitReplica(rep.Addr, true)
	g0 := getCalls(t, rep)
	gets(t, r.client(nil), keys, 1000)
	if g := getCalls(t, rep) - g0; g < 900 {
		t.Errorf("configured replica served %d of 1000 GETs", g)
	}
	for _, n := range r.srv.Nodes() {
		if n.Addr == rep.Addr && !n.Static {
			t.Errorf("configured replica not marked static: %+v", n)
		}
		if n.Addr == net.JoinHostPort("127.0.0.1", strconv.Itoa(wrong)) && n.Up {
			t.Errorf("wrongly reported address in rotation: %+v", n)
		}
	}
}

// prefer-primary reads from the primary while it is up; when it dies,
// from the replica, whose link is then down too: reads keep succeeding
// (possibly stale, here not, since nothing was written).
func TestPreferPrimary(t *testing.T) {
	r := newReplicated(t, 1, 1, func(c *Config) { c.ReadFrom = ReadPreferPrimary })
	keys := r.fill("k", 200)
	rep := r.replicas[0][0]
	r.waitReplica(rep.Addr, true)
	cl := r.client(nil)
	g0 := getCalls(t, rep)
	gets(t, cl, keys, 2000)
	if g := getCalls(t, rep) - g0; g != 0 {
		t.Errorf("replica served %d GETs while the primary is up", g)
	}
	r.shards[0].Kill()
	gets(t, cl, keys, 2000) // no error across the primary's death
	// Once the proxy has seen the replica's link down, it still serves.
	r.waitReplica(rep.Addr, false)
	gets(t, cl, keys, 2000)
	if g := getCalls(t, rep) - g0; g < 4000 {
		t.Errorf("replica served %d of 4000 GETs with the primary down", g)
	}
	for _, n := range r.srv.Nodes() {
		if n.Addr == rep.Addr && n.LinkDown == 0 {
			t.Errorf("link down not counted: %+v", n)
		}
	}
}

// any spreads reads over the primary and its replicas.
func TestReadFromAny(t *testing.T) {
	r := newReplicated(t, 1, 2, func(c *Config) { c.ReadFrom = ReadAny })
	keys := r.fill("k", 200)
	for _, rp := range r.replicas[0] {
		r.waitReplica(rp.Addr, true)
	}
	nodes := append([]*harness.Redis{r.shards[0]}, r.replicas[0]...)
	var before []int64
	for _, n := range nodes {
		before = append(before, getCalls(t, n))
	}
	gets(t, r.client(nil), keys, 3000)
	for i, n := range nodes {
		if g := getCalls(t, n) - before[i]; g < 600 {
			t.Errorf("node %d (%s) served %d of 3000 GETs, want about a third", i, n.Addr, g)
		}
	}
}

// FuzzParseReplInfo: any INFO text parses without panicking, and every
// replica address it yields is a valid host:port with a port in range.
func FuzzParseReplInfo(f *testing.F) {
	for _, s := range []string{
		"# Replication\r\nrole:master\r\nconnected_slaves:1\r\nslave0:ip=127.0.0.1,port=7001,state=online,offset=10,lag=0\r\nmaster_repl_offset:10\r\n",
		"role:slave\r\nmaster_link_status:down\r\nslave_repl_offset:-1\r\n",
		"slave0:ip=,port=,state=online\r\nslave1:port=1\r\nslave99:ip=::1,port=65535,state=online",
		"slave0:ip=a,port=-1,state=online\nslave1:ip=b,port=70000,state=online\n:\n::\nslave",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, online := parseReplInfo(b)
		for _, a := range online {
			_, port, err := net.SplitHostPort(a)
			if err != nil {
				t.Fatalf("%q: %v", a, err)
			}
			if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
				t.Fatalf("%q: port %q", a, port)
			}
		}
	})
}

// A reply over the proxy's limits fails that read only: the replica that
// sent it stays in rotation and the read is not retried elsewhere.
func TestReplicaReplyOverLimit(t *testing.T) {
	r := newReplicated(t, 1, 1, func(c *Config) {
		c.Backend.Limits.MaxBulk = 1024
	})
	ctx := context.Background()
	r.put(ctx, "big", strings.Repeat("x", 4096))
	keys := r.fill("k", 50)
	rep := r.replicas[0][0]
	r.waitReplica(rep.Addr, true)
	cl := r.client(nil)
	p0, g0 := getCalls(t, r.shards[0]), getCalls(t, rep)
	for i := 0; i < 20; i++ {
		if err := cl.Get(ctx, "big").Err(); err == nil || !strings.Contains(err.Error(), "reply too large") {
			t.Fatalf("GET big: %v", err)
		}
	}
	gets(t, cl, keys, 500)
	if p := getCalls(t, r.shards[0]) - p0; p != 0 {
		t.Errorf("primary served %d GETs: reads were retried or the replica left rotation", p)
	}
	if g := getCalls(t, rep) - g0; g != 520 {
		t.Errorf("replica served %d GETs, want 520", g)
	}
	for _, n := range r.srv.Nodes() {
		if n.Addr == rep.Addr && (n.Errors != 0 || !n.Up) {
			t.Errorf("replica marked failed by an oversized reply: %+v", n)
		}
	}
}
