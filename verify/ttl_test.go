package verify

import (
	"testing"
	"time"

	"github.com/replicaof/replicaof/internal/harness"
)

// TestTTLGrace: destination TTLs carry the syncer's grace; verify takes it
// off and compares the TTLs within TTLTolerance.
func TestTTLGrace(t *testing.T) {
	ctx := harness.Context(t, time.Minute)
	src, shard := harness.StartRedis(t), harness.StartRedis(t)
	s, d := src.Client(), shard.Client()
	const grace = 5 * time.Minute
	for _, k := range []string{"a", "b", "c"} {
		must(t, s.Set(ctx, k, "v", time.Hour).Err())
		must(t, d.Set(ctx, k, "v", time.Hour+grace).Err())
	}
	must(t, s.Set(ctx, "plain", "v", 0).Err())
	must(t, d.Set(ctx, "plain", "v", 0).Err())
	cfg := Config{RecheckDelay: -1, Sources: []Endpoint{{Name: "src", Addr: src.Addr}}, Destination: harness.Destination(t, shard.Addr)}

	cfg.TTLGrace = grace
	if rep := run(t, ctx, cfg); !rep.OK() || rep.Equal != 4 {
		t.Fatalf("with the grace: %+v", rep)
	}
	cfg.TTLGrace = 0
	if rep := run(t, ctx, cfg); rep.TTL != 3 {
		t.Fatalf("without the grace: want 3 TTL mismatches, got %+v", rep)
	}
	// A destination TTL shorter than the source's plus the grace.
	must(t, d.Expire(ctx, "b", time.Hour).Err())
	cfg.TTLGrace = grace
	rep := run(t, ctx, cfg)
	if rep.TTL != 1 || len(rep.Mismatches) != 1 || rep.Mismatches[0].Key != "b" {
		t.Fatalf("want b's TTL reported, got %+v", rep)
	}
}
