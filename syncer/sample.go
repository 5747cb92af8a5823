package syncer

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// sampleLag polls the master_repl_offset of a link's source (for a
// replicaof proxy, of its shard) to measure lag, and keeps the sampled
// offset for status. It runs in the sync run's errgroup beside the link
// (run.go) and returns when the run's context ends.
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
