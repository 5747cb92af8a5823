package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/syncer"
	"github.com/replicaof/replicaof/tlsutil"
	"github.com/replicaof/replicaof/verify"
)

// errDifferent makes verify exit 1 when it found differences.
var errDifferent = errors.New("verify: the destination differs from the sources")

func newVerify() *cobra.Command {
	var (
		path          string
		sources       []string
		shards        []string
		tlsCA         string
		asJSON, noBar bool
		cfg           verify.Config
		maxShown      int
		recheck       time.Duration
		ttlGrace      time.Duration
	)
	c := &cobra.Command{
		Use:   "verify (-c FILE | --source URL... --shard URL...)",
		Short: "Compare the sources with the destination key by key",
		Long: `Compares every key of the sources (their union) with the destination shard
its slot maps to: type, value (xxhash digest of a canonical encoding) and TTL
(the destination's with the syncer's ttl_grace taken off, within
--ttl-tolerance), then looks for destination keys on no source. Memory stays bounded:
keys are read in SCAN batches, large values in chunks. Mismatches are read
again once after --recheck-delay, and only those still different are
reported, so verify can run while sync is live.

Exit status: 0 equal, 1 different or error, 2 usage error.`,
		Args: positional(cobra.NoArgs),
		RunE: func(c *cobra.Command, args []string) error {
			if (path == "") == (len(sources) == 0 && len(shards) == 0) {
				return usageError{errors.New("verify: give -c FILE, or --source and --shard URLs, not both")}
			}
			var (
				err     error
				srcCfgs []config.Source
				dstEps  []verify.Endpoint
			)
			if path != "" {
				cfg.Sources, dstEps, srcCfgs, cfg.TTLGrace, cfg.DBMap, err = endpointsFromConfig(path)
			} else {
				cfg.Sources, dstEps, srcCfgs, err = endpointsFromFlags(sources, shards, tlsCA)
				cfg.TTLGrace = ttlGrace
			}
			if err != nil {
				return err
			}
			if len(dstEps) == 0 {
				return usageError{errors.New("verify: at least one --shard URL is required")}
			}
			octx, cancel := context.WithTimeout(c.Context(), max(cfg.Timeout, time.Second))
			dest, err := destinationOf(octx, dstEps)
			cancel()
			if err != nil {
				return err
			}
			defer dest.Close()
			cfg.Destination = dest
			cfg.MaxReported = maxShown
			cfg.RecheckDelay = recheck
			if recheck == 0 {
				cfg.RecheckDelay = -1
			}
			stderr := c.ErrOrStderr()
			var bar *progressBar
			if !noBar && isTerminal(stderr) {
				bar = &progressBar{w: stderr}
				cfg.Progress = bar.draw
			}
			ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if cfg.Sources, err = expandClusters(ctx, cfg.Sources, srcCfgs); err != nil {
				return err
			}
			rep, err := verify.Run(ctx, cfg)
			if bar != nil {
				bar.clear()
			}
			if err != nil {
				return err
			}
			out := c.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else if err := rep.WriteText(out); err != nil {
				return err
			}
			if !rep.OK() {
				return errDifferent
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVarP(&path, "config", "c", "", "config file: sources and destination shards (passwords, TLS)")
	f.StringArrayVar(&sources, "source", nil, `source URL, "URL" or "name: URL" (repeat for several)`)
	f.StringArrayVar(&shards, "shard", nil, "destination shard URL, in shard order (repeat for each shard)")
	f.StringVar(&tlsCA, "tls-ca", "", "CA bundle for rediss:// URLs given with --source/--shard (default: system roots)")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.BoolVar(&noBar, "no-progress", false, "no progress bar, even on a terminal")
	f.IntVar(&maxShown, "show", 20, "how many mismatches to list")
	f.DurationVar(&recheck, "recheck-delay", time.Second, "wait this long before reading a mismatch again (0: at once)")
	f.IntVar(&cfg.Batch, "batch", 1000, "keys per SCAN and per pipeline")
	f.IntVar(&cfg.Workers, "workers", 4, "batches compared at once")
	f.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "deadline of every network call")
	f.DurationVar(&ttlGrace, "ttl-grace", config.DefaultTTLGrace, "with --source/--shard: the syncer's replica_of.ttl_grace, taken off destination TTLs (-c reads it from the file)")
	f.DurationVar(&cfg.TTLTolerance, "ttl-tolerance", 5*time.Second, "how far apart a key's TTLs may be on the two sides, grace taken off")
	return c
}

// destinationOf opens the destination of the shards at eps (their AUTH
// and TLS kept), in shard order: a Redis Cluster when they are its nodes
// (seeds: one is enough).
func destinationOf(ctx context.Context, eps []verify.Endpoint) (*destination.Destination, error) {
	var shards []destination.Shard
	for _, e := range eps {
		shards = append(shards, destination.Shard{Addr: e.Addr, User: e.User, Password: e.Password, Dial: e.Dial})
	}
	return destination.Open(ctx, destination.Config{Shards: shards})
}

// endpointsFromConfig reads the sources, the shards, the TTL grace the
// syncer adds (replica_of.ttl_grace) and its destination.db_map from the
// config file.
func endpointsFromConfig(path string) (srcs, shards []verify.Endpoint, cfgs []config.Source, grace time.Duration,
	dbMap map[int]int, err error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, nil, 0, nil, usageError{err}
	}
	for _, s := range cfg.ReplicaOf.Sources {
		e, err := endpoint(s.Name, s.Endpoint, s.TLSFiles)
		if err != nil {
			return nil, nil, nil, 0, nil, err
		}
		srcs = append(srcs, e)
	}
	for _, s := range cfg.Destination.Shards {
		e, err := endpoint("", s, cfg.Destination.TLS)
		if err != nil {
			return nil, nil, nil, 0, nil, err
		}
		shards = append(shards, e)
	}
	if len(cfg.Destination.DBMap) > 0 {
		dbMap = make(map[int]int, len(cfg.Destination.DBMap))
		for from, to := range cfg.Destination.DBMap {
			if to == config.DBDrop {
				to = verify.DBDrop
			}
			dbMap[from] = to
		}
	}
	return srcs, shards, cfg.ReplicaOf.Sources, cfg.ReplicaOf.Grace(), dbMap, nil
}

func endpointsFromFlags(sources, shards []string, ca string) (srcs, dst []verify.Endpoint, cfgs []config.Source, err error) {
	var files *config.TLSFiles
	if ca != "" {
		files = &config.TLSFiles{CA: ca}
	}
	for _, raw := range sources {
		s, err := config.ParseSource(raw)
		if err != nil {
			return nil, nil, nil, usageError{fmt.Errorf("--source: %w", err)}
		}
		e, err := endpoint(s.Name, s.Endpoint, files)
		if err != nil {
			return nil, nil, nil, err
		}
		s.TLSFiles = files
		srcs = append(srcs, e)
		cfgs = append(cfgs, s)
	}
	for _, raw := range shards {
		s, err := config.ParseURL(raw)
		if err != nil {
			return nil, nil, nil, usageError{fmt.Errorf("--shard: %w", err)}
		}
		e, err := endpoint("", s, files)
		if err != nil {
			return nil, nil, nil, err
		}
		dst = append(dst, e)
	}
	return srcs, dst, cfgs, nil
}

// expandClusters replaces each Redis Cluster source by its masters (a
// node holds only its own slots); other sources, a replicaof proxy
// included (it routes reads itself), stay as they are.
func expandClusters(ctx context.Context, eps []verify.Endpoint, cfgs []config.Source) ([]verify.Endpoint, error) {
	var out []verify.Endpoint
	for i, e := range eps {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		kind, links, err := syncer.Discover(dctx, cfgs[i])
		cancel()
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", cfgs[i].Name, err)
		}
		if kind != syncer.KindCluster {
			out = append(out, e)
			continue
		}
		for _, l := range links {
			m := e
			m.Name, m.Addr, m.Slots = e.Name+"@"+l.Addr, l.Addr, l.Slots
			out = append(out, m)
		}
	}
	return out, nil
}

