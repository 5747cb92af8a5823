package apply

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/internal/errclass"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/router"
	"github.com/replicaof/replicaof/syncer/replica"
)

// cmds builds stream commands from space-separated lines ("~" stands for
// a space inside an argument); offsets count
// commands.
func cmds(lines ...string) []replica.Command {
	var out []replica.Command
	for _, l := range lines {
		var args [][]byte
		for _, f := range strings.Split(l, " ") {
			args = append(args, []byte(strings.ReplaceAll(f, "~", " ")))
		}
		out = append(out, replica.Command{Args: args, Offset: int64(len(out) + 1)})
	}
	return out
}

// streamScript is what a Redis 7 master propagates for a mixed workload:
// effects only, SELECT inside and outside MULTI, absolute TTLs.
func streamScript() []string {
	s := []string{"SELECT 0", "SET a 1", "SET b 2", "INCR counter", "APPEND a x"}
	var mset, del strings.Builder
	mset.WriteString("MSET")
	del.WriteString("DEL")
	for i := range 30 {
		fmt.Fprintf(&mset, " k%d v%d", i, i)
		if i%3 == 0 {
			fmt.Fprintf(&del, " k%d", i)
		}
	}
	s = append(s, mset.String(), del.String(),
		"MSETNX n1 1 n2 2 n3 3 n4 4 n5 5",
		"UNLINK n1 n4", "TOUCH n2 n3 k1",
		"MULTI", "SET {user1}.name ann", "INCR {user1}.visits", "RPUSH {user1}.log a b c", "EXEC",
		"MULTI", "SELECT 0", "HSET h f1 v1 f2 v2", "HDEL h f1", "EXEC",
		"RPUSH list x y z", "LPOP list", "SADD set m1 m2 m3", "SREM set m2",
		"ZADD zs 1 a 2.5 b -inf c", "ZINCRBY zs 2 a",
		"XADD st 1-1 f v", "XADD st 2-0 g w", "XGROUP CREATE st grp 0",
		"XCLAIM st grp alice 0 1-1 TIME 1700000000000 RETRYCOUNT 3 FORCE JUSTID LASTID 1-1",
		"SET ttl v PXAT 4102444800000", "PEXPIREAT a 4102444800000",
		"SET f 1.5 KEEPTTL",
		"FUNCTION LOAD #!lua~name=streamlib\nredis.register_function('sf',function()~return~1~end)",
		"SELECT 3", "SET d3 x", "SET d3b y", "FLUSHDB", "SET d3c z",
		"SELECT 5", "SET s5 five", "SWAPDB 5 6", "SET s5b again",
		"SELECT 0", "PUBLISH news hello", "SET last done",
		"MULTI", "SET {t}a 1", "SELECT 3", "SET {t}b 2", "EXEC", // SELECT mid-block (7.2+)
		"SET after-block-db3 yes",
		"SELECT 6", "MULTI", "FLUSHDB", "EXEC", "SET s6 six", // keyless block on every shard
		"SELECT 0", "SET {s}urvivor 1", "COPY {s}urvivor {s}copied", "RENAME {user1}.name {user1}.fullname",
	)
	return s
}

func TestApplyStreamMatchesReference(t *testing.T) {
	t.Run("plain", func(t *testing.T) { testApplyStreamMatchesReference(t, false) })
	t.Run("checkpoint", func(t *testing.T) { testApplyStreamMatchesReference(t, true) })
}

