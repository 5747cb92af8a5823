// Command syncbench measures replicaof's full sync and streaming against
// native REPLICAOF of the same data in the same run (make bench-sync). For
// each dataset size in -keys:
//
//  1. loads the keys into a source redis-server (-dataset mixed: every
//     type, 0-200 byte strings, TTLs, db 0 and 3);
//  2. times a native replica's full sync (REPLICAOF) of it, with the
//     replica's CPU time;
//  3. times `replicaof serve` (a subprocess) syncing it into 1 and into 3
//     fresh shards, and into a fresh 3-master Redis Cluster (no replicas,
//     formed with redis-cli; db 3 mapped to 0 with destination.db_map),
//     with the CPU time of the shards (or cluster nodes) and of serve (per
//     key, and how busy the shards were) and serve's peak RSS (VmHWM);
//
// then, synced into 3 shards after the largest size, runs redis-benchmark
// -t set -P 16 on the source, samples the lag, and times the catch-up
// after it ends.
//
// Every process runs on 127.0.0.1 and is stopped at the end.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/bench/internal/benchenv"
	"github.com/replicaof/replicaof/internal/redisproc"
	"github.com/replicaof/replicaof/syncer"
)

func main() {
	bin := flag.String("bin", "bin/replicaof", "replicaof binary")
	keys := flag.String("keys", "300000,1000000", "comma-separated dataset sizes (keys) to measure, each in turn")
	dataset := flag.String("dataset", "mixed", "mixed (every type, 0-200 byte strings, TTLs, db 0 and 3) or simple (five types, -value-size values)")
	valueSize := flag.Int("value-size", 16, "bytes per string value / element (simple dataset)")
	setN := flag.Int("set-n", 500000, "redis-benchmark -n for the streaming phase (after the largest size)")
	flag.Parse()
	log.SetFlags(0)
	var sizes []int
	for _, f := range strings.Split(*keys, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			log.Fatalf("syncbench: bad -keys %q", *keys)
		}
		sizes = append(sizes, n)
	}
	if *dataset != "mixed" && *dataset != "simple" {
		log.Fatalf("syncbench: -dataset is mixed or simple, not %q", *dataset)
	}
	if err := run(*bin, sizes, *dataset, *valueSize, *setN); err != nil {
		log.Fatal("syncbench: ", err)
	}
}

type bench struct {
	bin     string
	dir     string
	servers *benchenv.Servers
}

func (b *bench) start(name string, extra ...string) (*redisproc.Proc, error) {
	return b.servers.Start(name, extra...)
}

func client(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, ReadTimeout: time.Minute, WriteTimeout: time.Minute, MaxRetries: -1})
}

func run(bin string, sizes []int, dataset string, valueSize, setN int) error {
	servers, err := benchenv.NewServers("syncbench-")
	if err != nil {
		return err
	}
	defer servers.Close()
	b := &bench{bin: bin, dir: servers.Dir, servers: servers}
	ctx := context.Background()
	// No diskless delay: it would add 5s to both native and ours.
	src, err := b.start("source", "--repl-diskless-sync-delay", "0")
	if err != nil {
		return err
	}
	sc := client(src.Addr)
	defer sc.Close()
	for i, keys := range sizes {
		if err := sc.FlushAll(ctx).Err(); err != nil {
			return err
		}
		t0 := time.Now()
		desc, err := load(ctx, src.Addr, dataset, keys, valueSize)
		if err != nil {
			return err
		}
		mem, _ := sc.Info(ctx, "memory").Result()
		fmt.Printf("\ndataset: %d keys, %s; used_memory %s, loaded in %v\n",
			keys, desc, infoValue(mem, "used_memory_human"), time.Since(t0).Round(time.Millisecond))

		native, nativeCPU, err := b.native(ctx, src, fmt.Sprintf("native-%d", keys))
		if err != nil {
			return err
		}
		fmt.Printf("native REPLICAOF full sync: %v; replica CPU %.2f s (%.2f µs/key)\n",
			native.Round(time.Millisecond), nativeCPU, 1e6*nativeCPU/float64(keys))

		// The cluster before 3 shards: the streaming phase after the
		// 3-shard sync of the last size adds keys to the source.
		for _, dest := range []target{{shards: 1}, {shards: 3, cluster: true}, {shards: 3}} {
			shards := dest.shards
			r, stop, err := b.replicaof(ctx, src, dest, keys, dataset)
			if err != nil {
				return err
			}
			fmt.Printf("replicaof full sync into %s: %v (%.2fx native); CPU: shards %.2f s (%.2f µs/key, busy %.0f%% of the sync), serve %.2f s (%.2f µs/key); peak RSS %.0f MB\n",
				dest, r.took.Round(time.Millisecond), r.took.Seconds()/native.Seconds(),
				r.shardCPU, 1e6*r.shardCPU/float64(keys), 100*r.shardCPU/float64(shards)/r.took.Seconds(),
				r.serveCPU, 1e6*r.serveCPU/float64(keys), float64(r.rss)/(1<<20))
			if shards == 3 && !dest.cluster && i == len(sizes)-1 && setN > 0 {
				if err := b.stream(ctx, src, sc, r.adminURL, setN, stop); err != nil {
					stop()
					return err
				}
			}
			stop()
		}
	}
	return nil
}

