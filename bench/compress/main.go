package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/bench/internal/benchenv"
	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/internal/redisproc"
	"github.com/replicaof/replicaof/proxy"
	"github.com/replicaof/replicaof/syncer"
	"github.com/replicaof/replicaof/tlsutil"
)

type options struct {
	size           int64
	valueSize      int
	batch          int
	levels         []int
	limits         []int64 // bits per second, 0 = loopback
	aShards        int
	bShards        int
	tls            bool
	rdbCompression bool
	timeout        time.Duration
	verbose        bool
	cpuProfile     string
}

func main() {
	var o options
	size := flag.String("size", "1GiB", "dataset size: keys and values, in bytes (KiB, MiB, GiB suffixes)")
	levels := flag.String("levels", "0,1,6", "gzip levels to run, 0 = no compression")
	limit := flag.String("limit", "0,200mbit", "A→B link rates to run: 0 = loopback, else kbit, mbit, gbit per second")
	flag.IntVar(&o.valueSize, "value-size", 1024, "average value size in bytes")
	flag.IntVar(&o.batch, "batch", 1000, "SETs per pipeline while loading")
	flag.IntVar(&o.aShards, "a-shards", 1, "deployment A's destination shards (B has one link per A shard)")
	flag.IntVar(&o.bShards, "b-shards", 2, "deployment B's destination shards")
	flag.BoolVar(&o.tls, "tls", false, "B connects to A's proxy over mutual TLS (demo certificates)")
	flag.BoolVar(&o.rdbCompression, "rdb-compression", true, "A's shards compress strings in their snapshots with LZF (Redis' rdbcompression, default yes)")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Minute, "limit on each full sync")
	flag.BoolVar(&o.verbose, "v", false, "log the syncers and proxy at info level")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the B runs to this file")
	flag.Parse()
	log.SetFlags(0)
	var err error
	if o.size, err = parseSize(*size); err == nil {
		if o.levels, err = parseList(*levels, parseLevel); err == nil {
			o.limits, err = parseList(*limit, parseRate)
		}
	}
	switch {
	case err != nil:
	case o.size <= 0 || o.valueSize < 16 || o.batch < 1:
		err = errors.New("-size, -value-size (≥16) and -batch must be positive")
	case o.aShards < 1 || o.aShards > 64 || o.bShards < 1 || o.bShards > 64:
		err = errors.New("-a-shards and -b-shards: 1 to 64")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "compressbench:", err)
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		stop()
		log.Fatal("compressbench: ", err)
	}
}

// bench holds what lives for the whole run: the redis-server processes
// and deployment A.
type bench struct {
	o       options
	dir     string
	servers *benchenv.Servers
	log     *slog.Logger

	src     *redisproc.Proc
	srcKeys int64
	aShards []*redisproc.Proc
	bShards []*redisproc.Proc
	proxy   string // A's proxy address
	adminPW string
	certs   *tlsutil.Files
}

func (b *bench) start(name string, extra ...string) (*redisproc.Proc, error) {
	return b.servers.Start(name, extra...)
}

func client(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, ReadTimeout: time.Minute, WriteTimeout: time.Minute, MaxRetries: -1, DisableIdentity: true})
}

// result is one B full sync.
type result struct {
	level      int
	link       int64 // bits per second, 0 = loopback
	dur        time.Duration
	wire, recv int64
	tcp        int64 // what the throttle relayed to B (TLS included), 0 without one
	cpu        time.Duration
	rss        int64 // peak RSS of this process during the run, 0 if unknown
}

