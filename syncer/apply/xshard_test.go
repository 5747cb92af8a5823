package apply

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/internal/errclass"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/router"
	"github.com/replicaof/replicaof/syncer/replica"
)

// xsNames places names on shards: on(p, i) is a key starting with p that
// lives on shard i.
type xsNames struct {
	m *router.SlotMap
}

func (n xsNames) on(prefix string, shard int) string {
	return keysOnShards(n.m, prefix)[shard]
}

// crossShardScript is what a Redis 7 master propagates for the
// cross-shard commands of issue 13: every command below spans shards.
func crossShardScript(m *router.SlotMap) []string {
	n := xsNames{m}
	k := func(p string, s int) string { return n.on(p, s) }
	return []string{
		"SET " + k("a", 0) + " hello", "SET " + k("t", 0) + " v PXAT 4102444800000",
		"RENAME " + k("a", 0) + " " + k("a", 1),
		"RENAME " + k("t", 0) + " " + k("t", 2),
		"COPY " + k("a", 1) + " " + k("c", 0),
		"COPY " + k("t", 2) + " " + k("c", 1) + " REPLACE",
		"SADD " + k("s", 0) + " x y z", "SADD " + k("s", 1) + " y q", "SADD " + k("s", 2) + " z",
		"SMOVE " + k("s", 0) + " " + k("s", 1) + " x",
		"SUNIONSTORE " + k("u", 2) + " " + k("s", 0) + " " + k("s", 1) + " " + k("s", 2),
		"SET " + k("i", 0) + " old",
		"SINTERSTORE " + k("i", 0) + " " + k("s", 1) + " " + k("s", 2), // empty: deletes
		"SINTERSTORE " + k("i", 1) + " " + k("s", 0) + " " + k("s", 1),
		"RPUSH " + k("q", 0) + " 1 2 3 4 5",
		"LMOVE " + k("q", 0) + " " + k("q", 1) + " LEFT RIGHT",
		"RPOPLPUSH " + k("q", 0) + " " + k("q", 2),
		"LMOVE " + k("q", 1) + " " + k("q", 2) + " LEFT LEFT", // empties q1: deleted
		"ZADD " + k("z", 0) + " 1 a 2 b", "ZADD " + k("z", 1) + " 3 c 4 a",
		"ZUNIONSTORE " + k("zu", 2) + " 2 " + k("z", 0) + " " + k("z", 1) + " WEIGHTS 1 2",
		"ZRANGESTORE " + k("zr", 1) + " " + k("z", 0) + " 0 -1",
		"PFADD " + k("h", 0) + " a b c", "PFADD " + k("h", 1) + " c d",
		"PFMERGE " + k("hm", 2) + " " + k("h", 0) + " " + k("h", 1),
		"SET " + k("b", 0) + " abc", "SET " + k("b", 1) + " xyz",
		"BITOP OR " + k("bo", 2) + " " + k("b", 0) + " " + k("b", 1),
		"MSETNX " + k("m", 0) + " 1 " + k("m", 1) + " 2 " + k("m", 2) + " 3",
		"MULTI", "INCR " + k("n", 0), "INCR " + k("n", 1), "INCR " + k("n", 2), "EXEC",
		// Blocks holding a cross-shard command are emulated whole.
		"MULTI", "INCR " + k("n", 0), "LMOVE " + k("q", 2) + " " + k("q", 0) + " RIGHT LEFT",
		"SADD " + k("s", 2) + " w", "INCR " + k("n", 0), "EXEC",
		"MULTI", "SELECT 3", "SET " + k("d", 0) + " x", "RENAME " + k("d", 0) + " " + k("d", 1),
		"SELECT 0", "RPOPLPUSH " + k("q", 0) + " " + k("q", 1), "EXEC",
		"SET after-blocks 1",
		"SELECT 3", "RENAME " + k("d", 1) + " " + k("d", 2), "SELECT 0",
		"SMOVE " + k("s", 1) + " " + k("s", 0) + " q",
		"SDIFFSTORE " + k("sd", 2) + " " + k("s", 0) + " " + k("s", 1),
		"ZINTERSTORE " + k("zi", 0) + " 2 " + k("z", 0) + " " + k("z", 1) + " AGGREGATE MAX",
		"ZDIFFSTORE " + k("zd", 1) + " 2 " + k("z", 0) + " " + k("z", 1),
		"GEOADD " + k("g", 0) + " 13.361389 38.115556 Palermo 15.087269 37.502669 Catania",
		"GEOSEARCHSTORE " + k("gs", 2) + " " + k("g", 0) + " FROMLONLAT 15 37 BYRADIUS 200 km ASC",
		"RENAMENX " + k("a", 1) + " " + k("a", 2),
	}
}