// native times a native replica's full sync of src and returns the wall
// time and the replica's CPU seconds spent on it.
func (b *bench) native(ctx context.Context, src *redisproc.Proc, name string) (time.Duration, float64, error) {
	nat, err := b.start(name)
	if err != nil {
		return 0, 0, err
	}
	defer nat.Kill()
	nc := client(nat.Addr)
	defer nc.Close()
	cpu0, err := serverCPU(ctx, nc)
	if err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	if err := nc.ReplicaOf(ctx, "127.0.0.1", strconv.Itoa(src.Port)).Err(); err != nil {
		return 0, 0, err
	}
	for {
		info, err := nc.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, "master_link_status:up") && strings.Contains(info, "master_sync_in_progress:0") {
			break
		}
		if time.Since(t0) > 10*time.Minute {
			return 0, 0, fmt.Errorf("native replica not synced after 10 minutes")
		}
		time.Sleep(5 * time.Millisecond)
	}
	took := time.Since(t0)
	cpu1, err := serverCPU(ctx, nc)
	return took, cpu1 - cpu0, err
}

// serverCPU is a redis-server's used_cpu_user + used_cpu_sys (its main
// thread and every other), in seconds.
func serverCPU(ctx context.Context, c *redis.Client) (float64, error) {
	info, err := c.Info(ctx, "cpu").Result()
	if err != nil {
		return 0, err
	}
	u, _ := strconv.ParseFloat(infoValue(info, "used_cpu_user"), 64)
	s, _ := strconv.ParseFloat(infoValue(info, "used_cpu_sys"), 64)
	return u + s, nil
}

// processCPU is a process's user + system time from /proc, in seconds.
func processCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses: utime and
	// stime are fields 14 and 15 of the whole line.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

// result is one replicaof full sync.
type result struct {
	took     time.Duration
	rss      int64   // peak RSS of serve
	shardCPU float64 // CPU seconds of every shard, summed
	serveCPU float64 // CPU seconds of serve
	adminURL string
}

// target is a destination to sync into: shards standalone shards, or a
// Redis Cluster of shards masters.
type target struct {
	shards  int
	cluster bool
}

func (t target) String() string {
	if t.cluster {
		return fmt.Sprintf("a %d-master cluster", t.shards)
	}
	return fmt.Sprintf("%d shard(s)", t.shards)
}