func testApplyStreamMatchesReference(t *testing.T, checkpoint bool) {
	ctx := harness.Context(t, time.Minute)
	ref := harness.StartRedis(t)
	c := startCluster(t, 3)
	c.flush(t, ctx)
	table, err := c.dest.Commands(ctx)
	if err != nil || table.Len() < 200 {
		t.Fatalf("Commands: %v", err)
	}
	opts := Options{Table: table}
	if checkpoint {
		// Every: refresh untouched shards too, so all end at the last offset.
		opts.Checkpoint = CheckpointOptions{Key: CheckpointPrefix + "ref", Fingerprint: "fp", Every: time.Nanosecond}
	}
	a := New(c.dest, opts)
	if checkpoint {
		if err := c.dest.Mark(ctx, "m"); err != nil {
			t.Fatal(err)
		}
		fullSyncEmpty(t, ctx, a, 0)
	}

	// A subscriber on the shard of the channel.
	chanShard := c.dest.Map().ShardOf([]byte("news"))
	ps := c.servers[chanShard].Client().Subscribe(ctx, "news")
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatal(err)
	}

	script := cmds(streamScript()...)
	// The reference executes the same commands on one connection.
	conn := ref.Client().Conn()
	defer conn.Close()
	for _, cmd := range script {
		args := make([]any, len(cmd.Args))
		for i, a := range cmd.Args {
			args[i] = string(a)
		}
		if err := conn.Do(ctx, args...).Err(); err != nil && !errors.Is(err, redis.Nil) {
			t.Fatalf("reference %q: %v", args, err)
		}
	}
	// Feed the applier in uneven batches (blocks span batches), and
	// scribble over each batch afterwards as the link reuses its buffers.
	sizes := []int{1, 2, 5, 3, 7}
	for i, n := 0, 0; i < len(script); n++ {
		end := min(i+sizes[n%len(sizes)], len(script))
		batch := make([]replica.Command, end-i)
		for j := range batch {
			batch[j].Offset = script[i+j].Offset
			for _, a := range script[i+j].Args {
				batch[j].Args = append(batch[j].Args, append([]byte(nil), a...))
			}
		}
		if err := a.Apply(ctx, batch); err != nil {
			t.Fatalf("Apply(%d..%d): %v", i, end, err)
		}
		for _, cmd := range batch {
			for _, a := range cmd.Args {
				for k := range a {
					a[k] = '#'
				}
			}
		}
		i = end
	}
	st := a.Stats()
	if st.Commands != int64(len(script)) || st.Offset != int64(len(script)) {
		t.Errorf("stats %+v, want %d commands and offset", st, len(script))
	}
	if n := ref.Client().DBSize(ctx).Val(); n < 30 {
		t.Fatalf("reference db 0 holds only %d keys: the comparison would prove little", n)
	}
	for _, db := range []int{0, 3, 5, 6} {
		harness.RequireEqual(t, ctx, []*redis.Client{ref.ClientDB(db)}, c.clients(db), harness.CompareOptions{Skip: internalKey})
	}
	if checkpoint {
		// Every shard's checkpoint reached the end of the script.
		cps, err := Checkpoints(ctx, c.dest, CheckpointPrefix+"ref")
		if err != nil {
			t.Fatal(err)
		}
		for i, cp := range cps {
			if cp == nil || cp.Offset != int64(len(script)) || cp.ReplID != "replid0" || cp.Fingerprint != "fp" {
				t.Errorf("shard %d checkpoint %+v, want offset %d", i, cp, len(script))
			}
		}
	}
	msg, err := ps.ReceiveMessage(ctx)
	if err != nil || msg.Payload != "hello" {
		t.Fatalf("subscriber on shard %d got %v, %v", chanShard, msg, err)
	}
	for i, s := range c.servers {
		libs, err := s.Client().FunctionList(ctx, redis.FunctionListQuery{LibraryNamePattern: "streamlib"}).Result()
		if err != nil || len(libs) != 1 {
			t.Errorf("shard %d: function library not loaded: %v %v", i, libs, err)
		}
	}
}

// keysOnShards returns one key name per shard, in shard order.
func keysOnShards(m *router.SlotMap, prefix string) []string {
	out := make([]string, m.Len())
	found := 0
	for i := 0; found < m.Len(); i++ {
		k := fmt.Sprintf("%s%d", prefix, i)
		if s := m.ShardOf([]byte(k)); out[s] == "" {
			out[s] = k
			found++
		}
	}
	return out
}

