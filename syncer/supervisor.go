package syncer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/syncer/apply"
	"github.com/replicaof/replicaof/syncer/replica"
	"github.com/replicaof/replicaof/tlsutil"
)

// Config configures a Supervisor. Zero fields take the documented defaults.
type Config struct {
	// Sources are the databases to replicate, at most config.MaxSources.
	Sources []config.Source
	// Destination receives every source's data; the supervisor flushes it
	// at each start and restart, and does not close it.
	Destination *destination.Destination
	Logger      *slog.Logger // default: discard

	// MaxParallelSnapshots bounds the snapshots loading at once (default 4).
	MaxParallelSnapshots int
	// RetryMin and RetryMax bound the backoff between reconnects of one
	// source (default 100ms doubling to 10s).
	RetryMin, RetryMax time.Duration
	// SampleInterval is how often each source's replication offset is
	// sampled to measure lag (default 250ms).
	SampleInterval time.Duration
	// ListeningPort is announced to sources by REPLCONF listening-port.
	ListeningPort int
	// Link tunes every replication link; Addr, credentials and Dial are set
	// per source.
	Link replica.Config
	// ApplyOptions tune every source's applier.
	ApplyOptions apply.Options
	// ShardCheckInterval is how often every destination shard's run_id and
	// marker key are checked while sync runs, to catch a shard that
	// restarted empty (default 1s).
	ShardCheckInterval time.Duration
	// NoResume makes the first start flush and fully sync like every
	// later one, ignoring the checkpoints a previous process left.
	NoResume bool
	// SpoolDir, when set, lets every link spill what the destination has
	// not consumed yet to disk (bounded by Link.SpoolMaxBytes) instead of
	// stopping to read, so a slow destination never makes a source drop
	// the link. serve sets it to state_dir/spool.
	SpoolDir string
	// DiscoverGrace is how long a sync run waits for every source to
	// answer discovery before starting those that did (default 5s); the
	// others join when they answer, with a full sync.
	DiscoverGrace time.Duration
	// TopologyInterval is how often a Redis Cluster source's slot map is
	// compared with the one its sync run started with (default 2s).
	TopologyInterval time.Duration
	// MaxSnapshotDrops is how many snapshots in a row a source may drop
	// (its client-output-buffer-limit replica too small) before sync stops
	// with an error saying so (default 3).
	MaxSnapshotDrops int
	// Lease, when set, makes this instance sync only while it holds the
	// destination's lease (lease.go): several instances can then run over
	// one destination, one active and the others standbys. nil: this
	// instance is always active (a single instance).
	Lease *LeaseConfig
	// OnSourcesAdopted is called when this instance took the lease over
	// and adopted the source list the previous holder wrote (e.g. to save
	// it to the config file); nil does nothing.
	OnSourcesAdopted func([]config.Source)
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.MaxParallelSnapshots <= 0 {
		c.MaxParallelSnapshots = 4
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 100 * time.Millisecond
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 10 * time.Second
	}
	if c.MaxSnapshotDrops <= 0 {
		c.MaxSnapshotDrops = 3
	}
	if c.SampleInterval <= 0 {
		c.SampleInterval = 250 * time.Millisecond
	}
	if c.ShardCheckInterval <= 0 {
		c.ShardCheckInterval = time.Second
	}
	if c.DiscoverGrace <= 0 {
		c.DiscoverGrace = 5 * time.Second
	}
	if c.TopologyInterval <= 0 {
		c.TopologyInterval = 2 * time.Second
	}
	return c
}

