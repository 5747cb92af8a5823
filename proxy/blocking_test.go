package proxy

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/resp"
)

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// shardBlocked sums blocked_clients over the shards.
func (c *cluster) shardBlocked(ctx context.Context) int {
	n := 0
	for _, s := range c.shards {
		info, err := s.Client().Info(ctx, "clients").Result()
		if err != nil {
			c.t.Fatal(err)
		}
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "blocked_clients:"); ok {
				var k int
				fmt.Sscan(v, &k)
				n += k
			}
		}
	}
	return n
}

func TestBlockingCommands(t *testing.T) {
	c := newCluster(t, func(cfg *Config) { cfg.AllowWrites = true })
	ctx := harness.Context(t, time.Minute)
	per := c.keysOnEveryShard("bl:", 2)
	pusher := c.client(nil)

	t.Run("blpop woken by a push", func(t *testing.T) {
		for s := 0; s < 3; s++ {
			k := per[s][0]
			waiter := c.client(nil)
			got := make(chan []string, 1)
			go func() {
				v, err := waiter.BLPop(ctx, 10*time.Second, k).Result()
				if err != nil {
					v = []string{"error", err.Error()}
				}
				got <- v
			}()
			waitFor(t, 5*time.Second, "BLPOP to block", func() bool { return c.srv.blocked.Load() == 1 })
			if err := pusher.RPush(ctx, k, "x").Err(); err != nil {
				t.Fatal(err)
			}
			if v := <-got; len(v) != 2 || v[0] != k || v[1] != "x" {
				t.Fatalf("shard %d: BLPOP = %q", s, v)
			}
		}
	})
	t.Run("brpop times out with nil", func(t *testing.T) {
		start := time.Now()
		err := pusher.BRPop(ctx, 200*time.Millisecond, per[0][1]).Err()
		if err != redis.Nil || time.Since(start) < 150*time.Millisecond {
			t.Fatalf("BRPOP = %v after %v", err, time.Since(start))
		}
	})
	t.Run("blmove and bzpopmin on one shard", func(t *testing.T) {
		src, dst := "{bm}src", "{bm}dst"
		pusher.RPush(ctx, src, "a")
		if v, err := pusher.BLMove(ctx, src, dst, "LEFT", "RIGHT", time.Second).Result(); err != nil || v != "a" {
			t.Fatalf("BLMOVE = %q %v", v, err)
		}
		pusher.ZAdd(ctx, "{bm}z", redis.Z{Score: 1, Member: "m"})
		if v, err := pusher.BZPopMin(ctx, time.Second, "{bm}z").Result(); err != nil || v.Member != "m" {
			t.Fatalf("BZPOPMIN = %v %v", v, err)
		}
		if v, err := pusher.Do(ctx, "BLMPOP", "1", "1", dst, "LEFT").Result(); err != nil || fmt.Sprint(v) != "[{bm}dst [a]]" {
			t.Fatalf("BLMPOP = %v %v", v, err)
		}
	})
	t.Run("keys on several shards", func(t *testing.T) {
		err := pusher.BLPop(ctx, time.Second, per[0][0], per[1][0]).Err()
		wantErr(t, err, "CROSSSLOT")
	})
	t.Run("xreadgroup then xack", func(t *testing.T) {
		st := per[2][0] + ":stream"
		if err := pusher.XGroupCreateMkStream(ctx, st, "g", "$").Err(); err != nil {
			t.Fatal(err)
		}
		id, err := pusher.XAdd(ctx, &redis.XAddArgs{Stream: st, Values: []string{"f", "v"}}).Result()
		if err != nil {
			t.Fatal(err)
		}
		// Without BLOCK, then with it.
		res, err := pusher.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c1", Streams: []string{st, ">"}, Count: 1, Block: -1}).Result()
		if err != nil || len(res) != 1 || res[0].Messages[0].ID != id {
			t.Fatalf("XREADGROUP = %v %v", res, err)
		}
		if n, err := pusher.XAck(ctx, st, "g", id).Result(); err != nil || n != 1 {
			t.Fatalf("XACK = %d %v", n, err)
		}
		waiter := c.client(nil)
		got := make(chan string, 1)
		go func() {
			res, err := waiter.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c1", Streams: []string{st, ">"}, Block: 10 * time.Second}).Result()
			if err != nil || len(res) != 1 {
				got <- fmt.Sprint("error ", res, err)
				return
			}
			got <- res[0].Messages[0].ID
		}()
		waitFor(t, 5*time.Second, "XREADGROUP to block", func() bool { return c.srv.blocked.Load() == 1 })
		id2, _ := pusher.XAdd(ctx, &redis.XAddArgs{Stream: st, Values: []string{"f", "w"}}).Result()
		if v := <-got; v != id2 {
			t.Fatalf("XREADGROUP BLOCK = %s, want %s", v, id2)
		}
		if n, err := pusher.XAck(ctx, st, "g", id2).Result(); err != nil || n != 1 {
			t.Fatalf("XACK = %d %v", n, err)
		}
	})
	t.Run("replies before the block are written first", func(t *testing.T) {
		raw := harness.DialRaw(t, c.addr)
		raw.Send("PING\r\nBLPOP " + per[1][1] + " 0\r\n")
		raw.Expect("+PONG\r\n")
		waitFor(t, 5*time.Second, "BLPOP to block", func() bool { return c.srv.blocked.Load() == 1 })
		pusher.LPush(ctx, per[1][1], "late")
		raw.Expect(string(resp.AppendCommandString(nil, per[1][1], "late")))
	})
	t.Run("inside MULTI it does not block", func(t *testing.T) {
		raw := harness.DialRaw(t, c.addr)
		raw.Send("MULTI\r\nBLPOP " + per[0][1] + " 0\r\nEXEC\r\n")
		raw.Expect("+OK\r\n+QUEUED\r\n*1\r\n*-1\r\n")
	})
}

