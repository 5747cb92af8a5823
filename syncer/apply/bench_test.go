package apply

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/syncer/replica"
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
	src := harness.StartRedis(b, "--repl-diskless-sync-delay", "0")
	if err := harness.LoadDataset(ctx, src.Client(), "b:", 1, keys); err != nil {
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
	rep := harness.StartRedis(b)
	nativeCPU0 := serverCPU(b, ctx, rep)
	start = time.Now()
	if err := rep.Client().Do(ctx, "REPLICAOF", "127.0.0.1", src.Port).Err(); err != nil {
		b.Fatal(err)
	}
	harness.WaitFor(b, time.Minute, "native replica in sync", func() bool {
		info := rep.Client().Info(ctx, "replication").Val()
		return strings.Contains(info, "master_link_status:up") && rep.Client().DBSize(ctx).Val() == want
	})
	native := time.Since(start)
	nativeCPU := serverCPU(b, ctx, rep) - nativeCPU0
	b.Logf("%d keys, RDB %d bytes: source SAVE %v, native replica full sync %v", want, fi.Size(), save, native)

	for _, shards := range []int{1, 3} {
		c := startCluster(b, shards)
		for _, force := range []bool{false, true} {
			name := map[bool]string{false: "restore", true: "decode"}[force]
			b.Run(name+"/shards="+string(rune('0'+shards)), func(b *testing.B) {
				b.SetBytes(fi.Size())
				b.ReportAllocs()
				var total time.Duration
				var cpu float64
				for range b.N {
					b.StopTimer()
					c.flush(b, ctx)
					f, err := os.Open(path)
					if err != nil {
						b.Fatal(err)
					}
					cpu0 := 0.0
					for _, s := range c.servers {
						cpu0 += serverCPU(b, ctx, s)
					}
					b.StartTimer()
					start := time.Now()
					a := New(c.dest, Options{ForceDecode: force})
					if _, err := a.LoadSnapshot(ctx, f); err != nil {
						b.Fatal(err)
					}
					total += time.Since(start)
					b.StopTimer()
					for _, s := range c.servers {
						cpu += serverCPU(b, ctx, s)
					}
					cpu -= cpu0
					b.StartTimer()
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
				// CPU time, unlike wall time, says how hard the shards
				// work for a key whatever else runs on the machine.
				b.ReportMetric(cpu/float64(b.N)/nativeCPU, "shard_cpu_x_native")
				b.Logf("%s into %d shard(s): %v per load, %.2fx native, %.2fx with the source's SAVE",
					name, shards, per, float64(per)/float64(native), float64(per+save)/float64(native))
			})
		}
	}
}

// BenchmarkApplyStream applies the same stream of SETs, INCRs and MULTI
// blocks into 3 shards without and with checkpoints, in batches of 64
// commands (a busy link) and of 4 (a trickle: the worst case, one
// transaction per shard per few commands), and reports the checkpoint
// run's time as a ratio of the plain one measured in the same run.
func BenchmarkApplyStream(b *testing.B) {
	const n = 50_000
	ctx := context.Background()
	c := startCluster(b, 3)
	script := make([]replica.Command, 0, n)
	for i := 0; len(script) < n; i++ {
		off := func() int64 { return int64(len(script) + 1) }
		switch i % 8 {
		case 7:
			tag := fmt.Sprintf("{t%d}", i%100)
			for _, l := range [][]string{{"MULTI"}, {"INCR", tag + "c"}, {"SET", tag + "v", "x"}, {"EXEC"}} {
				script = append(script, replica.Command{Args: bytesArgs(l...), Offset: off()})
			}
		case 3:
			script = append(script, replica.Command{Args: bytesArgs("INCR", fmt.Sprintf("ctr:%d", i%1000)), Offset: off()})
		default:
			script = append(script, replica.Command{Args: bytesArgs("SET", fmt.Sprintf("key:%d", i%50000), "value-0123456789"), Offset: off()})
		}
	}
	run := func(b *testing.B, per int, checkpoint, fenced bool) time.Duration {
		if fenced {
			// An HA instance: every transaction behind the epoch guard.
			c.dest.SetFence(&testFence{epoch: 1})
			defer c.dest.SetFence(nil)
		}
		var total time.Duration
		for range b.N {
			b.StopTimer()
			c.flush(b, ctx)
			if err := c.dest.Mark(ctx, "m"); err != nil {
				b.Fatal(err)
			}
			opts := Options{}
			if checkpoint {
				opts.Checkpoint = CheckpointOptions{Key: CheckpointPrefix + "bench", Fingerprint: "fp"}
			}
			a := New(c.dest, opts)
			if checkpoint {
				fullSyncEmpty(b, ctx, a, 0)
			}
			b.StartTimer()
			start := time.Now()
			for i := 0; i < len(script); i += per {
				if err := a.Apply(ctx, script[i:min(i+per, len(script))]); err != nil {
					b.Fatal(err)
				}
			}
			total += time.Since(start)
		}
		each := total / time.Duration(b.N)
		b.ReportMetric(float64(len(script))/each.Seconds(), "cmds/s")
		return each
	}
	for _, per := range []int{64, 4} {
		var plain, ckpt time.Duration
		b.Run(fmt.Sprintf("batch=%d/plain", per), func(b *testing.B) { plain = run(b, per, false, false) })
		b.Run(fmt.Sprintf("batch=%d/checkpoint", per), func(b *testing.B) {
			ckpt = run(b, per, true, false)
			if plain > 0 {
				b.ReportMetric(float64(ckpt)/float64(plain), "x_plain")
				b.Logf("checkpoints: %v vs %v plain (%.2fx)", ckpt, plain, float64(ckpt)/float64(plain))
			}
		})
		b.Run(fmt.Sprintf("batch=%d/checkpoint+fence", per), func(b *testing.B) {
			d := run(b, per, true, true)
			if ckpt > 0 {
				b.ReportMetric(float64(d)/float64(ckpt), "x_checkpoint")
				b.Logf("fenced checkpoints (HA): %v vs %v unfenced (%.2fx)", d, ckpt, float64(d)/float64(ckpt))
			}
		})
	}
}

func bytesArgs(s ...string) [][]byte {
	out := make([][]byte, len(s))
	for i, a := range s {
		out[i] = []byte(a)
	}
	return out
}

// serverCPU is a redis-server's used_cpu_user + used_cpu_sys, in seconds.
func serverCPU(b *testing.B, ctx context.Context, r *harness.Redis) float64 {
	info, err := r.Client().Info(ctx, "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var sum float64
	for _, line := range strings.Split(info, "\n") {
		for _, f := range []string{"used_cpu_user:", "used_cpu_sys:"} {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), f); ok {
				x, err := strconv.ParseFloat(v, 64)
				if err != nil {
					b.Fatal(err)
				}
				sum += x
			}
		}
	}
	return sum
}