// Supervisor runs the sync of every source into the destination and owns
// its lifecycle, as docs/semantics.md describes: start flushes the
// destination once and fully syncs every source, unless every shard holds
// a checkpoint of every source for the same source list (a previous
// process's work): then each source resumes by partial resync from its
// lowest checkpoint, and each shard skips what it already holds (exactly
// once; apply/checkpoint.go).
// A destination shard that restarts (new run_id) or loses its marker key
// while sync runs forces a flush and full resync of all sources, as does a
// source that cannot continue. A user stop leaves the data and stops; restart
// and any change to the set of sources flush and fully sync everything
// again; an error that stops sync stops it for every source and stays on the
// source that caused it; connection errors retry, resuming by partial
// resync where the source allows.
//
// Run drives it; Stop, Restart, SetSources and Status may be called from
// any goroutine while Run runs.
type Supervisor struct {
	cfg  Config
	reqs chan request

	mu      sync.Mutex
	sources []*source
	nextUID int
	stopped bool
	flushes int
	resumes int
	// tryResume: the next sync run may resume from checkpoints; only the
	// first run of a process does, and every takeover of the lease.
	tryResume bool

	lease *lease // nil without Config.Lease
	took  int    // lease acquisitions so far
}

// StandbyError answers a control call on a standby instance: only the
// active one (Active is its admin address) syncs.
type StandbyError struct{ Active string }

func (e *StandbyError) Error() string {
	if e.Active == "" {
		return "this instance is a standby: no instance holds the destination's lease right now"
	}
	return "this instance is a standby: the active instance is " + e.Active
}

type requestKind int

const (
	reqStop requestKind = iota
	reqRestart
	reqSetSources
)

type request struct {
	kind    requestKind
	sources []config.Source
	done    chan error
}

// ErrNotRunning is returned by control calls when Run is not running.
var ErrNotRunning = errors.New("syncer: supervisor is not running")

// New returns a supervisor for cfg. It starts nothing: call Run.
func New(cfg Config) (*Supervisor, error) {
	cfg = cfg.withDefaults()
	if cfg.Destination == nil {
		return nil, errors.New("syncer: no destination")
	}
	if len(cfg.Sources) > config.MaxSources {
		return nil, fmt.Errorf("syncer: %d sources: %w", len(cfg.Sources), config.ErrTooManySources)
	}
	s := &Supervisor{cfg: cfg, reqs: make(chan request), tryResume: !cfg.NoResume}
	s.setSources(cfg.Sources)
	if cfg.Lease != nil {
		if cfg.Lease.ID == "" || strings.ContainsAny(cfg.Lease.ID, " \n") || strings.ContainsAny(cfg.Lease.Addr, " \n") {
			return nil, errors.New("syncer: the lease needs an instance id and an admin address without spaces")
		}
		s.lease = newLease(*cfg.Lease, cfg.Destination, func() string {
			return encodeSources(cfg.Lease.ID, s.Sources())
		})
		cfg.Destination.SetFence(s.lease)
	}
	return s, nil
}

func (s *Supervisor) setSources(srcs []config.Source) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sources = s.sources[:0]
	for _, c := range srcs {
		s.nextUID++
		s.sources = append(s.sources, newSource(s.nextUID, c))
	}
}

// Sources returns the current source list.
func (s *Supervisor) Sources() []config.Source {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]config.Source, len(s.sources))
	for i, src := range s.sources {
		out[i] = src.cfg
	}
	return out
}

// Status reports every source and the aggregate.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	srcs := append([]*source(nil), s.sources...)
	s.mu.Unlock()
	st := Status{Sources: make([]SourceStatus, 0, len(srcs))}
	now := time.Now()
	for _, src := range srcs {
		st.Sources = append(st.Sources, src.status(now))
	}
	st.Status = aggregate(st.Sources)
	st.Role, st.Active = s.role()
	return st
}

// role is this instance's role and the active instance's admin address
// (this one's when active, "" when unknown).
func (s *Supervisor) role() (role, active string) {
	if s.lease == nil {
		return RoleActive, ""
	}
	return s.lease.role()
}

// Flushes counts destination flushes since New.
func (s *Supervisor) Flushes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushes
}

// Resumes counts sync runs that resumed from checkpoints instead of
// flushing.
func (s *Supervisor) Resumes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resumes
}