func run(ctx context.Context, o options) error {
	servers, err := benchenv.NewServers("compressbench-")
	if err != nil {
		return err
	}
	defer servers.Close()
	lvl := slog.LevelWarn
	if o.verbose {
		lvl = slog.LevelInfo
	}
	b := &bench{o: o, dir: servers.Dir, servers: servers, log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))}

	// The source. No diskless delay anywhere: it would add 5s to every sync.
	if b.src, err = b.start("source", "--repl-diskless-sync-delay", "0"); err != nil {
		return err
	}
	sc := client(b.src.Addr)
	defer sc.Close()
	t0 := time.Now()
	ls, err := load(ctx, sc, o.size, o.valueSize, o.batch)
	if err != nil {
		return fmt.Errorf("loading the source: %w", err)
	}
	loadTime := time.Since(t0)
	if b.srcKeys, err = sc.DBSize(ctx).Result(); err != nil {
		return err
	}
	if b.srcKeys != ls.keys {
		return fmt.Errorf("source holds %d keys after loading %d", b.srcKeys, ls.keys)
	}
	mem, _ := sc.Info(ctx, "memory").Result()
	fmt.Printf("dataset: %d JSON-like records, %s of keys and values (avg %d-byte values), source used_memory %s, loaded in %v (%.0f MiB/s)\n",
		ls.keys, formatBytes(ls.bytes), ls.bytes/max(ls.keys, 1), infoValue(mem, "used_memory_human"),
		loadTime.Round(time.Millisecond), float64(ls.bytes)/(1<<20)/loadTime.Seconds())

	// Deployment A.
	aArgs := []string{"--repl-diskless-sync-delay", "0"}
	if !o.rdbCompression {
		aArgs = append(aArgs, "--rdbcompression", "no")
	}
	for i := range o.aShards {
		p, err := b.start(fmt.Sprintf("a-shard-%d", i), aArgs...)
		if err != nil {
			return err
		}
		b.aShards = append(b.aShards, p)
	}
	for i := range o.bShards {
		p, err := b.start(fmt.Sprintf("b-shard-%d", i))
		if err != nil {
			return err
		}
		b.bShards = append(b.bShards, p)
	}
	actx, acancel := context.WithCancel(ctx)
	var awg sync.WaitGroup
	defer func() { acancel(); awg.Wait() }()
	aDur, aSt, err := b.startA(actx, &awg)
	if err != nil {
		return err
	}
	fmt.Printf("deployment A (%d shard(s)) full sync from the source: %v (the source's snapshot: %s); A's proxy at %s (tls %v, rdbcompression %v)\n",
		o.aShards, aDur.Round(time.Millisecond), formatBytes(aSt.BytesReceived), b.proxy, o.tls, o.rdbCompression)

	// Deployment B, once per link and level.
	stop, err := benchenv.CPUProfile(o.cpuProfile)
	if err != nil {
		return err
	}
	defer stop()
	var results []result
	for _, link := range o.limits {
		for _, level := range o.levels {
			r, err := b.runB(ctx, level, link)
			if err != nil {
				return fmt.Errorf("level %d, %s: %w", level, formatRate(link), err)
			}
			fmt.Fprintf(os.Stderr, "  level %d over %s: %v, %s on the wire for %s received\n",
				level, formatRate(link), r.dur.Round(time.Millisecond), formatBytes(r.wire), formatBytes(r.recv))
			results = append(results, r)
		}
	}
	printTable(os.Stdout, results)
	return nil
}

// startA syncs deployment A from the source, waits until it is synced and
// starts A's proxy; both run on wg until ctx ends.
func (b *bench) startA(ctx context.Context, wg *sync.WaitGroup) (time.Duration, syncer.SourceStatus, error) {
	var none syncer.SourceStatus
	var shards []destination.Shard
	for _, p := range b.aShards {
		shards = append(shards, destination.Shard{Addr: p.Addr})
	}
	dest, err := destination.New(destination.Config{Shards: shards})
	if err != nil {
		return 0, none, err
	}
	src, err := config.ParseSource("source: redis://" + b.src.Addr)
	if err != nil {
		return 0, none, err
	}
	sup, err := syncer.New(syncer.Config{
		Sources: []config.Source{src}, Destination: dest, NoResume: true,
		Logger: b.log.With("deployment", "A"), SpoolDir: filepath.Join(b.dir, "a-spool"),
	})
	if err != nil {
		dest.Close()
		return 0, none, err
	}
	t0 := time.Now()
	wg.Go(func() {
		defer dest.Close()
		if err := sup.Run(ctx); err != nil {
			b.log.Error("deployment A", "err", err)
		}
	})
	st, err := waitSynced(ctx, sup, b.o.timeout)
	if err != nil {
		return 0, none, fmt.Errorf("deployment A: %w", err)
	}
	d := time.Since(t0)
	if err := b.checkKeys(ctx, "A", b.aShards); err != nil {
		return 0, none, err
	}

	var pw [16]byte
	if _, err := rand.Read(pw[:]); err != nil {
		return 0, none, err
	}
	b.adminPW = hex.EncodeToString(pw[:])
	cfg := proxy.Config{
		Listen: "127.0.0.1:0", Destination: dest,
		AdminPassword: func() string { return b.adminPW },
		Logger:        b.log.With("deployment", "A", "component", "proxy"),
	}
	if b.o.tls {
		certs, err := tlsutil.GenerateDemo(filepath.Join(b.dir, "certs"), nil)
		if err != nil {
			return 0, none, err
		}
		b.certs = &certs
		if cfg.TLS, err = tlsutil.ServerConfig(tlsutil.ServerOptions{
			CertFile: certs.ProxyCert, KeyFile: certs.ProxyKey, ClientCAFile: certs.CA,
		}); err != nil {
			return 0, none, err
		}
	}
	srv, err := proxy.New(cfg)
	if err != nil {
		return 0, none, err
	}
	wg.Go(func() {
		if err := srv.Serve(ctx); err != nil && ctx.Err() == nil {
			b.log.Error("A's proxy", "err", err)
		}
	})
	b.proxy = srv.Addr().String()
	return d, st.Sources[0], nil
}