// BenchmarkCrossShard applies a stream of RPOPLPUSH and SUNIONSTORE into
// 3 shards with checkpoints, once with every command's keys on one shard
// (hash-tagged: a plain command) and once with them on different shards
// (emulated), and reports the emulated run's time per command as a ratio
// of the plain one's, measured in the same run.
func BenchmarkCrossShard(b *testing.B) {
	const n = 2000
	ctx := context.Background()
	c := startCluster(b, 3)
	m := c.dest.Map()
	script := func(cross bool) []replica.Command {
		var q, s [3]string
		for i := range 3 {
			if cross {
				q[i], s[i] = keysOnShards(m, "q")[i], keysOnShards(m, "s")[i]
			} else {
				q[i], s[i] = fmt.Sprintf("{t}q%d", i), fmt.Sprintf("{t}s%d", i)
			}
		}
		out := []replica.Command{
			{Args: bytesArgs("RPUSH", q[0], "a", "b", "c", "d"), Offset: 1},
			{Args: bytesArgs("SADD", s[1], "x", "y"), Offset: 2},
		}
		for i := 0; len(out) < n; i++ {
			var args [][]byte
			if i%2 == 0 {
				args = bytesArgs("RPOPLPUSH", q[i%3], q[(i+1)%3])
			} else {
				args = bytesArgs("SUNIONSTORE", s[i%3], s[(i+1)%3], s[(i+2)%3])
			}
			out = append(out, replica.Command{Args: args, Offset: int64(len(out) + 1)})
		}
		return out
	}
	run := func(b *testing.B, cmds []replica.Command) time.Duration {
		var total time.Duration
		for range b.N {
			b.StopTimer()
			c.flush(b, ctx)
			if err := c.dest.Mark(ctx, "m"); err != nil {
				b.Fatal(err)
			}
			a := New(c.dest, Options{Checkpoint: CheckpointOptions{Key: CheckpointPrefix + "bench", Fingerprint: "fp"}})
			fullSyncEmpty(b, ctx, a, 0)
			b.StartTimer()
			start := time.Now()
			for i := 0; i < len(cmds); i += 64 {
				if err := a.Apply(ctx, cmds[i:min(i+64, len(cmds))]); err != nil {
					b.Fatal(err)
				}
			}
			total += time.Since(start)
		}
		each := total / time.Duration(b.N)
		b.ReportMetric(float64(len(cmds))/each.Seconds(), "cmds/s")
		return each
	}
	var plain time.Duration
	b.Run("one-shard", func(b *testing.B) { plain = run(b, script(false)) })
	b.Run("emulated", func(b *testing.B) {
		d := run(b, script(true))
		if plain > 0 {
			b.ReportMetric(float64(d)/float64(plain), "x_one_shard")
			b.Logf("emulated: %v vs %v on one shard (%.1fx)", d, plain, float64(d)/float64(plain))
		}
	})
}