// Stop stops sync for every source; the destination keeps its data.
func (s *Supervisor) Stop(ctx context.Context) error { return s.ask(ctx, request{kind: reqStop}) }

// Restart flushes the destination and fully syncs every source again.
func (s *Supervisor) Restart(ctx context.Context) error {
	return s.ask(ctx, request{kind: reqRestart})
}

// SetSources replaces the source list, which restarts sync of all of them
// from scratch (flush + full sync).
func (s *Supervisor) SetSources(ctx context.Context, srcs []config.Source) error {
	if len(srcs) > config.MaxSources {
		return fmt.Errorf("syncer: %d sources: %w", len(srcs), config.ErrTooManySources)
	}
	return s.ask(ctx, request{kind: reqSetSources, sources: srcs})
}

func (s *Supervisor) ask(ctx context.Context, r request) error {
	r.done = make(chan error, 1)
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run syncs until ctx is canceled, handling control requests. It returns
// nil on cancellation; every goroutine it started has ended by then. With
// a lease, it syncs only while this instance holds it, and answers control
// requests with a *StandbyError otherwise.
func (s *Supervisor) Run(ctx context.Context) error {
	var leaseEv <-chan struct{}
	if s.lease != nil {
		logf := func(msg string, args ...any) { s.cfg.Logger.Warn(msg, args...) }
		// The first attempt before anything else: a single instance is
		// active before it answers its first control request.
		s.lease.step(ctx, logf)
		// Not canceled with ctx: the lease is released only once sync
		// stopped (below).
		lctx, stopLease := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.lease.loop(lctx, logf)
		}()
		// Sync stops before the lease is released.
		defer func() { stopLease(); <-done }()
		leaseEv = s.lease.changed
	}
	wasActive := false
	for {
		var (
			runCancel context.CancelFunc = func() {}
			runDone   chan error
		)
		active, holder := s.role()
		if active == RoleActive && !wasActive && s.lease != nil {
			s.tookOver(ctx)
		}
		wasActive = active == RoleActive
		s.mu.Lock()
		stopped := s.stopped
		s.mu.Unlock()
		if !stopped && wasActive {
			var runCtx context.Context
			runCtx, runCancel = context.WithCancel(ctx)
			runDone = make(chan error, 1)
			go func() { runDone <- s.syncAll(runCtx) }()
		}
		wait := func() {
			runCancel()
			if runDone != nil {
				<-runDone
				runDone = nil
			}
		}
	events:
		for {
			select {
			case <-ctx.Done():
				wait()
				return nil
			case <-leaseEv:
				if r, _ := s.role(); (r == RoleActive) == wasActive {
					continue // nothing changed
				}
				wait()
				if wasActive {
					s.cfg.Logger.Warn("lost the destination's lease: standby")
				}
				break events
			case r := <-s.reqs:
				if !wasActive {
					_, holder = s.role()
					r.done <- &StandbyError{Active: holder}
					continue
				}
				wait()
				s.handle(r)
				break events
			case err := <-runDone:
				runDone = nil
				runCancel()
				switch {
				case errors.Is(err, apply.ErrFenced):
					// The lease lapsed (clock), or another instance holds a
					// newer epoch (destination): not ours any more.
					s.cfg.Logger.Warn("fenced: standby", "error", err)
					s.lease.lose()
				case Classify(err) == FullResync:
					s.cfg.Logger.Info("full resync of all sources", "reason", err)
					s.mu.Lock()
					srcs := s.sources
					s.mu.Unlock()
					for _, src := range srcs {
						src.setError(err, false)
					}
				default:
					s.cfg.Logger.Error("sync stopped", "error", err)
					s.markStopped()
				}
				break events
			}
		}
	}
}

