package integration

import (
	"context"
	"fmt"
	"math/rand"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/router"
	"github.com/replicaof/replicaof/syncer"
	"github.com/replicaof/replicaof/syncer/apply"
)

// shardKeys names keys by the destination shard they land on.
type shardKeys struct {
	m     *router.SlotMap
	mu    sync.Mutex
	cache map[string]string
}

func newShardKeys(m *router.SlotMap) *shardKeys {
	return &shardKeys{m: m, cache: map[string]string{}}
}

// on returns a key starting with prefix that lives on shard.
func (k *shardKeys) on(prefix string, shard int) string {
	id := prefix + "/" + strconv.Itoa(shard)
	k.mu.Lock()
	defer k.mu.Unlock()
	if key, ok := k.cache[id]; ok {
		return key
	}
	for i := 0; ; i++ {
		key := prefix + ":" + strconv.Itoa(i)
		if k.m.ShardOf([]byte(key)) == shard {
			k.cache[id] = key
			return key
		}
	}
}

// crossShardRound writes one round of the commands of issue 13 into a
// plain source, every one with keys on two or three destination shards:
// RENAME, COPY, SMOVE, SUNIONSTORE, SINTERSTORE, LMOVE, RPOPLPUSH,
// ZUNIONSTORE, ZRANGESTORE, PFMERGE, BITOP, MSETNX, a MULTI/EXEC over
// three shards holding a cross-shard LMOVE, and EVALs touching three
// keys on three shards (effects: a MULTI/EXEC block in the stream).
func crossShardRound(ctx context.Context, c *redis.Client, k *shardKeys, r int) error {
	rs := strconv.Itoa(r)
	for _, args := range [][]any{
		{"SET", k.on("ren", 0), "v" + rs, "PX", 600000},
		{"RENAME", k.on("ren", 0), k.on("ren", 1)},
		{"COPY", k.on("ren", 1), k.on("cp", 2), "REPLACE"},
		{"SADD", k.on("s", 0), "a" + rs, "b" + rs}, {"SADD", k.on("s", 1), "b" + rs, "c" + rs},
		{"SMOVE", k.on("s", 0), k.on("s", 2), "a" + rs},
		{"SUNIONSTORE", k.on("su", 1), k.on("s", 0), k.on("s", 1), k.on("s", 2)},
		{"SINTERSTORE", k.on("si", 2), k.on("s", 0), k.on("s", 1)},
		{"RPUSH", k.on("q", 0), "j" + rs, "k" + rs},
		{"LMOVE", k.on("q", 0), k.on("q", 1), "LEFT", "RIGHT"},
		{"RPOPLPUSH", k.on("q", 1), k.on("q", 2)},
		{"ZADD", k.on("z", 0), r, "m" + rs}, {"ZADD", k.on("z", 1), 2 * r, "m" + rs, 1, "n"},
		{"ZUNIONSTORE", k.on("zu", 2), 2, k.on("z", 0), k.on("z", 1), "WEIGHTS", 1, 3},
		{"ZRANGESTORE", k.on("zr", 0), k.on("z", 1), 0, 4},
		{"PFADD", k.on("h", 0), "e" + rs}, {"PFADD", k.on("h", 1), "f" + rs},
		{"PFMERGE", k.on("hm", 2), k.on("h", 0), k.on("h", 1)},
		{"SET", k.on("b", 0), "x" + rs}, {"SET", k.on("b", 1), "yy"},
		{"BITOP", "XOR", k.on("bo", 2), k.on("b", 0), k.on("b", 1)},
		{"MSETNX", k.on("mx"+rs, 0), rs, k.on("mx"+rs, 1), rs, k.on("mx"+rs, 2), rs},
	} {
		if err := c.Do(ctx, args...).Err(); err != nil && err != redis.Nil {
			return fmt.Errorf("%v: %w", args, err)
		}
	}
	_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, k.on("n", 0))
		p.Incr(ctx, k.on("n", 1))
		p.LMove(ctx, k.on("q", 2), k.on("q", 0), "RIGHT", "LEFT")
		p.Incr(ctx, k.on("n", 2))
		return nil
	})
	if err != nil {
		return fmt.Errorf("MULTI: %w", err)
	}
	const three = "redis.call('INCR', KEYS[1]) redis.call('RPUSH', KEYS[2], ARGV[1]) redis.call('SADD', KEYS[3], ARGV[1]) return 1"
	if err := c.Eval(ctx, three, []string{k.on("e", 0), k.on("e", 1), k.on("e", 2)}, rs).Err(); err != nil {
		return fmt.Errorf("EVAL: %w", err)
	}
	const moving = "redis.call('RPOPLPUSH', KEYS[1], KEYS[2]) redis.call('INCR', KEYS[3]) return 1"
	if err := c.Eval(ctx, moving, []string{k.on("q", 0), k.on("q", 2), k.on("ec", 1)}).Err(); err != nil {
		return fmt.Errorf("EVAL: %w", err)
	}
	return nil
}