// runReference runs lines on one connection of a plain server.
func runReference(t testing.TB, ctx context.Context, r *harness.Redis, lines []replica.Command) {
	t.Helper()
	conn := r.Client().Conn()
	defer conn.Close()
	for _, c := range lines {
		args := make([]any, len(c.Args))
		for i, a := range c.Args {
			args[i] = string(a)
		}
		if err := conn.Do(ctx, args...).Err(); err != nil && err != redis.Nil {
			t.Fatalf("reference %q: %v", args, err)
		}
	}
}

// requireSame compares the destination with the reference in dbs 0 and 3
// and checks that no internal staging key is left.
func requireSame(t testing.TB, ctx context.Context, ref *harness.Redis, c *cluster) {
	t.Helper()
	for _, db := range []int{0, 3} {
		d, err := harness.Compare(ctx, []*redis.Client{ref.ClientDB(db)}, c.clients(db), harness.CompareOptions{Skip: internalKey})
		if err != nil {
			t.Fatal(err)
		}
		if !d.Empty() {
			t.Fatalf("db %d: %s", db, d)
		}
		for _, s := range c.servers {
			keys, err := s.ClientDB(db).Keys(ctx, xsPrefix+"*").Result()
			if err != nil || len(keys) > 0 {
				t.Fatalf("staging keys left in db %d: %v %v", db, keys, err)
			}
		}
	}
}

func TestCrossShardEmulate(t *testing.T) {
	ctx := harness.Context(t, time.Minute)
	c := startCluster(t, 3)
	ref := harness.StartRedis(t)
	script := cmds(crossShardScript(c.dest.Map())...)
	runReference(t, ctx, ref, script)
	for _, ckpt := range []bool{false, true} {
		t.Run(fmt.Sprintf("checkpoints=%v", ckpt), func(t *testing.T) {
			c.flush(t, ctx)
			mark(t, ctx, c)
			var opts Options
			if ckpt {
				opts.Checkpoint = CheckpointOptions{Key: CheckpointPrefix + "s", Fingerprint: "fp"}
			}
			a := New(c.dest, opts)
			if ckpt {
				fullSyncEmpty(t, ctx, a, 0)
			}
			// In small batches, so jobs meet plans on both sides.
			for i := 0; i < len(script); i += 7 {
				if err := a.Apply(ctx, script[i:min(i+7, len(script))]); err != nil {
					t.Fatal(err)
				}
			}
			requireSame(t, ctx, ref, c)
			// RENAME×3, COPY×2, SMOVE×2, SUNIONSTORE, SINTERSTORE×2,
			// LMOVE×2, RPOPLPUSH, ZUNIONSTORE, ZRANGESTORE, PFMERGE, BITOP,
			// 2 blocks, SDIFFSTORE, ZINTERSTORE, ZDIFFSTORE, GEOSEARCHSTORE
			// and RENAMENX: 24 jobs (MSETNX splits, the first block too).
			if got := a.Stats().CrossShard; got != 24 {
				t.Errorf("Stats.CrossShard = %d, want 24", got)
			}
			if got := a.Stats().Offset; got != int64(len(script)) {
				t.Errorf("offset %d, want %d", got, len(script))
			}
		})
	}
}

