package syncer

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/replicaof/replicaof/destination"
)

// watchShards checks every ShardCheckInterval that no destination shard
// restarted (run_id) or lost its data (marker key) since base was taken;
// either ends the sync run with ErrNeedFullResync. A shard it cannot
// reach is checked again next time (the links retry meanwhile).
//
// On a cluster destination a group's master changes with a failover, and
// with it the run_id: only a run_id that changed at the same address (a
// master that restarted before any failover) counts; after a failover
// the new master's run_id is the one watched. A slot that lost writes in
// a failover is caught by the appliers' checkpoints (apply/cluster.go).
func (s *Supervisor) watchShards(ctx context.Context, base []destination.ShardState) error {
	base = slices.Clone(base)
	addrs := make([]string, len(base))
	for i := range addrs {
		addrs[i] = s.cfg.Destination.Addr(i)
	}
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
		d := s.cfg.Destination
		if d.Cluster() {
			if err := clusterRestarted(d.Addr, base, st, addrs); err != nil {
				return err
			}
			continue
		}
		for i := range st {
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

// clusterRestarted checks a probe of a cluster destination against base
// (run ids) and addrs (the groups' masters when base was taken), both
// updated after a failover: ErrNeedFullResync when a master restarted in
// place, or lost the marker key.
func clusterRestarted(addrOf func(int) string, base, st []destination.ShardState, addrs []string) error {
	if len(st) != len(base) {
		return fmt.Errorf("%w: the destination cluster has %d groups, had %d", ErrNeedFullResync, len(st), len(base))
	}
	for i := range st {
		addr := addrOf(i)
		switch {
		case addr != addrs[i]:
			// A failover: watch the new master from now on.
			addrs[i], base[i] = addr, st[i]
		case st[i].RunID != base[i].RunID:
			return fmt.Errorf("%w: destination shard %d master %s restarted (run_id %s, was %s)",
				ErrNeedFullResync, i, addr, st[i].RunID, base[i].RunID)
		case !st[i].Marked:
			return fmt.Errorf("%w: destination shard %d (%s) lost its data (marker key gone)",
				ErrNeedFullResync, i, addr)
		}
	}
	return nil
}