// TestBlockingReadOnly: XREAD BLOCK is a read and works without
// allow_writes, woken by an XADD made on the shard (as the syncer makes
// it); BLPOP is a write and is refused.
func TestBlockingReadOnly(t *testing.T) {
	c := newCluster(t, nil)
	ctx := harness.Context(t, time.Minute)
	p := c.client(nil)
	st := "tail:stream"
	c.shard(st).XAdd(ctx, &redis.XAddArgs{Stream: st, ID: "1-1", Values: []string{"a", "1"}})
	got := make(chan string, 1)
	go func() {
		res, err := p.XRead(ctx, &redis.XReadArgs{Streams: []string{st, "$"}, Block: 10 * time.Second}).Result()
		if err != nil || len(res) != 1 {
			got <- fmt.Sprint("error ", res, err)
			return
		}
		got <- res[0].Messages[0].ID
	}()
	waitFor(t, 5*time.Second, "XREAD to block", func() bool { return c.srv.blocked.Load() == 1 })
	// The proxy counts the command before its shard has it: an XADD in
	// between would be "$" for the XREAD, which then waits it out.
	waitFor(t, 10*time.Second, "the shard to hold the XREAD", func() bool { return c.shardBlocked(ctx) == 1 })
	c.shard(st).XAdd(ctx, &redis.XAddArgs{Stream: st, ID: "2-1", Values: []string{"a", "2"}})
	if v := <-got; v != "2-1" {
		t.Fatalf("XREAD BLOCK = %s", v)
	}
	wantErr(t, p.BLPop(ctx, time.Second, "l").Err(), "READONLY")
}

// TestBlockingDisconnectFrees: a blocked client that goes away frees its
// shard connection, on the proxy and on the shard.
func TestBlockingDisconnectFrees(t *testing.T) {
	c := newCluster(t, func(cfg *Config) { cfg.AllowWrites = true })
	ctx := harness.Context(t, time.Minute)
	nc, err := net.Dial("tcp", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.Write([]byte("BLPOP gone:list 0\r\n"))
	waitFor(t, 5*time.Second, "BLPOP to block", func() bool { return c.shardBlocked(ctx) == 1 })
	nc.Close()
	waitFor(t, 5*time.Second, "the shard to unblock", func() bool {
		return c.shardBlocked(ctx) == 0 && c.srv.blocked.Load() == 0
	})
}

// TestManyBlocked: 1,000 clients blocked at once stay within MaxBlocking
// (one more is refused with a clear error), cost bounded memory, and all
// wake up.
func TestManyBlocked(t *testing.T) {
	const n = 1000
	c := newCluster(t, func(cfg *Config) { cfg.AllowWrites = true; cfg.MaxBlocking = n })
	ctx := harness.Context(t, 2*time.Minute)
	per := c.keysOnEveryShard("many:", 1)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	conns := make([]*harness.RawConn, n)
	for i := range conns {
		conns[i] = harness.DialRaw(t, c.addr)
		conns[i].Send(string(resp.AppendCommandString(nil, "BLPOP", per[i%3][0], "0")))
	}
	waitFor(t, 60*time.Second, "1,000 blocked", func() bool { return c.srv.blocked.Load() == n })
	// The proxy counts a command as blocked before its shard has it.
	waitFor(t, 10*time.Second, "the shards to hold 1,000 blocked clients", func() bool { return c.shardBlocked(ctx) == n })
	var during runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&during)
	// Proxy and test clients share this process: both ends are counted.
	perClient := (int64(during.HeapInuse+during.StackInuse) - int64(before.HeapInuse+before.StackInuse)) / n
	t.Logf("memory per blocked client (proxy and test client): %d bytes", perClient)
	if perClient > 256<<10 {
		t.Fatalf("%d bytes per blocked client", perClient)
	}
	one := harness.DialRaw(t, c.addr)
	one.Send("BLPOP " + per[0][0] + " 0\r\n")
	one.Expect("-" + errMaxBlocking(n) + "\r\n")
	for s := 0; s < 3; s++ {
		vals := make([]any, 0, n)
		for i := s; i < n; i += 3 {
			vals = append(vals, i)
		}
		if err := c.shard(per[s][0]).RPush(ctx, per[s][0], vals...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for i, rc := range conns {
		v, err := resp.ReadReply(rc.Reader, nil, resp.Limits{})
		if err != nil || v[0] != '*' {
			t.Fatalf("client %d: %q %v", i, v, err)
		}
	}
	waitFor(t, 10*time.Second, "none blocked", func() bool { return c.srv.blocked.Load() == 0 })
}
