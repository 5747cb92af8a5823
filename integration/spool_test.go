package integration

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/config"
	destpkg "github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/syncer"
)

// A source whose replica output buffer is too small for a slow
// destination: without a spool the drop loop is detected and reported with
// the setting to change; with the spool the sync completes.
func TestFaultOutputBufferLoopAndSpool(t *testing.T) {
	for _, spool := range []bool{false, true} {
		t.Run(fmt.Sprintf("spool=%v", spool), func(t *testing.T) {
			ctx := harness.Context(t, 3*time.Minute)
			src := harness.StartRedis(t, "--repl-diskless-sync-delay", "0",
				"--client-output-buffer-limit", "replica 1mb 512kb 2")
			rng := rand.New(rand.NewSource(2))
			pipe := src.Client().Pipeline()
			for i := 0; i < 2500; i++ {
				pipe.Set(ctx, fmt.Sprint("big:", i), harness.RandString(rng, 4096), 0)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
			// A slow destination: every chunk to the shard waits.
			shard := harness.StartRedis(t)
			fp := harness.NewFaultProxy(t, shard.Addr)
			fp.SetLatency(15 * time.Millisecond)
			dest, err := destpkg.New(destpkg.Config{Shards: []destpkg.Shard{{Addr: fp.Addr}}})
			if err != nil {
				t.Fatal(err)
			}
			defer dest.Close()
			cfg := syncer.Config{
				Sources: []config.Source{source(t, "src", src, "")}, Destination: dest,
				Logger:   harness.Logger(t, slog.LevelInfo),
				RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
			}
			if spool {
				cfg.SpoolDir = t.TempDir()
			}
			sup, err := syncer.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); _ = sup.Run(rctx) }()
			defer func() { cancel(); <-done }()

			// Writes keep flowing into the source while its snapshot loads.
			wctx, stopWrites := context.WithCancel(ctx)
			writes := make(chan int, 1)
			wc := src.Client()
			go func() {
				n := 0
				for wctx.Err() == nil {
					if wc.Incr(wctx, "counter").Err() == nil {
						n++
					}
					wc.Set(wctx, fmt.Sprint("w:", n%100), strings.Repeat("y", 2048), 0)
				}
				writes <- n
			}()
			if !spool {
				st := waitState(t, sup, syncer.StateStopped, 2*time.Minute)
				stopWrites()
				<-writes
				if e := st.Sources[0].LastError; !strings.Contains(e, "client-output-buffer-limit") {
					t.Fatalf("last_error %q does not name the setting to change", e)
				}
				return
			}
			waitState(t, sup, syncer.StateSynced, 2*time.Minute)
			stopWrites()
			n := <-writes
			fp.SetLatency(0)
			waitEqual(t, ctx, map[int][]*redis.Client{0: {src.Client()}}, map[int][]*redis.Client{0: {shard.Client()}}, time.Minute)
			if v, _ := shard.Client().Get(ctx, "counter").Int(); v != n {
				t.Fatalf("counter %d, want %d", v, n)
			}
		})
	}
}
