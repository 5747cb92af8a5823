package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/replicaof/replicaof/admin"
	"github.com/replicaof/replicaof/admin/ui"
	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/internal/adminpw"
	"github.com/replicaof/replicaof/metrics"
	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/proxy"
	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/router"
	"github.com/replicaof/replicaof/syncer"
	"github.com/replicaof/replicaof/syncer/apply"
	"github.com/replicaof/replicaof/tlsutil"
)

func newServe() *cobra.Command {
	var path, logFormat, logLevel string
	var proxyOnly bool
	c := &cobra.Command{
		Use:   "serve -c FILE",
		Short: "Run the proxy, the syncer and the admin API from a config file",
		Args:  positional(cobra.NoArgs),
		RunE: func(c *cobra.Command, args []string) error {
			if path == "" {
				return usageError{errors.New("serve: -c FILE is required")}
			}
			cfg, err := config.Load(path)
			if err != nil {
				return usageError{err}
			}
			logger, err := newLogger(c.ErrOrStderr(), cfg.Log, logFormat, logLevel)
			if err != nil {
				return usageError{err}
			}
			ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if proxyOnly {
				return serveProxyOnly(ctx, cfg, logger, nil)
			}
			return serve(ctx, path, cfg, logger, nil)
		},
	}
	c.Flags().StringVarP(&path, "config", "c", "", "YAML config file")
	c.Flags().BoolVar(&proxyOnly, "proxy-only", false, "run only the proxy and the admin API: never write to the destination (no syncer, flush or checkpoints)")
	c.Flags().StringVar(&logFormat, "log-format", "", "text or json (default: the config's log.format, else text)")
	c.Flags().StringVar(&logLevel, "log-level", "", "debug, info, warn or error (default: the config's log.level, else info)")
	return c
}