// tookOver runs when this instance became active: it resumes from the
// checkpoints, with the source list the previous holder wrote when that
// was another instance.
func (s *Supervisor) tookOver(ctx context.Context) {
	s.mu.Lock()
	s.took++
	first := s.took == 1
	if !first {
		s.tryResume = true
	}
	s.mu.Unlock()
	s.cfg.Logger.Info("took the destination's lease: active")
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	writer, srcs, ok, err := readSources(rctx, s.cfg.Destination)
	cancel()
	switch {
	case err != nil:
		s.cfg.Logger.Warn("reading the source list from the destination failed; keeping this instance's", "error", err)
	case ok && writer != s.cfg.Lease.ID:
		if fingerprintOf(srcs) != fingerprintOf(s.Sources()) || !sameSourceList(srcs, s.Sources()) {
			s.cfg.Logger.Info("adopting the source list of the previous active instance", "sources", len(srcs))
			s.setSources(srcs)
			if s.cfg.OnSourcesAdopted != nil {
				s.cfg.OnSourcesAdopted(srcs)
			}
		}
	}
	// A stop on the previous holder does not carry over: the new active
	// syncs. The first run of the process keeps NoResume; a takeover
	// always resumes (tryResume set above).
	s.mu.Lock()
	s.stopped = false
	for _, src := range s.sources {
		src.clearError()
	}
	s.mu.Unlock()
}

func fingerprintOf(srcs []config.Source) string {
	ss := make([]*source, len(srcs))
	for i, c := range srcs {
		ss[i] = &source{cfg: c}
	}
	return fingerprint(ss)
}

// sameSourceList compares everything a source's definition holds.
func sameSourceList(a, b []config.Source) bool {
	ea, erra := config.MarshalSources(a)
	eb, errb := config.MarshalSources(b)
	return erra == nil && errb == nil && string(ea) == string(eb)
}

func (s *Supervisor) handle(r request) {
	switch r.kind {
	case reqStop:
		s.cfg.Logger.Info("sync stopped by user")
		s.markStopped()
	case reqRestart:
		s.cfg.Logger.Info("sync restarted by user")
		s.mu.Lock()
		s.stopped = false
		for _, src := range s.sources {
			src.clearError()
		}
		s.mu.Unlock()
	case reqSetSources:
		s.cfg.Logger.Info("sources changed: restarting sync of all sources", "sources", len(r.sources))
		s.setSources(r.sources)
		s.mu.Lock()
		s.stopped = false
		s.mu.Unlock()
	}
	r.done <- nil
}

func (s *Supervisor) markStopped() {
	s.mu.Lock()
	s.stopped = true
	srcs := s.sources
	s.mu.Unlock()
	for _, src := range srcs {
		src.setStopped()
	}
}

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
	allFound := !slices.Contains(found, false)
	var starts [][]replica.Position
	if resume && allFound {
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
		if Classify(err) == Fatal {
			src.setError(err, true)
			return nil, false, &SourceError{src.cfg.Name, err}
		}
		src.retry(err)
		s.cfg.Logger.Warn("source discovery failed", "source", src.cfg.Name, "error", err)
		if sleepCtx(ctx, s.backoff(attempt)) != nil {
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
		if err := sleepCtx(ctx, s.backoff(attempt)); err != nil {
			return err
		}
	}
}

// fingerprint identifies the source list (names and addresses, in
// order): checkpoints written for another list never resume.
func fingerprint(srcs []*source) string {
	h := xxhash.New()
	for _, src := range srcs {
		_, _ = h.WriteString(src.cfg.Name)
		_, _ = h.WriteString("\x00")
		_, _ = h.WriteString(src.cfg.Addr())
		_, _ = h.WriteString("\x00")
	}
	return fmt.Sprintf("%016x", h.Sum64())
}

// checkpointKey is the destination key holding the checkpoint of the
// link part of source i ("" for a source with one link).
func checkpointKey(i int, src config.Source, part string) string {
	h := xxhash.New()
	_, _ = fmt.Fprintf(h, "%d\x00%s\x00%s", i, src.Name, src.Addr())
	if part != "" {
		_, _ = fmt.Fprintf(h, "\x00%s", part)
	}
	return fmt.Sprintf("%s%016x", apply.CheckpointPrefix, h.Sum64())
}