// emulatedLogLine is the applier's debug line for each emulated command.
const emulatedLogLine = "cross-shard command emulated"

// stagingKeys counts the emulation's internal keys left on the shards.
func stagingKeys(t *testing.T, ctx context.Context, d *destination) int {
	t.Helper()
	n := 0
	for _, s := range d.shards {
		keys, err := s.Client().Keys(ctx, "__replicaof:x:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		n += len(keys)
	}
	return n
}

// TestCrossShardSync: 60 rounds of cross-shard commands from a plain
// source into 3 shards are carried out; sync stays synced and the
// destination equals the source.
func TestCrossShardSync(t *testing.T) {
	ctx := harness.Context(t, 2*time.Minute)
	src := harness.StartRedis(t, "--repl-diskless-sync-delay", "0")
	d := startDestination(t, 3)
	k := newShardKeys(d.dest.Map())
	sup := runSupervisor(t, d, source(t, "src", src, ""))
	waitState(t, sup, syncer.StateSynced, time.Minute)
	for r := range 60 {
		if err := crossShardRound(ctx, src.Client(), k, r); err != nil {
			t.Fatal(err)
		}
	}
	waitEqual(t, ctx, map[int][]*redis.Client{0: {src.Client()}}, map[int][]*redis.Client{0: d.clients(0)}, time.Minute)
	st := sup.Status()
	s := st.Sources[0]
	if st.Status != syncer.StateSynced || s.LastError != "" {
		t.Fatalf("status %s, source %+v", st.Status, s)
	}
	// 11 emulated commands a round, and the blocks (MULTI, second EVAL)
	// that hold a cross-shard command; MSETNX and the other blocks split.
	if s.CrossShardEmulated < 60*12 {
		t.Errorf("cross_shard_emulated %d, want at least %d", s.CrossShardEmulated, 60*12)
	}
	if n := stagingKeys(t, ctx, d); n != 0 {
		t.Errorf("%d staging keys left", n)
	}
	t.Logf("%d commands emulated", s.CrossShardEmulated)
}

// TestCrossShardStop: with cross_shard: stop the first cross-shard
// command stops sync with the cross-slot error.
func TestCrossShardStop(t *testing.T) {
	ctx := harness.Context(t, time.Minute)
	src := harness.StartRedis(t, "--repl-diskless-sync-delay", "0")
	d := startDestination(t, 3)
	k := newShardKeys(d.dest.Map())
	sup := runSupervisorWith(t, d, apply.Options{CrossShard: apply.CrossShardStop}, source(t, "src", src, ""))
	waitState(t, sup, syncer.StateSynced, time.Minute)
	c := src.Client()
	if err := c.Set(ctx, k.on("a", 0), "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename(ctx, k.on("a", 0), k.on("a", 1)).Err(); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, sup, syncer.StateStopped, 30*time.Second)
	if e := st.Sources[0].LastError; !strings.Contains(e, "cross-slot") || !strings.Contains(strings.ToUpper(e), "RENAME") {
		t.Fatalf("last_error %q, want the cross-slot error naming RENAME", e)
	}
}

// TestCrossShardExactAcrossCrashes: the cross-shard rounds run while
// replicaof (a separate process) is killed with SIGKILL several times,
// mid-emulation as often as not; every restart resumes from the
// checkpoints and the destination ends equal to the source, counters
// and list rotations included.
func TestCrossShardExactAcrossCrashes(t *testing.T) {
	ctx := harness.Context(t, 4*time.Minute)
	rng := rand.New(rand.NewSource(20261203))
	src := harness.StartRedis(t, "--repl-backlog-size", "64mb", "--repl-diskless-sync-delay", "0")
	d := startDestination(t, 3)
	k := newShardKeys(d.dest.Map())
	var shardAddrs []string
	for _, s := range d.shards {
		shardAddrs = append(shardAddrs, s.Addr)
	}
	sources, shards := "src="+src.Addr, strings.Join(shardAddrs, ",")

	var rounds atomic.Int64
	var failed atomic.Bool
	stop := make(chan struct{})
	werr := make(chan error, 1)
	wrng := rand.New(rand.NewSource(rng.Int63()))
	go func() {
		for r := 0; ; r++ {
			select {
			case <-stop:
				werr <- nil
				return
			default:
			}
			if err := crossShardRound(ctx, src.Client(), k, r); err != nil {
				failed.Store(true)
				werr <- err
				return
			}
			rounds.Add(1)
			time.Sleep(time.Duration(wrng.Intn(3)) * time.Millisecond)
		}
	}()
	stopWorkload := sync.OnceValue(func() error { close(stop); return <-werr })
	t.Cleanup(func() { _ = stopWorkload() })

	runs := newChildRuns(t, sources, shards)
	t.Setenv(childDebug, "1") // the children log every emulated command
	for i := 0; i < 8; i++ {
		c := runs.start()
		harness.WaitFor(t, time.Minute, "link streaming", func() bool {
			l := c.log.String()
			return strings.Contains(l, "replica: snapshot loaded") || strings.Contains(l, "replica: partial resync")
		})
		target := rounds.Load() + int64(5+rng.Intn(10))
		harness.WaitFor(t, time.Minute, "workload progress", func() bool { return rounds.Load() >= target || failed.Load() })
		// Kill as the next job is under way: right after one finished,
		// while the workload keeps the stream busy.
		done := strings.Count(c.log.String(), emulatedLogLine)
		harness.WaitFor(t, time.Minute, "an emulated command", func() bool {
			return strings.Count(c.log.String(), emulatedLogLine) > done || failed.Load()
		})
		time.Sleep(time.Duration(rng.Intn(2000)) * time.Microsecond)
		c.kill()
		t.Logf("run %d killed after round %d", i, rounds.Load())
	}
	for rounds.Load() < 60 && !failed.Load() {
		time.Sleep(10 * time.Millisecond)
	}
	if err := stopWorkload(); err != nil {
		t.Fatal(err)
	}
	runs.start() // the final run, which must converge
	waitEqual(t, ctx, map[int][]*redis.Client{0: {src.Client()}}, map[int][]*redis.Client{0: d.clients(0)}, 2*time.Minute)
	if n := stagingKeys(t, ctx, d); n != 0 {
		t.Errorf("%d staging keys left", n)
	}
	resumed, staged := 0, 0
	for _, c := range runs.all[1:] {
		l := c.log.String()
		if strings.Contains(l, resumedLogLine) {
			resumed++
		}
		// A job a killed run had staged, finished from its record.
		staged += strings.Count(l, "resumed=true")
	}
	t.Logf("%d rounds; %d of %d restarts resumed from checkpoints; %d staged jobs finished after a kill",
		rounds.Load(), resumed, len(runs.all)-1, staged)
	if resumed < len(runs.all)-1 {
		t.Fatalf("only %d of %d restarts resumed from checkpoints: a restart flushed", resumed, len(runs.all)-1)
	}
}