// runB runs one fresh deployment B supervisor with A's proxy (through a
// throttle when link > 0) as its source at gzip level, until synced.
func (b *bench) runB(ctx context.Context, level int, link int64) (result, error) {
	r := result{level: level, link: link}
	// B's shards hold the previous run's keys: empty them first so that
	// every run's flush (part of the timed start) finds them empty.
	for _, p := range b.bShards {
		c := client(p.Addr)
		err := c.FlushAll(ctx).Err()
		c.Close()
		if err != nil {
			return r, err
		}
	}
	addr := b.proxy
	var th *throttle
	if link > 0 {
		var err error
		if th, err = startThrottle(b.proxy, link); err != nil {
			return r, err
		}
		defer func() {
			if err := th.Close(); err != nil {
				b.log.Warn("throttle", "err", err)
			}
		}()
		addr = th.Addr()
	}
	scheme := "redis"
	if b.certs != nil {
		scheme = "rediss"
	}
	src, err := config.ParseSource(fmt.Sprintf("a: %s://%s:%s@%s", scheme, proxy.AdminUser, b.adminPW, addr))
	if err != nil {
		return r, err
	}
	src.Compression = level
	if b.certs != nil {
		src.TLSFiles = &config.TLSFiles{CA: b.certs.CA, Cert: b.certs.SyncerCert, Key: b.certs.SyncerKey}
	}
	var shards []destination.Shard
	for _, p := range b.bShards {
		shards = append(shards, destination.Shard{Addr: p.Addr})
	}
	dest, err := destination.New(destination.Config{Shards: shards})
	if err != nil {
		return r, err
	}
	defer dest.Close()
	sup, err := syncer.New(syncer.Config{
		Sources: []config.Source{src}, Destination: dest, NoResume: true,
		Logger:   b.log.With("deployment", "B", "level", level, "rate", formatRate(link)),
		SpoolDir: filepath.Join(b.dir, "b-spool"),
	})
	if err != nil {
		return r, err
	}

	rssOK := resetPeakRSS()
	cpu0 := cpuTime()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	t0 := time.Now()
	go func() { done <- sup.Run(rctx) }() // owned: waited for below
	st, err := waitSynced(ctx, sup, b.o.timeout)
	r.dur = time.Since(t0)
	r.cpu = cpuTime() - cpu0
	if rssOK {
		r.rss = benchenv.PeakRSS(0)
	}
	cancel()
	if rerr := <-done; rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		return r, err
	}
	s := st.Sources[0]
	if s.Kind != syncer.KindReplicaof || s.Links != len(b.aShards) {
		return r, fmt.Errorf("B's source is %q with %d links, want %q with %d", s.Kind, s.Links, syncer.KindReplicaof, len(b.aShards))
	}
	r.wire, r.recv = s.WireBytes, s.BytesReceived
	if th != nil {
		r.tcp = th.DownBytes()
	}
	if level > 0 && r.wire >= r.recv || level == 0 && r.wire < r.recv {
		return r, fmt.Errorf("%d bytes on the wire for %d received at gzip level %d", r.wire, r.recv, level)
	}
	return r, b.checkKeys(ctx, "B", b.bShards)
}

