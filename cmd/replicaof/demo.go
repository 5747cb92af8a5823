package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/internal/redisproc"
)

func newDemo() *cobra.Command {
	var nSources, nShards, keys, replicas int
	var duration time.Duration
	var quiet, cluster bool
	c := &cobra.Command{
		Use:   "demo",
		Short: "Run replicaof on a local topology: 2 sources, a 3-shard destination, live traffic",
		Long: `Starts redis-server processes on free 127.0.0.1 ports (sources and
destination shards), loads some data into the sources, runs replicaof serve
against them, keeps writing a little traffic into the sources and shows the
sync status until Ctrl-C, which stops everything it started.

With --cluster the destination is a local Redis Cluster instead: --shards
masters (default 3) with --cluster-replicas replicas each (default 1),
formed with redis-cli --cluster create and named to replicaof by one seed
node.`,
		Args: positional(cobra.NoArgs),
		RunE: func(c *cobra.Command, args []string) error {
			if nSources < 1 || nSources > config.MaxSources || nShards < 1 || nShards > 64 {
				return usageError{fmt.Errorf("demo: --sources 1..%d and --shards 1..64", config.MaxSources)}
			}
			if cluster && (nShards < 3 || replicas < 0 || replicas > 4) {
				return usageError{errors.New("demo: --cluster needs --shards 3..64 (masters) and --cluster-replicas 0..4")}
			}
			ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if duration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, duration)
				defer cancel()
			}
			return runDemo(ctx, c.OutOrStdout(), demoOptions{sources: nSources, shards: nShards, keys: keys, quiet: quiet,
				cluster: cluster, replicas: replicas})
		},
	}
	c.Flags().IntVar(&nSources, "sources", 2, "source databases to start")
	c.Flags().IntVar(&nShards, "shards", 3, "destination shards to start")
	c.Flags().IntVar(&keys, "keys", 10000, "keys to load into each source before sync starts")
	c.Flags().DurationVar(&duration, "duration", 0, "stop by itself after this long (0: run until Ctrl-C)")
	c.Flags().BoolVar(&quiet, "quiet", false, "print the status once a second as a line instead of redrawing the table")
	c.Flags().BoolVar(&cluster, "cluster", false, "make the destination a local Redis Cluster of --shards masters")
	c.Flags().IntVar(&replicas, "cluster-replicas", 1, "replicas per master with --cluster")
	return c
}

type demoOptions struct {
	sources, shards, keys int
	quiet                 bool
	cluster               bool // the destination is a Redis Cluster of shards masters
	replicas              int  // per master, with cluster
}

// ensureRedis finds redis-server, installing Debian's package when it is
// missing and we are root; otherwise it says what to install.
func ensureRedis(out io.Writer) (string, error) {
	if bin, err := redisproc.Binary(); err == nil {
		return bin, nil
	}
	if os.Geteuid() != 0 {
		return "", redisproc.ErrNotFound
	}
	apt, err := exec.LookPath("apt-get")
	if err != nil {
		return "", redisproc.ErrNotFound
	}
	fmt.Fprintln(out, "redis-server is missing: installing redis-server and redis-tools with apt-get…")
	for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", "redis-server", "redis-tools"}} {
		cmd := exec.Command(apt, args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("apt-get %v: %w\n%s", args, err, b)
		}
	}
	_ = exec.Command("service", "redis-server", "stop").Run() // the package starts one on 6379; we use our own
	return redisproc.Binary()
}