// resumePoints reads every source's checkpoints. It returns where each
// source resumes (its lowest checkpoint, with the replid of its newest),
// or nil when any source lacks a checkpoint of this source list on any
// shard: then everything starts over.
func (s *Supervisor) resumePoints(ctx context.Context, srcs []*source, fp string) ([][]replica.Position, error) {
	out := make([][]replica.Position, len(srcs))
	for i, src := range srcs {
		for _, p := range src.getParts() {
			pos, err := s.resumePoint(ctx, i, src, p, fp)
			if err != nil || pos.IsZero() {
				return nil, err
			}
			out[i] = append(out[i], pos)
		}
	}
	return out, nil
}

// resumePoint reads one link's checkpoints: the zero Position when a shard
// has none of this source list.
func (s *Supervisor) resumePoint(ctx context.Context, i int, src *source, p *part, fp string) (replica.Position, error) {
	{
		cps, err := apply.Checkpoints(ctx, s.cfg.Destination, checkpointKey(i, src.cfg, p.id))
		if err != nil {
			return replica.Position{}, err
		}
		var lo, hi *apply.Checkpoint
		for shard, cp := range cps {
			if cp == nil || cp.Fingerprint != fp {
				s.cfg.Logger.Info("no checkpoint to resume from: full sync",
					"source", src.cfg.Name, "link", p.id, "shard", shard)
				return replica.Position{}, nil
			}
			if lo == nil || cp.Offset < lo.Offset {
				lo = cp
			}
			if hi == nil || cp.Offset > hi.Offset {
				hi = cp
			}
		}
		s.cfg.Logger.Info("resuming from checkpoints", "source", src.cfg.Name, "link", p.id,
			"replid", hi.ReplID, "offset", lo.Offset, "newest", hi.Offset)
		return replica.Position{ReplID: hi.ReplID, Offset: lo.Offset}, nil
	}
}

// watchShards checks every ShardCheckInterval that no destination shard
// restarted (run_id) or lost its data (marker key) since base was taken;
// either ends the sync run with ErrNeedFullResync. A shard it cannot
// reach is checked again next time (the links retry meanwhile).
func (s *Supervisor) watchShards(ctx context.Context, base []destination.ShardState) error {
	t := time.NewTicker(s.cfg.ShardCheckInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, max(2*s.cfg.ShardCheckInterval, 2*time.Second))
		st, err := s.cfg.Destination.Probe(pctx)
		cancel()
		if err != nil {
			if !failing && ctx.Err() == nil {
				s.cfg.Logger.Warn("destination check failed", "error", err)
			}
			failing = true
			continue
		}
		failing = false
		for i := range st {
			d := s.cfg.Destination
			switch {
			case st[i].RunID != base[i].RunID:
				return fmt.Errorf("%w: destination shard %d (%s) restarted (run_id %s, was %s)",
					ErrNeedFullResync, i, d.Addr(i), st[i].RunID, base[i].RunID)
			case !st[i].Marked:
				return fmt.Errorf("%w: destination shard %d (%s) lost its data (marker key gone)",
					ErrNeedFullResync, i, d.Addr(i))
			}
		}
	}
}

// flush empties every destination shard, retrying while it is unreachable.
func (s *Supervisor) flush(ctx context.Context, srcs []*source) error {
	for attempt := 0; ; attempt++ {
		err := apply.FlushAll(ctx, s.cfg.Destination)
		if err == nil {
			s.mu.Lock()
			s.flushes++
			s.mu.Unlock()
			s.cfg.Logger.Info("destination flushed")
			return nil
		}
		for _, src := range srcs {
			src.setError(fmt.Errorf("destination flush: %w", err), false)
		}
		s.cfg.Logger.Warn("destination flush failed", "error", err)
		if err := sleepCtx(ctx, s.backoff(attempt)); err != nil {
			return err
		}
	}
}

