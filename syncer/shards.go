package syncer

import (
	"context"
	"fmt"
	"time"

	"github.com/replicaof/replicaof/destination"
)

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