func runDemo(ctx context.Context, out io.Writer, o demoOptions) error {
	bin, err := ensureRedis(out)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "replicaof-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var procs []*redisproc.Proc
	defer func() {
		for _, p := range procs {
			p.Kill()
		}
	}()
	start := func(name string, extra ...string) (*redisproc.Proc, error) {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
		p, err := redisproc.Start(bin, d, extra...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		procs = append(procs, p)
		return p, nil
	}
	var sources, shards []*redisproc.Proc
	for i := 0; i < o.sources; i++ {
		// No diskless delay: a restart from the demo starts loading at
		// once instead of sitting at "waiting-for-snapshot" for 5 s.
		p, err := start(sourceName(i), "--repl-diskless-sync-delay", "0")
		if err != nil {
			return err
		}
		sources = append(sources, p)
	}
	// seeds are the destination URLs of the config: the shards, or one
	// node of the cluster (any node will do: replicaof discovers the rest).
	var seeds []string
	destText := ""
	if o.cluster {
		fmt.Fprintf(out, "forming a Redis Cluster of %d masters with %d replica(s) each…\n", o.shards, o.replicas)
		cl, err := redisproc.StartCluster(ctx, bin, dir, "cluster-node", o.shards, o.replicas)
		if err != nil {
			return err
		}
		procs = append(procs, cl.Nodes...)
		seeds = []string{cl.Nodes[0].Addr}
		destText = fmt.Sprintf("Redis Cluster, %d masters + %d replicas (seed %s): %s",
			o.shards, len(cl.Nodes)-o.shards, cl.Nodes[0].Addr, addrs(cl.Nodes))
	} else {
		for i := 0; i < o.shards; i++ {
			p, err := start(fmt.Sprintf("shard-%d", i))
			if err != nil {
				return err
			}
			shards = append(shards, p)
			seeds = append(seeds, p.Addr)
		}
		destText = addrs(shards)
	}
	clients := make([]*redis.Client, len(sources))
	for i, p := range sources {
		clients[i] = redis.NewClient(&redis.Options{Addr: p.Addr, Protocol: 2, DialTimeout: 2 * time.Second,
			ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, MaxRetries: -1})
		defer clients[i].Close()
		if err := seed(ctx, clients[i], sourceName(i), o.keys); err != nil {
			return fmt.Errorf("seeding %s: %w", sourceName(i), err)
		}
	}

	proxyPort, err := redisproc.FreePort()
	if err != nil {
		return err
	}
	adminPort, err := redisproc.FreePort()
	if err != nil {
		return err
	}
	yaml := fmt.Sprintf("proxy: { listen: \"127.0.0.1:%d\" }\nadmin: { listen: \"127.0.0.1:%d\" }\ndestination:\n  shards:\n", proxyPort, adminPort)
	for _, a := range seeds {
		yaml += fmt.Sprintf("    - \"redis://%s\"\n", a)
	}
	yaml += "replica_of:\n  sources:\n"
	for i, p := range sources {
		yaml += fmt.Sprintf("    - \"%s: redis://%s\"\n", sourceName(i), p.Addr)
	}
	yaml += fmt.Sprintf("state_dir: %q\n", filepath.Join(dir, "state"))
	cfgPath := filepath.Join(dir, "replicaof.yaml")
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		return err
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(dir, "replicaof.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	logger, err := newLogger(logf, cfg.Log, "", "")
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	readyCh := make(chan running, 1)
	serveErr := make(chan error, 1)
	go func() { serveErr <- serve(ctx, cfgPath, cfg, logger, func(r running) { readyCh <- r }) }()
	var r running
	select {
	case r = <-readyCh:
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	}

	var traffic sync.WaitGroup
	for i, c := range clients {
		traffic.Add(1)
		go func() { defer traffic.Done(); writeTraffic(ctx, c, sourceName(i)) }()
	}
	defer traffic.Wait()
	defer cancel()

	fmt.Fprintf(out, `
replicaof demo is running (Ctrl-C stops everything).

  sources:      %s
  destination:  %s
  proxy:        %s      try:  redis-cli -p %d get demo:%s:counter
  admin API:    %s/v1/status
  status:       replicaof status --admin %s --watch
  config:       %s   (log: %s)

`, addrs(sources), destText, r.ProxyAddr, proxyPort, sourceName(0), r.AdminURL, r.AdminURL, cfgPath, logf.Name())

	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		st := r.Supervisor.Status()
		if o.quiet {
			line := "status: " + st.Status
			for _, s := range st.Sources {
				line += fmt.Sprintf("  %s=%s (%s) lag=%dms", s.Name, s.SyncState, progressText(s, false), s.LagMS)
				if s.LastError != "" {
					line += " error=" + strconv.Quote(s.LastError)
				}
			}
			fmt.Fprintln(out, line)
		} else {
			fmt.Fprint(out, "\x1b[s\x1b[J") // save cursor, clear below
			renderStatus(out, st, time.Now())
			fmt.Fprint(out, "\x1b[u") // back, so the next table overwrites this one
		}
		select {
		case <-ctx.Done():
			cancel()
			err := <-serveErr
			fmt.Fprintln(out, "\n\nstopping: every process the demo started is stopped.")
			if err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		case err := <-serveErr:
			return fmt.Errorf("serve stopped: %w", err)
		case <-t.C:
		}
	}
}

func suffix(i int) string {
	if i < 26 {
		return ""
	}
	return strconv.Itoa(i / 26)
}

func sourceName(i int) string { return fmt.Sprintf("source-%c", 'a'+i%26) + suffix(i) }

func addrs(ps []*redisproc.Proc) string {
	s := ""
	for i, p := range ps {
		if i > 0 {
			s += " "
		}
		s += p.Addr
	}
	return s
}

// seed loads n keys of several types into a source.
func seed(ctx context.Context, c *redis.Client, name string, n int) error {
	pipe := c.Pipeline()
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("demo:%s:%d", name, i)
		switch i % 4 {
		case 0:
			pipe.Set(ctx, k, fmt.Sprintf("value-%d", i), 0)
		case 1:
			pipe.HSet(ctx, k, "n", i, "name", name)
		case 2:
			pipe.RPush(ctx, k, "a", "b", i)
		case 3:
			pipe.ZAdd(ctx, k, redis.Z{Score: float64(i), Member: name})
		}
		if i%1000 == 999 {
			if _, err := pipe.Exec(ctx); err != nil {
				return err
			}
		}
	}
	_, err := pipe.Exec(ctx)
	return err
}

// writeTraffic writes about 20 commands a second into a source until ctx
// ends: a counter, a rolling event list and short-lived keys.
func writeTraffic(ctx context.Context, c *redis.Client, name string) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pipe := c.Pipeline()
		pipe.Incr(ctx, "demo:"+name+":counter")
		pipe.LPush(ctx, "demo:"+name+":events", fmt.Sprintf("event %d at %s", i, time.Now().Format(time.RFC3339Nano)))
		pipe.LTrim(ctx, "demo:"+name+":events", 0, 99)
		pipe.Set(ctx, fmt.Sprintf("demo:%s:session:%d", name, i%50), i, time.Minute)
		_, _ = pipe.Exec(ctx)
	}
}