func endpoint(name string, e config.Endpoint, files *config.TLSFiles) (verify.Endpoint, error) {
	out := verify.Endpoint{Name: name, Addr: e.Addr(), User: e.User, Password: string(e.Password)}
	if e.TLS {
		tc, err := tlsutil.ClientConfig(e.Host, files.ClientOptions())
		if err != nil {
			return out, fmt.Errorf("%s: %w", e.Redacted(), err)
		}
		out.Dial = (&tlsutil.Dialer{Config: tc}).DialContext
	}
	return out, nil
}

// isTerminal reports whether w is a character device (a terminal), without
// golang.org/x/term.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressBar draws one line, redrawn in place, on a terminal.
type progressBar struct {
	w     io.Writer
	drawn bool
}

func (b *progressBar) draw(p verify.Progress) {
	const width = 30
	frac := 0.0
	if p.Total > 0 {
		frac = min(float64(p.Done)/float64(p.Total), 1)
	}
	full := int(frac * width)
	fmt.Fprintf(b.w, "\r\x1b[K[%s%s] %3.0f%% %d/%d keys  %s",
		strings.Repeat("#", full), strings.Repeat(".", width-full), 100*frac, p.Done, p.Total, p.Phase)
	b.drawn = true
}

func (b *progressBar) clear() {
	if b.drawn {
		fmt.Fprint(b.w, "\r\x1b[K")
	}
}
