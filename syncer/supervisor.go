package syncer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/internal/errclass"
	"github.com/replicaof/replicaof/syncer/apply"
)

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

	policy retryPolicy // every retry of a sync run (policy.go)

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

// New returns a supervisor for cfg. It starts nothing: call Run.
func New(cfg Config) (*Supervisor, error) {
	cfg = cfg.withDefaults()
	if cfg.Destination == nil {
		return nil, errors.New("syncer: no destination")
	}
	if len(cfg.Sources) > config.MaxSources {
		return nil, fmt.Errorf("syncer: %d sources: %w", len(cfg.Sources), config.ErrTooManySources)
	}
	s := &Supervisor{cfg: cfg, reqs: make(chan request), tryResume: !cfg.NoResume, policy: cfg.retryPolicy()}
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
				case errclass.Classify(err) == errclass.FullResync:
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