func (s *Supervisor) backoff(attempt int) time.Duration {
	d := s.cfg.RetryMin
	for i := 0; i < attempt && d < s.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, s.cfg.RetryMax)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SourceError ties an error that ended a sync run to its source.
type SourceError struct {
	Source string
	Err    error
}

func (e *SourceError) Error() string { return e.Source + ": " + e.Err.Error() }
func (e *SourceError) Unwrap() error { return e.Err }

// runPart keeps one link of a source running, retrying connection errors
// with backoff, until ctx ends (nil) or the error is not retryable. A
// cluster part asks the cluster which node serves its slots before every
// reconnect (topo is what the run started with).
func (s *Supervisor) runPart(ctx context.Context, src *source, p *part, dial dialFunc, topo topology,
	sem chan struct{}, opts apply.Options, start replica.Position) error {
	log := s.cfg.Logger.With("source", src.cfg.Name)
	if p.id != "" {
		log = log.With("link", p.id)
	}
	lcfg := s.cfg.Link
	lcfg.Addr = p.getAddr()
	lcfg.Username = src.cfg.User
	lcfg.Password = string(src.cfg.Password)
	// The address is read at each dial: a cluster master can move.
	lcfg.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return dial(ctx, network, p.getAddr())
	}
	lcfg.Handshake = p.handshake
	lcfg.Gzip = p.gzip
	lcfg.ListeningPort = s.cfg.ListeningPort
	lcfg.Logger = log
	if s.cfg.SpoolDir != "" {
		lcfg.SpoolDir = s.cfg.SpoolDir
	}
	h := &handler{src: src, part: p, sem: sem, applier: apply.New(s.cfg.Destination, opts)}
	link := replica.New(lcfg, h)
	p.setLink(link, h.applier)

	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() { defer sampler.Done(); s.sampleLag(sampleCtx, src, p, dial) }()
	defer func() { stopSampling(); sampler.Wait() }() // cancel first, then wait

	pos := start // zero: full sync; else resume from the checkpoints
	reconnect := false
	for attempt := 0; ; attempt++ {
		if pos.IsZero() {
			// A full sync is coming: wait for a snapshot slot first, so
			// the source is not left streaming an RDB nobody reads.
			select {
			case sem <- struct{}{}:
				h.holding.Store(true)
			case <-ctx.Done():
				return nil
			}
		}
		if topo != nil && reconnect {
			if err := s.resolve(ctx, src, p, dial, topo); err != nil {
				h.release()
				src.setError(err, false)
				return &SourceError{src.cfg.Name, err}
			}
		}
		log.Info("connecting", "addr", p.getAddr(), "resume", !pos.IsZero(), "offset", pos.Offset)
		newPos, err := link.Run(ctx, pos)
		h.release()
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, apply.ErrFenced) {
			return err // not the source's fault: Run hands over
		}
		class := Classify(err)
		if class == FullResync && !h.streamed.Load() {
			// Another full sync without a single stream command applied
			// since the last one: the source drops us during snapshots
			// (the drop can also show as a lost link right after the
			// payload, then a FULLRESYNC answer to the resume). Counted on
			// the part, as the full resync ends this run.
			if n := p.snapshotDropped(); n >= s.cfg.MaxSnapshotDrops {
				err = fmt.Errorf("%w (%d snapshots in a row): its client-output-buffer-limit for replicas is probably "+
					"too small for the writes it buffers while a snapshot loads; raise it on the source, e.g. "+
					"CONFIG SET client-output-buffer-limit \"replica 0 0 0\" (spool: %v): %w",
					ErrSnapshotLoop, n, s.cfg.SpoolDir != "", err)
				class = Fatal
			}
		}
		if h.loading && class == Retry {
			// The destination failed under a snapshot: it holds part of
			// it, which only a flush and full resync of all can clean.
			class, err = FullResync, fmt.Errorf("%w: snapshot interrupted: %w", ErrNeedFullResync, err)
		}
		h.loading = false
		if class != Retry {
			src.setError(err, class == Fatal)
			log.Error("source failed", "class", class.String(), "error", err)
			return &SourceError{src.cfg.Name, err}
		}
		pos = newPos // resume by partial resync when it is not zero
		if h.progressed.Swap(false) {
			attempt = 0
		}
		src.retry(err)
		d := s.backoff(attempt)
		log.Warn("link lost, retrying", "error", err, "in", d)
		if sleepCtx(ctx, d) != nil {
			return nil
		}
		reconnect = true
	}
}

