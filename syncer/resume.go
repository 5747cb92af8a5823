package syncer

import (
	"context"
	"fmt"
	"slices"

	"github.com/cespare/xxhash/v2"

	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/syncer/apply"
	"github.com/replicaof/replicaof/syncer/replica"
)

// The resume decision: a sync run resumes every link from the checkpoints
// the destination shards hold (written by apply/checkpoint.go for this
// source list) or flushes and fully syncs everything. wantResume and
// resumeFrom decide, as pure functions (resume_test.go); the rest reads.

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
	cps, err := apply.Checkpoints(ctx, s.cfg.Destination, checkpointKey(i, src.cfg, p.id))
	if err != nil {
		return replica.Position{}, err
	}
	pos, newest, missing := resumeFrom(cps, fp)
	if missing >= 0 {
		s.cfg.Logger.Info("no checkpoint to resume from: full sync",
			"source", src.cfg.Name, "link", p.id, "shard", missing)
		return replica.Position{}, nil
	}
	s.cfg.Logger.Info("resuming from checkpoints", "source", src.cfg.Name, "link", p.id,
		"replid", pos.ReplID, "offset", pos.Offset, "newest", newest)
	return pos, nil
}

// wantResume decides whether a sync run reads the checkpoints to resume
// from them: only when it may (the first run of a process without
// NoResume, a takeover of the lease) and every source answered discovery
// (resuming needs every source's links; one that joins later fully syncs,
// so the others must start from a flushed destination too).
func wantResume(may bool, found []bool) bool {
	return may && !slices.Contains(found, false)
}

// resumeFrom decides where one link resumes from the checkpoints the
// destination shards hold for it (cps[shard], nil where a shard holds
// none): from the lowest offset any shard holds, with the replid of the
// newest (newest is its offset), as each shard skips what it holds
// already (apply/checkpoint.go). When a shard holds no checkpoint of this
// source list (fingerprint fp), the link cannot resume and missing is that
// shard (the first one); otherwise missing is -1. No shard at all resumes
// nothing either (missing 0).
func resumeFrom(cps []*apply.Checkpoint, fp string) (pos replica.Position, newest int64, missing int) {
	if len(cps) == 0 {
		return replica.Position{}, 0, 0
	}
	var lo, hi *apply.Checkpoint
	for shard, cp := range cps {
		if cp == nil || cp.Fingerprint != fp {
			return replica.Position{}, 0, shard
		}
		if lo == nil || cp.Offset < lo.Offset {
			lo = cp
		}
		if hi == nil || cp.Offset > hi.Offset {
			hi = cp
		}
	}
	return replica.Position{ReplID: hi.ReplID, Offset: lo.Offset}, hi.Offset, -1
}

// resumeAt is where a link reconnects after Run returned pos: pos, or,
// when a destination slot went back below it (a cluster master lost
// acknowledged writes in a failover; apply.RewindError), that older
// offset (rewind), so the writes are replayed by a partial resync from
// there, or a full resync when the source's backlog no longer holds it.
// A zero pos (a full sync is due) stays zero.
func resumeAt(pos replica.Position, rewind *replica.Position) replica.Position {
	if rewind == nil || pos.IsZero() || rewind.Offset >= pos.Offset {
		return pos
	}
	replID := rewind.ReplID
	if replID == "" {
		replID = pos.ReplID
	}
	return replica.Position{ReplID: replID, Offset: rewind.Offset}
}

// fingerprintOf is the fingerprint of a source list.
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
