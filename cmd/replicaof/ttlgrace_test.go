package main

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/internal/redisproc"
)

// TestServeTTLGrace: serve wires replica_of.ttl_grace to the syncer (the
// shard holds the source's TTL plus the grace) and to the proxy (which
// answers the source's TTL), default and explicit.
func TestServeTTLGrace(t *testing.T) {
	for _, tc := range []struct {
		yaml  string
		grace time.Duration
	}{
		{"", config.DefaultTTLGrace},
		{"ttl_grace: 90s", 90 * time.Second},
		{"ttl_grace: 0", 0},
	} {
		t.Run(fmt.Sprint(tc.grace), func(t *testing.T) {
			ctx := harness.Context(t, time.Minute)
			src, shard := harness.StartRedis(t), harness.StartRedis(t)
			sc := src.Client()
			if err := sc.Set(ctx, "snap", "v", time.Hour).Err(); err != nil {
				t.Fatal(err)
			}
			proxyPort, _ := redisproc.FreePort()
			adminPort, _ := redisproc.FreePort()
			dir := t.TempDir()
			path := filepath.Join(dir, "replicaof.yaml")
			yaml := fmt.Sprintf(`proxy: { listen: "127.0.0.1:%d" }
admin: { listen: "127.0.0.1:%d" }
destination: { shards: ["redis://%s"] }
replica_of:
  sources: ["src: redis://%s"]
  %s
state_dir: %q
`, proxyPort, adminPort, shard.Addr, src.Addr, tc.yaml, filepath.Join(dir, "state"))
			writeConfig(t, path, yaml)
			startServe(t, ctx, path)
			if err := sc.Set(ctx, "streamed", "v", time.Hour).Err(); err != nil {
				t.Fatal(err)
			}
			dc := shard.Client()
			harness.WaitFor(t, 30*time.Second, "both keys on the shard", func() bool {
				return dc.Exists(ctx, "snap", "streamed").Val() == 2
			})
			pc := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", proxyPort)})
			defer pc.Close()
			for _, k := range []string{"snap", "streamed"} {
				want := sc.PTTL(ctx, k).Val()
				if d := dc.PTTL(ctx, k).Val() - tc.grace - want; d.Abs() > time.Second {
					t.Errorf("%s: shard PTTL %v, source %v, grace %v", k, dc.PTTL(ctx, k).Val(), want, tc.grace)
				}
				if d := pc.PTTL(ctx, k).Val() - want; d.Abs() > time.Second {
					t.Errorf("%s: proxy PTTL %v, source %v", k, pc.PTTL(ctx, k).Val(), want)
				}
			}
		})
	}
}