// TestCrossShardCrashBetweenSteps aborts the emulation after each of its
// steps in turn (a crash there), then lets a fresh applier resume from
// the checkpoints with the whole stream redelivered: the destination must
// end equal to the reference every time.
func TestCrossShardCrashBetweenSteps(t *testing.T) {
	ctx := harness.Context(t, 3*time.Minute)
	c := startCluster(t, 3)
	ref := harness.StartRedis(t)
	n := xsNames{c.dest.Map()}
	k := func(p string, s int) string { return n.on(p, s) }
	// Non-idempotent jobs: redoing one from its inputs, or twice, shows.
	script := cmds(
		"RPUSH "+k("q", 0)+" 1 2 3 4 5 6", "SADD "+k("s", 1)+" a b c", "SET "+k("n", 2)+" 10",
		"RPOPLPUSH "+k("q", 0)+" "+k("q", 1),
		"MULTI", "INCR "+k("n", 2), "LMOVE "+k("q", 1)+" "+k("q", 0)+" LEFT RIGHT",
		"SMOVE "+k("s", 1)+" "+k("s", 2)+" a", "INCR "+k("n", 0), "EXEC",
		"SUNIONSTORE "+k("s", 1)+" "+k("s", 1)+" "+k("s", 2)+" "+k("s", 0),
		// Staged on shard 2, written back to 0 then 1: redone from its
		// inputs after a crash between the two, q1 would get another
		// element.
		"MULTI", "INCR "+k("n", 2), "RPOPLPUSH "+k("q", 0)+" "+k("q", 1), "EXEC",
		"RENAME "+k("q", 0)+" "+k("q", 2),
		"LMOVE "+k("q", 2)+" "+k("q", 1)+" RIGHT LEFT",
	)
	runReference(t, ctx, ref, script)
	opts := Options{Checkpoint: CheckpointOptions{Key: CheckpointPrefix + "s", Fingerprint: "fp"}}
	steps := map[string]int{}
	for crashAt := 1; ; crashAt++ {
		c.flush(t, ctx)
		mark(t, ctx, c)
		a := New(c.dest, opts)
		fullSyncEmpty(t, ctx, a, 0)
		calls, at := 0, ""
		crash := errors.New("crash")
		a.xs.hook = func(step string) error {
			if calls++; calls == crashAt {
				at = step
				return crash
			}
			return nil
		}
		// Two batches, so a crash can follow a completed Apply too.
		err := a.Apply(ctx, script[:4])
		if err == nil {
			err = a.Apply(ctx, script[4:])
		}
		if err == nil {
			if crashAt == 1 {
				t.Fatal("the hook never ran")
			}
			break // every step had its crash
		}
		if !errors.Is(err, crash) {
			t.Fatalf("crash %d: %v", crashAt, err)
		}
		steps[strings.Fields(at)[0]]++
		b := New(c.dest, opts)
		if err := b.Continue(ctx, "replid0", 0); err != nil {
			t.Fatalf("crash %d after %s: Continue: %v", crashAt, at, err)
		}
		if err := b.Apply(ctx, script); err != nil {
			t.Fatalf("crash %d after %s: redelivery: %v", crashAt, at, err)
		}
		t.Logf("crash %d after %q: resumed", crashAt, at)
		requireSame(t, ctx, ref, c)
	}
	for _, s := range []string{"gather", "stage", "writeback", "final"} {
		if steps[s] == 0 {
			t.Errorf("no crash after step %q (crashes %v)", s, steps)
		}
	}
}

// TestCrossShardRefused: commands that cannot run on renamed keys stop
// with a clear cross-slot error; what came before them is applied.
func TestCrossShardRefused(t *testing.T) {
	ctx := harness.Context(t, time.Minute)
	c := startCluster(t, 3)
	c.flush(t, ctx)
	n := xsNames{c.dest.Map()}
	k := func(p string, s int) string { return n.on(p, s) }
	for _, tc := range []struct {
		name, why string
		script    []string
	}{
		{"sort-by", "key specs", []string{"SORT " + k("l", 0) + " BY w_* STORE " + k("l", 1)}},
		{"keyless-in-block", "outside its key list", []string{"MULTI", "FLUSHDB", "RENAME " + k("r", 0) + " " + k("r", 1), "EXEC"}},
		{"copy-db", "DB", []string{"COPY " + k("r", 0) + " " + k("r", 1) + " DB 2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := New(c.dest, Options{})
			err := a.Apply(ctx, cmds(append([]string{"SET before-" + tc.name + " 1"}, tc.script...)...))
			var ee *EmulateError
			if !errors.As(err, &ee) || !errors.Is(err, router.ErrCrossShard) || !errclass.IsFatal(err) || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("err %v, want an EmulateError saying %q", err, tc.why)
			}
			t.Log(err)
			expectKeys(t, ctx, c, map[string]bool{"before-" + tc.name: true})
		})
	}
}