// waitSynced polls sup until its aggregate status is synced, failing
// when it stops, ctx ends or timeout passes.
func waitSynced(ctx context.Context, sup *syncer.Supervisor, timeout time.Duration) (syncer.Status, error) {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		st := sup.Status()
		switch st.Status {
		case syncer.StateSynced:
			return st, nil
		case syncer.StateStopped:
			var errs []string
			for _, s := range st.Sources {
				errs = append(errs, s.Name+": "+s.LastError)
			}
			return st, fmt.Errorf("sync stopped: %s", strings.Join(errs, "; "))
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("not synced after %v: %+v", timeout, st.Sources)
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-tick.C:
		}
	}
}

// checkKeys fails unless the shards hold exactly the source's keys,
// leaving out the deployment's own __replicaof: keys.
func (b *bench) checkKeys(ctx context.Context, name string, shards []*redisproc.Proc) error {
	var total, internal int64
	for _, p := range shards {
		c := client(p.Addr)
		n, err := c.DBSize(ctx).Result()
		if err == nil {
			var in int64
			in, err = countPrefix(ctx, c, destination.KeyPrefix)
			internal += in
		}
		c.Close()
		if err != nil {
			return fmt.Errorf("counting %s's keys: %w", name, err)
		}
		total += n
	}
	if total-internal != b.srcKeys {
		return fmt.Errorf("deployment %s holds %d keys (%d of its own left out), the source %d", name, total-internal, internal, b.srcKeys)
	}
	return nil
}

// countPrefix counts the keys starting with prefix, by SCAN.
func countPrefix(ctx context.Context, c *redis.Client, prefix string) (int64, error) {
	var n int64
	var cursor uint64
	for i := 0; ; i++ {
		if i > 1<<24 {
			return 0, errors.New("SCAN did not end")
		}
		keys, next, err := c.Scan(ctx, cursor, prefix+"*", 10000).Result()
		if err != nil {
			return 0, err
		}
		for _, k := range keys {
			if strings.HasPrefix(k, prefix) {
				n++
			}
		}
		if cursor = next; cursor == 0 {
			return n, nil
		}
	}
}

// printTable prints the results as a Markdown table, times as ratios of
// level 0 on the same link (when it ran).
func printTable(w io.Writer, rs []result) {
	base := map[int64]time.Duration{}
	for _, r := range rs {
		if r.level == 0 {
			base[r.link] = r.dur
		}
	}
	fmt.Fprintln(w, "| gzip level | A→B link | full sync | vs level 0 | on the wire | received | wire/received | received MiB/s | wire Mbit/s | relayed TCP | CPU (process) | peak RSS |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		ratio := "—"
		if b, ok := base[r.link]; ok && b > 0 {
			ratio = fmt.Sprintf("%.2f×", r.dur.Seconds()/b.Seconds())
		}
		rss := "—"
		if r.rss > 0 {
			rss = fmt.Sprintf("%.0f MiB", float64(r.rss)/(1<<20))
		}
		tcp := "—"
		if r.tcp > 0 {
			tcp = formatBytes(r.tcp)
		}
		level := strconv.Itoa(r.level)
		if r.level == 0 {
			level = "0 (off)"
		}
		secs := r.dur.Seconds()
		fmt.Fprintf(w, "| %s | %s | %.2f s | %s | %s | %s | %.3f | %.0f | %.0f | %s | %.1f s | %s |\n",
			level, formatRate(r.link), secs, ratio, formatBytes(r.wire), formatBytes(r.recv),
			float64(r.wire)/float64(max(r.recv, 1)), float64(r.recv)/(1<<20)/secs, float64(r.wire)*8/1e6/secs,
			tcp, r.cpu.Seconds(), rss)
	}
}

func infoValue(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// cpuTime is the user and system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// resetPeakRSS resets this process's peak RSS (VmHWM) to its current RSS
// (Linux ≥ 4.0), so that peakRSS measures one run; false if it cannot.
func resetPeakRSS() bool {
	debug.FreeOSMemory() // or the previous run's garbage counts as this run's peak
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}