// TestApplyCrossSlot: with cross_shard: stop, a command or block whose
// keys span shards stops the stream.
func TestApplyCrossSlot(t *testing.T) {
	ctx := harness.Context(t, time.Minute)
	c := startCluster(t, 3)
	c.flush(t, ctx)
	k := keysOnShards(c.dest.Map(), "x")
	stop := Options{CrossShard: CrossShardStop}

	t.Run("multi", func(t *testing.T) {
		a := New(c.dest, stop)
		err := a.Apply(ctx, cmds("SET before 1", "MULTI", "SET "+k[0]+" 1", "SET "+k[1]+" 1", "EXEC", "SET after 1"))
		var ce *CrossSlotError
		if !errors.As(err, &ce) || !errors.Is(err, router.ErrCrossShard) || !errclass.IsFatal(err) {
			t.Fatalf("err %v, want *CrossSlotError", err)
		}
		t.Log(err)
		if !strings.Contains(ce.Command, "MULTI") || ce.Offset != 5 {
			t.Errorf("error %+v does not name the block", ce)
		}
		if err2 := a.Apply(ctx, cmds("SET later 1")); !errors.Is(err2, router.ErrCrossShard) {
			t.Errorf("error not sticky: %v", err2)
		}
		expectKeys(t, ctx, c, map[string]bool{"before": true, k[0]: false, k[1]: false, "after": false, "later": false})
		if got := a.Stats().Offset; got != 1 {
			t.Errorf("offset %d, want 1 (only SET before applied)", got)
		}
	})
	t.Run("rename", func(t *testing.T) {
		c.flush(t, ctx)
		a := New(c.dest, stop)
		err := a.Apply(ctx, cmds("SET "+k[0]+" v", "SET p 1", "RENAME "+k[0]+" "+k[2], "SET q 1"))
		var ce *CrossSlotError
		if !errors.As(err, &ce) || ce.Command != "RENAME" || len(ce.Keys) != 2 {
			t.Fatalf("err %v, want RENAME cross-slot", err)
		}
		expectKeys(t, ctx, c, map[string]bool{k[0]: true, "p": true, k[2]: false, "q": false})
	})
}

func expectKeys(t *testing.T, ctx context.Context, c *cluster, want map[string]bool) {
	t.Helper()
	for key, exists := range want {
		n, err := c.client(key, 0).Exists(ctx, key).Result()
		if err != nil || (n == 1) != exists {
			t.Errorf("key %q exists=%v (%v), want %v", key, n == 1, err, exists)
		}
	}
}

func TestApplyErrors(t *testing.T) {
	ctx := harness.Context(t, time.Minute)
	c := startCluster(t, 3)
	c.flush(t, ctx)
	m := c.dest.Map()

	t.Run("wrongtype", func(t *testing.T) {
		a := New(c.dest, Options{})
		err := a.Apply(ctx, cmds("SET w 1", "LPUSH w x", "SET z 1"))
		var we *WriteError
		if !errors.As(err, &we) || !errors.Is(err, ErrRejected) || !errclass.IsFatal(err) {
			t.Fatalf("err %v, want ErrRejected", err)
		}
		if we.Key != "w" || we.Shard != m.ShardOf([]byte("w")) || we.Reply.Code() != "WRONGTYPE" || we.Command != "LPUSH" {
			t.Errorf("error %+v", we)
		}
		t.Log(err)
	})
	t.Run("wrongtype-in-multi", func(t *testing.T) {
		a := New(c.dest, Options{})
		err := a.Apply(ctx, cmds("SET {m}w 1", "MULTI", "INCR {m}n", "LPUSH {m}w x", "EXEC"))
		var we *WriteError
		if !errors.As(err, &we) || we.Command != "LPUSH" || we.Key != "{m}w" {
			t.Fatalf("err %v, want LPUSH {m}w rejected", err)
		}
	})
	t.Run("oom", func(t *testing.T) {
		key := "oomkey"
		s := c.servers[m.ShardOf([]byte(key))]
		if err := s.Client().ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
			t.Fatal(err)
		}
		defer s.Client().ConfigSet(ctx, "maxmemory", "0")
		a := New(c.dest, Options{})
		err := a.Apply(ctx, cmds("SET "+key+" v"))
		if !errors.Is(err, ErrOOM) || !errclass.IsFatal(err) {
			t.Fatalf("err %v, want ErrOOM", err)
		}
	})
	t.Run("restore-rejected", func(t *testing.T) {
		// A RESTORE payload the destination refuses is a fatal rejection.
		a := New(c.dest, Options{})
		err := a.Apply(ctx, cmds("RESTORE bad 0 garbage"))
		if !errors.Is(err, ErrRejected) {
			t.Fatalf("err %v, want ErrRejected", err)
		}
	})
	t.Run("snapshot-shard-down", func(t *testing.T) {
		c.servers[2].Kill()
		defer c.servers[2].Restart()
		a := New(c.dest, Options{})
		_, err := a.LoadSnapshot(ctx, mustOpen(t, fixtures(t)[0]))
		if !errors.Is(err, pool.ErrShardDown) || errclass.IsFatal(err) {
			t.Fatalf("err %v, want pool.ErrShardDown (retryable)", err)
		}
	})
	t.Run("shard-down", func(t *testing.T) {
		k := keysOnShards(m, "down")
		a := New(c.dest, Options{})
		if err := a.Apply(ctx, cmds("SELECT 2", "SET "+k[0]+" 1")); err != nil {
			t.Fatal(err)
		}
		c.servers[1].Kill()
		batch := cmds("SET "+k[0]+" 2", "MULTI", "SET "+k[1]+" 2", "EXEC", "SELECT 4", "SET "+k[2]+" 2")
		err := a.Apply(ctx, batch)
		if !errors.Is(err, pool.ErrShardDown) || errclass.IsFatal(err) {
			t.Fatalf("err %v, want pool.ErrShardDown (retryable)", err)
		}
		// The applier's state rolled back: once the shard is back, the same
		// batch applies in the same db as before.
		c.servers[1].Restart()
		harness.WaitFor(t, 10*time.Second, "shard back", func() bool { return a.Apply(ctx, batch) == nil })
		for i, key := range k {
			db := 2
			if i == 2 {
				db = 4
			}
			if v, err := c.client(key, db).Get(ctx, key).Result(); err != nil || v != "2" {
				t.Errorf("%s in db %d: %q %v", key, db, v, err)
			}
		}
	})
}

