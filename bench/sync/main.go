// Command syncbench measures replicaof's full sync and streaming against
// native REPLICAOF of the same data in the same run (make bench-sync):
//
//  1. loads KEYS mixed keys into a source redis-server;
//  2. times a native replica's full sync (REPLICAOF) of it;
//  3. times `replicaof serve` (a subprocess) syncing it into 1 and into 3
//     shards, reading its peak RSS (VmHWM) from /proc;
//  4. while synced into 3 shards, runs redis-benchmark -t set -P 16 on the
//     source, samples the lag, and times the catch-up after it ends.
//
// Every process runs on 127.0.0.1 and is stopped at the end.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/internal/redisproc"
	"github.com/replicaof/replicaof/syncer"
)

func main() {
	bin := flag.String("bin", "bin/replicaof", "replicaof binary")
	keys := flag.Int("keys", 1000000, "keys to load into the source")
	valueSize := flag.Int("value-size", 16, "bytes per string value / element")
	setN := flag.Int("set-n", 500000, "redis-benchmark -n for the streaming phase")
	flag.Parse()
	log.SetFlags(0)
	if err := run(*bin, *keys, *valueSize, *setN); err != nil {
		log.Fatal("syncbench: ", err)
	}
}

type bench struct {
	bin   string
	dir   string
	rbin  string
	procs []*redisproc.Proc
}

func (b *bench) start(name string, extra ...string) (*redisproc.Proc, error) {
	d := filepath.Join(b.dir, name)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return nil, err
	}
	p, err := redisproc.Start(b.rbin, d, extra...)
	if err == nil {
		b.procs = append(b.procs, p)
	}
	return p, err
}

func client(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, ReadTimeout: time.Minute, WriteTimeout: time.Minute, MaxRetries: -1})
}

func run(bin string, keys, valueSize, setN int) error {
	rbin, err := redisproc.Binary()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "syncbench-")
	if err != nil {
		return err
	}
	b := &bench{bin: bin, dir: dir, rbin: rbin}
	defer func() {
		for _, p := range b.procs {
			p.Kill()
		}
		os.RemoveAll(dir)
	}()
	ctx := context.Background()
	// No diskless delay: it would add 5s to both native and ours.
	src, err := b.start("source", "--repl-diskless-sync-delay", "0")
	if err != nil {
		return err
	}
	sc := client(src.Addr)
	defer sc.Close()
	t0 := time.Now()
	if err := load(ctx, sc, keys, valueSize); err != nil {
		return err
	}
	mem, _ := sc.Info(ctx, "memory").Result()
	fmt.Printf("dataset: %d keys (strings, hashes, lists, sets, zsets; %d-byte values), used_memory %s, loaded in %v\n",
		keys, valueSize, infoValue(mem, "used_memory_human"), time.Since(t0).Round(time.Millisecond))

	// Native REPLICAOF.
	nat, err := b.start("native")
	if err != nil {
		return err
	}
	nc := client(nat.Addr)
	defer nc.Close()
	t0 = time.Now()
	if err := nc.ReplicaOf(ctx, "127.0.0.1", strconv.Itoa(src.Port)).Err(); err != nil {
		return err
	}
	for {
		info, err := nc.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, "master_link_status:up") && strings.Contains(info, "master_sync_in_progress:0") {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	native := time.Since(t0)
	fmt.Printf("native REPLICAOF full sync: %v\n", native.Round(time.Millisecond))
	nat.Kill()

	for _, shards := range []int{1, 3} {
		d, rss, stop, adminURL, err := b.replicaof(ctx, src, shards)
		if err != nil {
			return err
		}
		fmt.Printf("replicaof full sync into %d shard(s): %v (%.2fx native), peak RSS %.0f MB\n",
			shards, d.Round(time.Millisecond), d.Seconds()/native.Seconds(), float64(rss)/(1<<20))
		if shards == 3 {
			if err := b.stream(ctx, src, sc, adminURL, setN, stop); err != nil {
				stop()
				return err
			}
		}
		stop()
	}
	return nil
}

// replicaof starts serve against src with n fresh shards and returns the
// time to synced, the peak RSS so far, a stop function and the admin URL.
func (b *bench) replicaof(ctx context.Context, src *redisproc.Proc, n int) (time.Duration, int64, func(), string, error) {
	var shards []string
	for i := 0; i < n; i++ {
		p, err := b.start(fmt.Sprintf("shard-%d-of-%d", i, n))
		if err != nil {
			return 0, 0, nil, "", err
		}
		shards = append(shards, fmt.Sprintf("%q", "redis://"+p.Addr))
	}
	pp, _ := redisproc.FreePort()
	ap, _ := redisproc.FreePort()
	cfg := filepath.Join(b.dir, fmt.Sprintf("replicaof-%d.yaml", n))
	yaml := fmt.Sprintf("proxy: { listen: \"127.0.0.1:%d\" }\nadmin: { listen: \"127.0.0.1:%d\" }\ndestination: { shards: [%s] }\nreplica_of: { sources: [\"src: redis://%s\"] }\nstate_dir: %q\nlog: { level: warn }\n",
		pp, ap, strings.Join(shards, ", "), src.Addr, filepath.Join(b.dir, "state"))
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		return 0, 0, nil, "", err
	}
	cmd := exec.Command(b.bin, "serve", "-c", cfg)
	cmd.Stderr = os.Stderr
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, nil, "", err
	}
	stop := func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }
	adminURL := fmt.Sprintf("http://127.0.0.1:%d", ap)
	deadline := time.Now().Add(10 * time.Minute)
	for {
		st, err := status(adminURL)
		if err == nil && st.Status == syncer.StateSynced {
			break
		}
		if err == nil && st.Status == syncer.StateStopped {
			stop()
			return 0, 0, nil, "", fmt.Errorf("sync stopped: %+v", st.Sources)
		}
		if time.Now().After(deadline) {
			stop()
			return 0, 0, nil, "", fmt.Errorf("not synced after 10 minutes")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(t0), peakRSS(cmd.Process.Pid), stop, adminURL, nil
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

// peakRSS reads VmHWM (peak resident set) of pid, in bytes.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func infoValue(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// load writes n keys of five types, pipelined.
func load(ctx context.Context, c *redis.Client, n, size int) error {
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
