package apply

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replicaof/replicaof/integration"
)

// BenchmarkLoadSnapshot loads an RDB of ~200k mixed keys into 1 and 3
// shards (RESTORE fast path and decoded) and reports the time relative to
// a native replica (REPLICAOF) syncing the same data in the same run.
// The native figure includes the source's fork and RDB generation, so
// save_x_native adds the source's SAVE time to ours for a like-for-like
// view. Run with -benchtime 1x; it takes well under a minute.
func BenchmarkLoadSnapshot(b *testing.B) {
	const keys = 200_000
	ctx := context.Background()
	src := integration.StartRedis(b, "--repl-diskless-sync-delay", "0")
	if err := integration.LoadDataset(ctx, src.Client(), "b:", 1, keys); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := src.Client().Save(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	save := time.Since(start)
	path := filepath.Join(src.Dir, "dump.rdb")
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	want := src.Client().DBSize(ctx).Val()

	// Reference: a native replica's full sync, timed until it is loaded.
	rep := integration.StartRedis(b)
	start = time.Now()
	if err := rep.Client().Do(ctx, "REPLICAOF", "127.0.0.1", src.Port).Err(); err != nil {
		b.Fatal(err)
	}
	integration.WaitFor(b, time.Minute, "native replica in sync", func() bool {
		info := rep.Client().Info(ctx, "replication").Val()
		return strings.Contains(info, "master_link_status:up") && rep.Client().DBSize(ctx).Val() == want
	})
	native := time.Since(start)
	b.Logf("%d keys, RDB %d bytes: source SAVE %v, native replica full sync %v", want, fi.Size(), save, native)

	for _, shards := range []int{1, 3} {
		c := startCluster(b, shards)
		for _, force := range []bool{false, true} {
			name := map[bool]string{false: "restore", true: "decode"}[force]
			b.Run(name+"/shards="+string(rune('0'+shards)), func(b *testing.B) {
				b.SetBytes(fi.Size())
				b.ReportAllocs()
				var total time.Duration
				for range b.N {
					b.StopTimer()
					c.flush(b, ctx)
					f, err := os.Open(path)
					if err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					start := time.Now()
					a := New(c.dest, Options{ForceDecode: force})
					if _, err := a.LoadSnapshot(ctx, f); err != nil {
						b.Fatal(err)
					}
					total += time.Since(start)
					f.Close()
				}
				var got int64
				for _, cl := range c.clients(0) {
					got += cl.DBSize(ctx).Val()
				}
				if got != want {
					b.Fatalf("destination holds %d keys, want %d", got, want)
				}
				per := total / time.Duration(b.N)
				b.ReportMetric(float64(per)/float64(native), "x_native")
				b.ReportMetric(float64(per+save)/float64(native), "save_x_native")
				b.Logf("%s into %d shard(s): %v per load, %.2fx native, %.2fx with the source's SAVE",
					name, shards, per, float64(per)/float64(native), float64(per+save)/float64(native))
			})
		}
	}
}