// replicaof starts serve against src with a fresh destination dest and
// measures its full sync; stop ends serve and the destination.
func (b *bench) replicaof(ctx context.Context, src *redisproc.Proc, dest target, keys int, dataset string) (result, func(), error) {
	var r result
	var shards []string
	var procs []*redisproc.Proc
	var clients []*redis.Client
	stopShards := func() {
		for _, c := range clients {
			c.Close()
		}
		for _, p := range procs {
			p.Kill()
		}
	}
	n := dest.shards
	name := fmt.Sprintf("shard-of-%d-%d", n, keys)
	var nodes []*redisproc.Proc
	extraDest := ""
	if dest.cluster {
		name = fmt.Sprintf("cluster-of-%d-%d", n, keys)
		cl, err := b.servers.StartCluster(ctx, name, n, 0)
		if err != nil {
			return r, nil, err
		}
		procs = append(procs, cl.Nodes...)
		nodes = cl.Nodes
		// One seed node; the mixed dataset's db 3 goes to the cluster's
		// only db (its key names do not collide with db 0's).
		shards = []string{fmt.Sprintf("%q", "redis://"+cl.Nodes[0].Addr)}
		if dataset == "mixed" {
			extraDest = ", db_map: { 3: 0 }"
		}
	} else {
		for i := 0; i < n; i++ {
			p, err := b.start(fmt.Sprintf("%s-%d", name, i))
			if err != nil {
				stopShards()
				return r, nil, err
			}
			procs = append(procs, p)
			nodes = append(nodes, p)
			shards = append(shards, fmt.Sprintf("%q", "redis://"+p.Addr))
		}
	}
	var cpu0 float64
	for _, p := range nodes {
		c := client(p.Addr)
		clients = append(clients, c)
		cpu, err := serverCPU(ctx, c)
		if err != nil {
			stopShards()
			return r, nil, err
		}
		cpu0 += cpu
	}
	pp, _ := redisproc.FreePort()
	ap, _ := redisproc.FreePort()
	cfg := filepath.Join(b.dir, name+".yaml")
	yaml := fmt.Sprintf("proxy: { listen: \"127.0.0.1:%d\" }\nadmin: { listen: \"127.0.0.1:%d\" }\ndestination: { shards: [%s]%s }\nreplica_of: { sources: [\"src: redis://%s\"] }\nstate_dir: %q\nlog: { level: warn }\n",
		pp, ap, strings.Join(shards, ", "), extraDest, src.Addr, filepath.Join(b.dir, "state"))
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		stopShards()
		return r, nil, err
	}
	cmd := exec.Command(b.bin, "serve", "-c", cfg)
	cmd.Stderr = os.Stderr
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		stopShards()
		return r, nil, err
	}
	stop := func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait(); stopShards() }
	r.adminURL = fmt.Sprintf("http://127.0.0.1:%d", ap)
	deadline := time.Now().Add(10 * time.Minute)
	for {
		st, err := status(r.adminURL)
		if err == nil && st.Status == syncer.StateSynced {
			break
		}
		if err == nil && st.Status == syncer.StateStopped {
			stop()
			return r, nil, fmt.Errorf("sync stopped: %+v", st.Sources)
		}
		if time.Now().After(deadline) {
			stop()
			return r, nil, fmt.Errorf("not synced after 10 minutes")
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.took = time.Since(t0)
	r.rss = benchenv.PeakRSS(cmd.Process.Pid)
	r.serveCPU = processCPU(cmd.Process.Pid)
	for _, c := range clients {
		cpu, err := serverCPU(ctx, c)
		if err != nil {
			stop()
			return r, nil, err
		}
		r.shardCPU += cpu
	}
	r.shardCPU -= cpu0
	return r, stop, nil
}

// stream runs redis-benchmark SETs on the source while synced and reports
// the largest lag seen and the catch-up time after the load ends.
func (b *bench) stream(ctx context.Context, src *redisproc.Proc, sc *redis.Client, adminURL string, n int, stop func()) error {
	rb, err := exec.LookPath("redis-benchmark")
	if err != nil {
		return fmt.Errorf("redis-benchmark not found: %s", redisproc.InstallHint)
	}
	done := make(chan error, 1)
	t0 := time.Now()
	go func() {
		done <- exec.Command(rb, "-h", "127.0.0.1", "-p", strconv.Itoa(src.Port), "-t", "set", "-P", "16", "-n", strconv.Itoa(n), "-r", "1000000", "-q").Run()
	}()
	var maxLag int64
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("redis-benchmark: %w", err)
			}
			running = false
		case <-time.After(50 * time.Millisecond):
		}
		if st, err := status(adminURL); err == nil && len(st.Sources) > 0 {
			maxLag = max(maxLag, st.Sources[0].LagMS)
		}
	}
	loadTime := time.Since(t0)
	end := time.Now()
	info, err := sc.Info(ctx, "replication").Result()
	if err != nil {
		return err
	}
	target, _ := strconv.ParseInt(infoValue(info, "master_repl_offset"), 10, 64)
	for {
		st, err := status(adminURL)
		if err == nil && len(st.Sources) > 0 && st.Sources[0].AppliedOffset >= target {
			break
		}
		if time.Since(end) > 5*time.Minute {
			return fmt.Errorf("no catch-up after 5 minutes")
		}
		time.Sleep(2 * time.Millisecond)
	}
	catchUp := time.Since(end)
	fmt.Printf("streaming: redis-benchmark -t set -P 16 -n %d on the source took %v (%.0f SET/s); max lag %d ms; caught up %v after it ended\n",
		n, loadTime.Round(time.Millisecond), float64(n)/loadTime.Seconds(), maxLag, catchUp.Round(time.Millisecond))
	return nil
}

