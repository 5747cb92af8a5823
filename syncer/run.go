package syncer

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/syncer/apply"
	"github.com/replicaof/replicaof/syncer/replica"
)

// A sync run (syncAll) and the goroutines it owns: one errgroup holds
// every source's links, their lag samplers, the shard watch and a
// cluster source's topology watch, and the run returns only once all of
// them ended. The decisions are policy.go's and resume.go's.

// syncAll is one sync run: flush (or resume from checkpoints), then every
// source's link and the shard watch until the context ends (nil) or a
// source fails for good or a shard lost its data (the error, tagged).
func (s *Supervisor) syncAll(ctx context.Context) error {
	s.mu.Lock()
	srcs := append([]*source(nil), s.sources...)
	resume := s.tryResume
	s.tryResume = false
	s.mu.Unlock()
	for _, src := range srcs {
		src.reset()
	}
	fp := fingerprint(srcs)
	// The run ids come first: a shard restarting after this point is
	// caught by watchShards whatever the checkpoints said.
	var base []destination.ShardState
	if err := s.retry(ctx, srcs, "destination probe", func() (err error) {
		base, err = s.cfg.Destination.Probe(ctx)
		return err
	}); err != nil {
		return nil // canceled while the destination was unreachable
	}
	// What each source is (one server, a cluster, a replicaof proxy)
	// decides its links and their checkpoints: asked before anything else.
	// A source that does not answer within DiscoverGrace does not hold
	// the others back: they start (after a flush: resuming needs every
	// source's links), it joins with a full sync once it answers.
	// Dialers read the TLS files once per run.
	dials := make([]dialFunc, len(srcs))
	for i, src := range srcs {
		d, err := dialer(src.cfg)
		if err != nil {
			src.setError(err, true)
			return &SourceError{src.cfg.Name, fmt.Errorf("%w: %v", errFatalConfig, err)}
		}
		dials[i] = d
	}
	found, topos, err := s.discoverAll(ctx, srcs, dials, s.cfg.DiscoverGrace)
	if err != nil || ctx.Err() != nil {
		return err
	}
	var starts [][]replica.Position
	if wantResume(resume, found) {
		if err := s.retry(ctx, srcs, "destination checkpoints", func() (err error) {
			starts, err = s.resumePoints(ctx, srcs, fp)
			return err
		}); err != nil {
			return nil
		}
	}
	if starts == nil {
		if err := s.flush(ctx, srcs); err != nil {
			return nil
		}
	} else {
		s.mu.Lock()
		s.resumes++
		s.mu.Unlock()
	}
	if err := s.retry(ctx, srcs, "destination marker", func() error {
		return s.cfg.Destination.Mark(ctx, fp)
	}); err != nil {
		return nil
	}
	// Route by the destination's own command table, so commands newer than
	// this build (or from modules) are placed by their own key specs.
	opts := s.cfg.ApplyOptions
	if opts.Table == nil {
		if t, err := s.cfg.Destination.Commands(ctx); err == nil {
			opts.Table = t
		} else {
			s.cfg.Logger.Warn("using the built-in command table", "error", err)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.watchShards(gctx, base) })
	sem := make(chan struct{}, s.cfg.MaxParallelSnapshots)
	// start runs source i's links (and a cluster's topology watch) in g.
	start := func(i int, topo topology) {
		src, dial := srcs[i], dials[i]
		if topo != nil {
			g.Go(func() error { return s.watchTopology(gctx, src, dial, topo) })
		}
		for j, p := range src.getParts() {
			o := opts
			o.Checkpoint = apply.CheckpointOptions{Key: checkpointKey(i, src.cfg, p.id), Fingerprint: fp}
			o.Source = src.cfg.Name // labels the applier's metrics
			if o.Logger == nil {
				o.Logger = s.cfg.Logger // the applier's warnings and debug lines
			}
			o.SplitBlocks = src.getKind() == KindReplicaof
			if src.getKind() == KindReplicaof {
				// Another deployment's shards hold TTLs with its own
				// grace already: copied as they are (README, Chaining).
				o.TTLGrace = 0
			}
			var pos replica.Position
			if starts != nil {
				pos = starts[i][j]
			}
			g.Go(func() error { return s.runPart(gctx, src, p, dial, topo, sem, o, pos) })
			g.Go(func() error { s.sampleLag(gctx, src, p, dial); return nil })
		}
	}
	for i := range srcs {
		if found[i] {
			start(i, topos[i])
			continue
		}
		g.Go(func() error {
			topo, ok, err := s.discoverSource(gctx, srcs[i], dials[i])
			if ok {
				start(i, topo)
			}
			return err
		})
	}
	err = g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// discoverAll discovers every source, in parallel, each retrying until it
// answers or grace has passed. found[i] says whether source i was
// discovered; topos[i] is a cluster source's topology (nil otherwise). A
// fatal error (authentication) comes back as a *SourceError.
func (s *Supervisor) discoverAll(ctx context.Context, srcs []*source, dials []dialFunc, grace time.Duration) (found []bool, topos []topology, err error) {
	found, topos = make([]bool, len(srcs)), make([]topology, len(srcs))
	gctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	g, gctx := errgroup.WithContext(gctx)
	for i, src := range srcs {
		g.Go(func() error {
			topo, ok, err := s.discoverSource(gctx, src, dials[i])
			found[i], topos[i] = ok, topo
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	return found, topos, nil
}

// discoverSource asks src what it is until it answers (ok, its parts
// set; the topology of a cluster) or ctx ends (not ok). A fatal error is
// returned as a *SourceError.
func (s *Supervisor) discoverSource(ctx context.Context, src *source, dial dialFunc) (topology, bool, error) {
	for attempt := 0; ; attempt++ {
		dctx, cancel := context.WithTimeout(ctx, 2*discoverTimeout)
		kind, parts, err := discover(dctx, src.cfg, dial)
		cancel()
		if err == nil {
			src.setParts(kind, parts)
			if kind != KindReplicaof && src.cfg.Compression > 0 {
				s.cfg.Logger.Warn("compression applies to replicaof sources only: ignored",
					"source", src.cfg.Name, "kind", kind)
			}
			s.cfg.Logger.Info("source discovered", "source", src.cfg.Name, "kind", kind, "links", len(parts))
			if kind == KindCluster {
				return topologyOf(parts), true, nil
			}
			return nil, true, nil
		}
		if ctx.Err() != nil {
			return nil, false, nil
		}
		err = fmt.Errorf("discovery: %w", err)
		wait, stop := s.policy.discovery(err, attempt)
		if stop {
			src.setError(err, true)
			return nil, false, &SourceError{src.cfg.Name, err}
		}
		src.retry(err)
		s.cfg.Logger.Warn("source discovery failed", "source", src.cfg.Name, "error", err)
		if sleepCtx(ctx, wait) != nil {
			return nil, false, nil
		}
	}
}

// retry runs fn until it succeeds or ctx ends, with backoff, showing the
// error on every source meanwhile.
func (s *Supervisor) retry(ctx context.Context, srcs []*source, what string, fn func() error) error {
	for attempt := 0; ; attempt++ {
		err := fn()
		if err == nil {
			return nil
		}
		for _, src := range srcs {
			src.setError(fmt.Errorf("%s: %w", what, err), false)
		}
		s.cfg.Logger.Warn(what+" failed", "error", err)
		if err := sleepCtx(ctx, s.policy.delay(attempt)); err != nil {
			return err
		}
	}
}

// flush empties every destination shard, retrying while it is unreachable.
func (s *Supervisor) flush(ctx context.Context, srcs []*source) error {
	if err := s.retry(ctx, srcs, "destination flush", func() error {
		return apply.FlushAll(ctx, s.cfg.Destination)
	}); err != nil {
		return err
	}
	s.mu.Lock()
	s.flushes++
	s.mu.Unlock()
	s.cfg.Logger.Info("destination flushed")
	return nil
}