var errFatalConfig = errors.New("syncer: source configuration")

func dialer(src config.Source) (func(ctx context.Context, network, addr string) (net.Conn, error), error) {
	d := &net.Dialer{KeepAlive: 30 * time.Second}
	if !src.TLS {
		return d.DialContext, nil
	}
	tcfg, err := tlsutil.ClientConfig(src.Host, src.TLSFiles.ClientOptions())
	if err != nil {
		return nil, err
	}
	return (&tlsutil.Dialer{Config: tcfg, Net: d}).DialContext, nil
}

// sampleLag polls the master_repl_offset of a link's source (for a
// replicaof proxy, of its shard) to measure lag, and keeps the sampled
// offset for status.
func (s *Supervisor) sampleLag(ctx context.Context, src *source, p *part, dial dialFunc) {
	var onConnect func(context.Context, *redis.Conn) error
	if p.shard >= 0 {
		onConnect = func(ctx context.Context, cn *redis.Conn) error {
			return cn.Do(ctx, "REPLCONF", "rof-shard", p.shard).Err()
		}
	}
	c := sourceClient(src.cfg, p.getAddr, dial, 2*time.Second, onConnect)
	defer c.Close()
	t := time.NewTicker(s.cfg.SampleInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		info, err := c.Info(ctx, "replication").Result()
		if err != nil {
			continue
		}
		if off, ok := infoField(info, "master_repl_offset"); ok {
			p.sample(off, time.Now())
		}
	}
}

func infoField(info, name string) (int64, bool) {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// handler connects one link to its applier and to the source's status.
type handler struct {
	src     *source
	part    *part
	applier *apply.Applier
	sem     chan struct{}
	holding atomic.Bool // holds a snapshot slot

	loading    bool        // inside FullSync; read by runSource after Run returns
	streamed   atomic.Bool // a stream command was applied since the last snapshot began
	progressed atomic.Bool // something was applied since the last retry
}

func (h *handler) release() {
	if h.holding.Swap(false) {
		<-h.sem
	}
}

func (h *handler) FullSync(ctx context.Context, replID string, offset, size int64, rdb io.Reader) error {
	h.loading = true
	h.streamed.Store(false)
	h.part.beginSnapshot(size)
	err := h.applier.FullSync(ctx, replID, offset, size, &countingReader{r: rdb, n: &h.part.rdbDone})
	h.release()
	if err != nil {
		return err
	}
	h.loading = false
	h.progressed.Store(true)
	h.part.snapshotDone(replID, offset)
	return nil
}

// ErrSnapshotLoop means a source kept dropping the link during snapshots.
var ErrSnapshotLoop = errors.New("syncer: the source keeps dropping the link during the snapshot")

func (h *handler) Continue(ctx context.Context, replID string, offset int64) error {
	if err := h.applier.Continue(ctx, replID, offset); err != nil {
		return err
	}
	h.part.continued(replID, offset)
	return nil
}

func (h *handler) Apply(ctx context.Context, cmds []replica.Command) error {
	if err := h.applier.Apply(ctx, cmds); err != nil {
		return err
	}
	if len(cmds) > 0 {
		h.progressed.Store(true)
		h.streamed.Store(true)
		h.part.applied(cmds[len(cmds)-1].Offset, time.Now())
	}
	return nil
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
