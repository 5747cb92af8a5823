package verify

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/router"
)

// BenchmarkVerify compares one source with a 3-shard destination holding
// the same keys (80% 16-byte strings, 10% 5-field hashes, 10% 5-element
// lists; REPLICAOF_VERIFY_KEYS keys, default 200000), and reports verify's
// keys/s next to a plain SCAN of the source in the same run, with their
// ratio. Run with -benchtime 1x.
func BenchmarkVerify(b *testing.B) {
	n := 200000
	if s := os.Getenv("REPLICAOF_VERIFY_KEYS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("REPLICAOF_VERIFY_KEYS=%q: want a positive number", s)
		}
		n = v
	}
	ctx := harness.Context(b, 30*time.Minute)
	src := harness.StartRedis(b)
	servers := harness.StartServers(b, 3)
	shards := harness.Clients(servers, 0)
	var cfg Config
	cfg.Sources = []Endpoint{{Addr: src.Addr}}
	cfg.Destination = harness.Destination(b, harness.Addrs(servers)...)
	if err := fill(ctx, src.Client(), shards, n); err != nil {
		b.Fatal(err)
	}
	sc := src.Client()
	b.ResetTimer()
	var scanTime, verifyTime time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		var seen int
		var cursor uint64
		for {
			keys, next, err := sc.Scan(ctx, cursor, "", 1000).Result()
			if err != nil {
				b.Fatal(err)
			}
			seen += len(keys)
			if cursor = next; cursor == 0 {
				break
			}
		}
		scanTime += time.Since(start)
		if seen < n {
			b.Fatalf("SCAN saw %d keys, want %d", seen, n)
		}
		start = time.Now()
		rep, err := Run(ctx, cfg)
		verifyTime += time.Since(start)
		if err != nil || !rep.OK() || rep.Compared != int64(n) {
			b.Fatalf("verify: %v, %+v", err, rep)
		}
	}
	keys := float64(n) * float64(b.N)
	vps, sps := keys/verifyTime.Seconds(), keys/scanTime.Seconds()
	b.ReportMetric(vps, "verify-keys/s")
	b.ReportMetric(sps, "scan-keys/s")
	b.ReportMetric(vps/sps, "verify/scan")
	b.Logf("%d keys: verify %.0f keys/s, plain SCAN %.0f keys/s, ratio %.3f", n, vps, sps, vps/sps)
}

// fill writes the same n keys to src and, placed by slot, to shards.
func fill(ctx context.Context, src *redis.Client, shards []*redis.Client, n int) error {
	sm, err := router.EvenSlotMap(len(shards))
	if err != nil {
		return err
	}
	pipes := []redis.Pipeliner{src.Pipeline()}
	for _, s := range shards {
		pipes = append(pipes, s.Pipeline())
	}
	value := "0123456789abcdef"
	for i := 0; i < n; i++ {
		k := "key:" + strconv.Itoa(i)
		for _, p := range []redis.Pipeliner{pipes[0], pipes[1+sm.ShardOf([]byte(k))]} {
			switch i % 10 {
			case 3:
				p.HSet(ctx, k, "a", i, "b", value, "c", "x", "d", "y", "e", "z")
			case 7:
				p.RPush(ctx, k, "a", "b", value, i, "e")
			default:
				p.Set(ctx, k, value, 0)
			}
		}
		if i%10000 == 9999 || i == n-1 {
			for _, p := range pipes {
				if _, err := p.Exec(ctx); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