func newLogger(w io.Writer, lc config.Log, format, level string) (*slog.Logger, error) {
	if format == "" {
		format = lc.Format
	}
	var lvl slog.Level
	if level != "" {
		if err := lvl.UnmarshalText([]byte(level)); err != nil {
			return nil, fmt.Errorf("--log-level: %w", err)
		}
	} else {
		lvl = lc.SlogLevel()
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

// proxyTLSConfig builds the client listener's TLS config from proxy.tls;
// nil (plain TCP) when TLS is off. The files are read now, so a bad file
// stops serve before anything listens.
func proxyTLSConfig(t *config.ProxyTLS) (*tls.Config, error) {
	if !t.Enabled() {
		return nil, nil
	}
	tc, err := tlsutil.ServerConfig(t.ServerOptions())
	if err != nil {
		return nil, fmt.Errorf("proxy.tls: %w", err)
	}
	return tc, nil
}

// running describes a started serve, for the demo and tests.
type running struct {
	ProxyAddr  string
	AdminURL   string
	Supervisor *syncer.Supervisor
}

// serve runs proxy, syncer and admin API until ctx ends. path (may be "")
// is re-read on SIGHUP: a changed source list restarts sync of all sources.
// ready, when set, is called once everything listens.
func serve(ctx context.Context, path string, cfg *config.Config, log *slog.Logger, ready func(running)) error {
	proxyTLS, err := proxyTLSConfig(cfg.Proxy.TLS)
	if err != nil {
		return err
	}
	readFrom, err := proxy.ParseReadFrom(cfg.Proxy.ReadFrom)
	if err != nil {
		return fmt.Errorf("proxy.%w", err)
	}
	// Metrics come first: the proxy, the destination's backends and the
	// appliers report to it. Its syncer series read the supervisor, made
	// below, at each scrape of /metrics (served only once it is set).
	status := &supervisorStatus{}
	m, err := metrics.New(metrics.Config{Source: status, Version: versionString()})
	if err != nil {
		return err
	}
	defer func() { _ = m.Shutdown(context.Background()) }()
	// The one destination the syncer writes and the proxy serves.
	dest, err := newDestination(ctx, cfg.Destination, pool.Config{Observer: m.Shards()}, log)
	if err != nil {
		return err
	}
	defer dest.Close()

	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("state_dir: %w", err)
	}
	// The internal admin password (user admin on the proxy): other
	// deployments replicate through this proxy with it.
	adminPW, err := adminpw.Open(cfg.StateDir)
	if err != nil {
		return err
	}
	crossShard, err := apply.ParseCrossShard(cfg.ReplicaOf.CrossShard)
	if err != nil {
		return fmt.Errorf("replica_of.%w", err)
	}
	id, err := instanceID(cfg.StateDir)
	if err != nil {
		return err
	}
	adminLn, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		return fmt.Errorf("admin listener: %w", err)
	}
	defer adminLn.Close()
	saveSources := func(srcs []config.Source) error {
		if path == "" {
			return nil
		}
		next := *cfg
		next.ReplicaOf.Sources = srcs
		return next.WriteFile(path)
	}
	sup, err := syncer.New(syncer.Config{Sources: cfg.ReplicaOf.Sources, Destination: dest, Logger: log,
		Lease: &syncer.LeaseConfig{ID: id, Addr: advertised(adminLn.Addr()), Duration: cfg.ReplicaOf.LeaseTime()},
		OnSourcesAdopted: func(srcs []config.Source) {
			if err := saveSources(srcs); err != nil {
				log.Error("saving the adopted sources", "error", err)
			}
		},
		SpoolDir: filepath.Join(cfg.StateDir, "spool"), ApplyOptions: apply.Options{
			Observer:        m.Shards(),
			CrossShard:      crossShard,
			TTLGrace:        cfg.ReplicaOf.Grace(),
			SkipUnsupported: cfg.ReplicaOf.SkipUnsupported(),
		}})
	if err != nil {
		return err
	}
	status.sup = sup

	pc := proxyConfig(cfg, dest, proxyTLS, readFrom, log, m)
	pc.AdminPassword = adminPW.Password
	prox, err := proxy.New(pc)
	if err != nil {
		return err
	}
	m.SetNodes(func() []metrics.Node { return metricNodes(prox.Nodes()) })
	adminPW.OnRotate(func() {
		n := prox.DropAdmin()
		log.Info("admin password rotated; closed the connections that used the old one", "closed", n)
	})
	proxyURL := func() (*url.URL, error) {
		return admin.ListenURL(cfg.Proxy.Listen, prox.Addr(), proxyTLS != nil, os.Hostname)
	}

	hs := &http.Server{
		Handler: admin.New(admin.Config{
			Controller: sup, Token: string(cfg.Admin.Token), Logger: log.With("component", "admin"),
			OnSourcesChanged: saveSources,
			Extra:            map[string]http.Handler{"/metrics": m.Handler(), "/": ui.Handler()},
			AdminPassword:    adminPW,
			ProxyURL:         proxyURL,
			Nodes:            func() []admin.DestinationNode { return statusNodes(prox.Nodes()) },
			DestinationKind:  destinationKind(dest),
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return sup.Run(gctx) })
	g.Go(func() error { return prox.Serve(gctx) })
	serveAdmin(gctx, g, hs, adminLn)
	if path != "" {
		g.Go(func() error { return reloadOnHUP(gctx, path, sup, log) })
	}
	log.Info("replicaof serving", "proxy", prox.Addr().String(), "admin", "http://"+adminLn.Addr().String(),
		"shards", dest.Len(), "sources", len(cfg.ReplicaOf.Sources), "state_dir", cfg.StateDir)
	if ready != nil {
		ready(running{ProxyAddr: prox.Addr().String(), AdminURL: "http://" + adminLn.Addr().String(), Supervisor: sup})
	}
	return g.Wait()
}

// reloadOnHUP re-reads the config file on SIGHUP and applies a changed
// source list (which restarts sync of all sources).
func reloadOnHUP(ctx context.Context, path string, sup *syncer.Supervisor, log *slog.Logger) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
		}
		cfg, err := config.Load(path)
		if err != nil {
			log.Error("config reload failed; keeping the running config", "path", path, "error", err)
			continue
		}
		if sameSources(sup.Sources(), cfg.ReplicaOf.Sources) {
			log.Info("config reloaded; sources unchanged", "path", path)
			continue
		}
		if err := sup.SetSources(ctx, cfg.ReplicaOf.Sources); err != nil {
			log.Error("applying reloaded sources", "error", err)
		}
	}
}

func sameSources(a, b []config.Source) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].URI() != b[i].URI() || a[i].Compression != b[i].Compression ||
			fmt.Sprint(a[i].TLSFiles) != fmt.Sprint(b[i].TLSFiles) {
			return false
		}
	}
	return true
}

// newDestination opens the destination at its URLs (AUTH, TLS) with its
// configured replicas: a Redis Cluster when its nodes say so, else the
// listed shards. It waits, within ctx, for a listed node to answer;
// tmpl tunes the syncer's pools.
func newDestination(ctx context.Context, d config.Destination, tmpl pool.Config, log *slog.Logger) (*destination.Destination, error) {
	shards, err := destShards(d.Shards, d.TLS)
	if err != nil {
		return nil, err
	}
	var replicas [][]destination.Shard
	for _, reps := range d.Replicas {
		rs, err := destShards(reps, d.TLS)
		if err != nil {
			return nil, err
		}
		replicas = append(replicas, rs)
	}
	return destination.Open(ctx, destination.Config{Shards: shards, Replicas: replicas, Pool: tmpl,
		Refresh: d.Refresh, Logger: log})
}