// TestApplySkipsOwnKeys: when the source is another replicaof's proxy,
// its checkpoint and marker writes arrive in the stream (alone and inside
// its MULTI blocks); they must not land on this destination.
func TestApplySkipsOwnKeys(t *testing.T) {
	ctx := harness.Context(t, time.Minute)
	c := startCluster(t, 3)
	c.flush(t, ctx)
	a := New(c.dest, Options{})
	err := a.Apply(ctx, cmds(
		"SELECT 0", "SET "+destination.KeyPrefix+"marker other", "SET a 1",
		"MULTI", "SET b 2", "SELECT 0", "SET "+CheckpointPrefix+"x fp~id~7", "EXEC",
		"MULTI", "SET "+CheckpointPrefix+"y fp~id~8", "EXEC",
		"DEL "+destination.KeyPrefix+"probe", "SET c 3",
		// Another replicaof's emulation of a cross-shard command runs on
		// its internal names; the first key is not always argument 1.
		"SET d abc", "BITOP OR "+destination.KeyPrefix+"x:{t}:o:0 d",
		"MULTI", "BITOP NOT "+destination.KeyPrefix+"x:{t}:o:1 d", "SET e 1", "EXEC"))
	if err != nil {
		t.Fatal(err)
	}
	expectKeys(t, ctx, c, map[string]bool{
		"a": true, "b": true, "c": true, "e": true,
		destination.KeyPrefix + "marker": false, CheckpointPrefix + "x": false, CheckpointPrefix + "y": false,
		destination.KeyPrefix + "x:{t}:o:0": false, destination.KeyPrefix + "x:{t}:o:1": false,
	})
}

// TestApplySplitBlocks: with SplitBlocks a block spanning shards lands as
// one block per shard instead of stopping sync.
func TestApplySplitBlocks(t *testing.T) {
	ctx := harness.Context(t, time.Minute)
	c := startCluster(t, 3)
	c.flush(t, ctx)
	k := keysOnShards(c.dest.Map(), "x")
	a := New(c.dest, Options{SplitBlocks: true})
	err := a.Apply(ctx, cmds("MULTI", "SET "+k[0]+" 1", "INCR "+k[1], "MSET "+k[0]+"m 2 "+k[2]+" 3", "SELECT 0", "EXEC", "SET after 1"))
	if err != nil {
		t.Fatal(err)
	}
	expectKeys(t, ctx, c, map[string]bool{k[0]: true, k[1]: true, k[0] + "m": true, k[2]: true, "after": true})
}