func status(adminURL string) (syncer.Status, error) {
	var st syncer.Status
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(adminURL + "/v1/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

func infoValue(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// load writes n keys into the source at addr and describes them.
func load(ctx context.Context, addr, dataset string, n, size int) (string, error) {
	c0 := client(addr)
	defer c0.Close()
	if dataset == "simple" {
		return fmt.Sprintf("strings, hashes, lists, sets, zsets; %d-byte values", size), loadSimple(ctx, c0, n, size)
	}
	c3 := client(addr)
	defer c3.Close()
	if err := c3.Do(ctx, "SELECT", 3).Err(); err != nil {
		return "", err
	}
	return "mixed: 60% strings of 0-200 bytes, lists, sets, zsets, hashes, streams; 10% with a TTL; 10% in db 3",
		loadMixed(ctx, c0, c3, n)
}

// loadMixed writes n keys of every type, the mix of a typical cache and
// session store: mostly small strings, small collections, a few streams,
// one key in ten with a TTL and one in ten in db 3. Deterministic.
func loadMixed(ctx context.Context, c0, c3 *redis.Client, n int) error {
	rng := rand.New(rand.NewPCG(1, 2))
	str := func(max int) string {
		b := make([]byte, rng.IntN(max+1))
		for i := range b {
			b[i] = byte('a' + rng.IntN(26))
		}
		return string(b)
	}
	p0, p3 := c0.Pipeline(), c3.Pipeline()
	for i := 0; i < n; i++ {
		p := p0
		if i%10 == 7 {
			p = p3
		}
		k := "mixed:" + strconv.Itoa(i)
		switch r := rng.IntN(100); {
		case r < 60:
			p.Set(ctx, k, str(200), 0)
		case r < 70:
			p.RPush(ctx, k, str(30), str(30), str(30), str(30), str(30))
		case r < 78:
			p.SAdd(ctx, k, str(20), str(20), str(20), rng.IntN(1000))
		case r < 86:
			p.ZAdd(ctx, k, redis.Z{Score: rng.Float64(), Member: str(20)}, redis.Z{Score: 2, Member: str(20)}, redis.Z{Score: 3, Member: str(20)})
		case r < 97:
			p.HSet(ctx, k, "name", str(20), "email", str(30), "n", rng.IntN(100000), "visits", rng.IntN(100))
		default:
			for j := 0; j < 3; j++ {
				p.XAdd(ctx, &redis.XAddArgs{Stream: k, Values: []any{"event", str(20), "n", j}})
			}
		}
		if i%10 == 3 {
			p.Expire(ctx, k, time.Hour+time.Duration(rng.IntN(3600))*time.Second)
		}
		if i%5000 == 4999 {
			for _, p := range []redis.Pipeliner{p0, p3} {
				if _, err := p.Exec(ctx); err != nil {
					return err
				}
			}
		}
	}
	for _, p := range []redis.Pipeliner{p0, p3} {
		if _, err := p.Exec(ctx); err != nil {
			return err
		}
	}
	return nil
}

// loadSimple writes n keys of five types, pipelined.
func loadSimple(ctx context.Context, c *redis.Client, n, size int) error {
	val := strings.Repeat("v", size)
	pipe := c.Pipeline()
	for i := 0; i < n; i++ {
		k := "key:" + strconv.Itoa(i)
		switch i % 5 {
		case 0, 1:
			pipe.Set(ctx, k, val, 0)
		case 2:
			pipe.HSet(ctx, k, "a", val, "b", i)
		case 3:
			pipe.RPush(ctx, k, val, i, val)
		case 4:
			pipe.ZAdd(ctx, k, redis.Z{Score: float64(i), Member: val}, redis.Z{Score: 1, Member: "m"})
		}
		if i%10000 == 9999 {
			if _, err := pipe.Exec(ctx); err != nil {
				return err
			}
		}
	}
	_, err := pipe.Exec(ctx)
	return err
}