// destShards turns destination URLs into how to reach each node: AUTH
// user and password, TLS in Dial.
func destShards(urls []config.Endpoint, t *config.TLSFiles) ([]destination.Shard, error) {
	var out []destination.Shard
	for _, s := range urls {
		ds := destination.Shard{Addr: s.Addr(), User: s.User, Password: string(s.Password)}
		if s.TLS {
			tc, err := tlsutil.ClientConfig(s.Host, t.ClientOptions())
			if err != nil {
				return nil, fmt.Errorf("destination %s: %w", s.Redacted(), err)
			}
			ds.Dial = (&tlsutil.Dialer{Config: tc}).DialContext
		}
		out = append(out, ds)
	}
	return out, nil
}

// proxyConfig is the proxy's configuration from the file, for serve and
// serve --proxy-only alike (only serve adds the internal admin user).
func proxyConfig(cfg *config.Config, dest *destination.Destination, proxyTLS *tls.Config, readFrom proxy.ReadFrom,
	log *slog.Logger, m *metrics.Provider) proxy.Config {
	loops := proxy.LoopsAuto
	if cfg.Proxy.Loops != nil {
		loops = *cfg.Proxy.Loops
	}
	return proxy.Config{
		Listen:             cfg.Proxy.Listen,
		Password:           string(cfg.Proxy.Password),
		AllowWrites:        cfg.Proxy.AllowWrites,
		IdleTimeout:        cfg.Proxy.Timeout,
		MaxBlocking:        cfg.Proxy.MaxBlocking,
		Limits:             resp.Limits{MaxBulk: cfg.Proxy.MaxBulk, MaxArray: int64(cfg.Proxy.MaxArgs), MaxInline: cfg.Proxy.MaxInline},
		Destination:        dest,
		Backend:            pool.Config{Observer: m.Shards()},
		TLS:                proxyTLS,
		TLSReplicationOnly: cfg.Proxy.TLS.ReplicationOnly(),
		Logger:             log.With("component", "proxy"),
		Observer:           m.Proxy(),
		TTLGrace:           cfg.ReplicaOf.Grace(),
		ReadFrom:           readFrom,
		MaxReplicaLag:      cfg.Proxy.MaxReplicaLag,
		Loops:              loops,
		MaxPending:         cfg.Proxy.MaxPending,
	}
}

// metricNodes converts the proxy's view of the destination nodes for the
// metrics.
func metricNodes(ns []proxy.NodeStatus) []metrics.Node {
	out := make([]metrics.Node, len(ns))
	for i, n := range ns {
		out[i] = metrics.Node{Shard: n.Shard, Addr: n.Addr, Role: n.Role, Up: n.Up, Lag: n.Lag,
			Reads: n.Reads, Stale: n.Stale, LinkDown: n.LinkDown, Errors: n.Errors,
			Slots: slotCount(n.Slots), Unread: n.Unread}
	}
	return out
}

// slotCount is the number of slots in rs.
func slotCount(rs []router.SlotRange) int {
	n := 0
	for _, r := range rs {
		n += r.Len()
	}
	return n
}

// destinationKind is GET /v1/status's destination_kind.
func destinationKind(d *destination.Destination) string {
	if d.Cluster() {
		return "cluster"
	}
	return "shards"
}

// statusNodes converts the proxy's view of the destination nodes for
// GET /v1/status.
func statusNodes(ns []proxy.NodeStatus) []admin.DestinationNode {
	out := make([]admin.DestinationNode, len(ns))
	for i, n := range ns {
		out[i] = admin.DestinationNode{Shard: n.Shard, Addr: n.Addr, Role: n.Role, Up: n.Up, LagSeconds: n.Lag.Seconds(),
			Reads: n.Reads, Stale: n.Stale, LinkDown: n.LinkDown, Errors: n.Errors,
			Slots: router.FormatSlotRanges(n.Slots), ID: n.ID, Unread: n.Unread}
	}
	return out
}

// supervisorStatus is the metrics' Source: the supervisor, set once it
// exists and before /metrics is served.
type supervisorStatus struct{ sup *syncer.Supervisor }

func (s *supervisorStatus) Status() syncer.Status { return s.sup.Status() }
func (s *supervisorStatus) Flushes() int          { return s.sup.Flushes() }

// instanceID is this deployment's id for the destination's lease, kept in
// state_dir so a restarted process takes its own lease back at once.
func instanceID(stateDir string) (string, error) {
	path := filepath.Join(stateDir, "instance-id")
	if b, err := os.ReadFile(path); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" && !strings.ContainsAny(id, " \t") {
			return id, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("state_dir: %w", err)
	}
	var raw [8]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	id := hex.EncodeToString(raw[:])
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("state_dir: %w", err)
	}
	return id, nil
}

// advertised is the admin address standbys show for this instance: the
// listener's, with the host name in place of an unspecified address.
func advertised(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil && h != "" {
			host = h
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// serveAdmin runs hs on ln in g until ctx ends, then shuts it down,
// giving requests in flight 5 seconds.
func serveAdmin(ctx context.Context, g *errgroup.Group, hs *http.Server, ln net.Listener) {
	g.Go(func() error {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return hs.Shutdown(sctx)
	})
}
