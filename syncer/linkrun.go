package syncer

import (
	"context"
	"net"

	"github.com/replicaof/replicaof/internal/errclass"
	"github.com/replicaof/replicaof/syncer/apply"
	"github.com/replicaof/replicaof/syncer/replica"
)

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
		v := s.policy.link(linkFailure{
			err: err, attempt: attempt, progressed: h.progressed.Swap(false),
			loading: h.loading, streamed: h.streamed.Load(), drops: p.dropCount(),
		})
		h.loading = false
		if v.dropped {
			// Counted on the part: the full resync ends this run.
			p.snapshotDropped()
		}
		switch v.action {
		case linkHandOver:
			return v.err // not the source's fault: Run hands over
		case linkEnd:
			src.setError(v.err, v.class == errclass.Fatal)
			log.Error("source failed", "class", v.class.String(), "error", v.err)
			return &SourceError{src.cfg.Name, v.err}
		}
		pos = resumeAt(newPos, h.rewind) // resume by partial resync when it is not zero
		h.rewind = nil
		attempt = v.attempt
		src.retry(v.err)
		log.Warn("link lost, retrying", "error", v.err, "in", v.wait)
		if sleepCtx(ctx, v.wait) != nil {
			return nil
		}
		reconnect = true
	}
}
