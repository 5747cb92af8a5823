package proxy

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/router"
)

// cluster is three real shards and a proxy in front of them.
type cluster struct {
	t      *testing.T
	shards []*harness.Redis
	m      *router.SlotMap
	srv    *Server
	addr   string
}

// testLoops is Config.Loops for the tests' servers: the suite runs on
// the event-loop driver by default, on the goroutine driver with
// `go test ./proxy -args -proxy.loops=0` (tests of one driver set Loops
// themselves).
var testLoops = flag.Int("proxy.loops", 1, "Config.Loops of the test servers (0: the goroutine driver)")

func newCluster(t *testing.T, mut func(*Config), redisArgs ...string) *cluster {
	t.Helper()
	c := &cluster{t: t}
	c.shards = harness.StartServers(t, 3, redisArgs...)
	c.m, _ = router.EvenSlotMap(3)
	c.start(mut)
	return c
}

func (c *cluster) start(mut func(*Config)) {
	t := c.t
	cfg := Config{Listen: "127.0.0.1:0", Timeout: 2 * time.Second, Logger: harness.Logger(t, slog.LevelDebug), Loops: *testLoops}
	cfg.Destination = harness.Destination(t, harness.Addrs(c.shards)...)
	cfg.Backend.RetryBackoff = 20 * time.Millisecond
	if mut != nil {
		mut(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("Serve did not stop")
		}
	})
	c.srv, c.addr = srv, srv.Addr().String()
}

// client is a go-redis client of the proxy.
func (c *cluster) client(opt *redis.Options) *redis.Client {
	if opt == nil {
		opt = &redis.Options{}
	}
	opt.Addr = c.addr
	opt.MaxRetries = -1
	cl := redis.NewClient(opt)
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// put writes key directly on the shard the router places it on, as the
// syncer does.
func (c *cluster) put(ctx context.Context, key, val string) {
	c.t.Helper()
	if err := c.shard(key).Set(ctx, key, val, 0).Err(); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) shard(key string) *redis.Client {
	return c.shards[c.m.ShardOf([]byte(key))].Client()
}

// keysOnEveryShard returns n keys per shard.
func (c *cluster) keysOnEveryShard(prefix string, n int) [][]string {
	out := make([][]string, 3)
	for i := 0; len(out[0]) < n || len(out[1]) < n || len(out[2]) < n; i++ {
		k := fmt.Sprintf("%s%d", prefix, i)
		if s := c.m.ShardOf([]byte(k)); len(out[s]) < n {
			out[s] = append(out[s], k)
		}
	}
	return out
}

// putOnEveryShard puts n keys per shard, each with the value "v-" + key,
// and returns them by shard and all together.
func (c *cluster) putOnEveryShard(ctx context.Context, prefix string, n int) (per [][]string, all []string) {
	c.t.Helper()
	per = c.keysOnEveryShard(prefix, n)
	for _, ks := range per {
		for _, k := range ks {
			c.put(ctx, k, "v-"+k)
			all = append(all, k)
		}
	}
	return per, all
}

func wantErr(t *testing.T, err error, prefix string) {
	t.Helper()
	if err == nil || !strings.HasPrefix(err.Error(), prefix) {
		t.Fatalf("want error %q, got %v", prefix, err)
	}
}

func TestReads(t *testing.T) {
	c := newCluster(t, nil)
	ctx := harness.Context(t, time.Minute)
	per, all := c.putOnEveryShard(ctx, "k:", 50)
	c.shard("h").HSet(ctx, "h", "f", "1")
	p := c.client(nil)

	t.Run("get", func(t *testing.T) {
		for _, k := range all[:10] {
			if v, err := p.Get(ctx, k).Result(); err != nil || v != "v-"+k {
				t.Fatalf("GET %s = %q %v", k, v, err)
			}
		}
		if _, err := p.Get(ctx, "missing").Result(); err != redis.Nil {
			t.Fatalf("missing: %v", err)
		}
		if v, _ := p.HGet(ctx, "h", "f").Result(); v != "1" {
			t.Fatalf("HGET %q", v)
		}
		if typ, _ := p.Type(ctx, "h").Result(); typ != "hash" {
			t.Fatalf("TYPE %q", typ)
		}
	})
	t.Run("mget", func(t *testing.T) {
		keys := []string{per[2][0], per[0][0], "missing", per[1][0], per[0][1], per[2][1]}
		vals, err := p.MGet(ctx, keys...).Result()
		if err != nil {
			t.Fatal(err)
		}
		for i, k := range keys {
			want := any("v-" + k)
			if k == "missing" {
				want = nil
			}
			if vals[i] != want {
				t.Fatalf("MGET[%d] %s = %v", i, k, vals[i])
			}
		}
	})
	t.Run("exists touch", func(t *testing.T) {
		keys := []string{per[0][0], per[1][0], per[2][0], per[2][0], "missing"}
		if n, _ := p.Exists(ctx, keys...).Result(); n != 4 {
			t.Fatalf("EXISTS %d", n)
		}
		if n, _ := p.Touch(ctx, keys...).Result(); n != 4 {
			t.Fatalf("TOUCH %d", n)
		}
	})
	t.Run("dbsize keys", func(t *testing.T) {
		if n, _ := p.DBSize(ctx).Result(); n != int64(len(all)+1) {
			t.Fatalf("DBSIZE %d", n)
		}
		keys, err := p.Keys(ctx, "k:*").Result()
		if err != nil || len(keys) != len(all) {
			t.Fatalf("KEYS %d %v", len(keys), err)
		}
	})
	t.Run("scan", func(t *testing.T) {
		seen := map[string]int{}
		var cursor uint64
		rounds := 0
		for {
			keys, next, err := p.Scan(ctx, cursor, "k:*", 7).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				seen[k]++
			}
			rounds++
			if cursor = next; cursor == 0 {
				break
			}
		}
		if len(seen) != len(all) {
			t.Fatalf("SCAN saw %d keys of %d", len(seen), len(all))
		}
		for k, n := range seen {
			if n != 1 {
				t.Fatalf("SCAN saw %s %d times", k, n)
			}
		}
		if rounds < 3 {
			t.Fatalf("SCAN finished in %d rounds", rounds)
		}
		keys, _, err := p.ScanType(ctx, 0, "*", 1000, "hash").Result()
		if err != nil || len(keys) != 0 { // shard 0 first; "h" may be elsewhere
			if len(keys) != 1 || keys[0] != "h" {
				t.Fatalf("SCAN TYPE hash: %v %v", keys, err)
			}
		}
		if err := p.Do(ctx, "SCAN", "abc").Err(); err == nil {
			t.Fatal("bad cursor accepted")
		}
		if err := p.Do(ctx, "SCAN", "3").Err(); err == nil { // shard index 3 of 3
			t.Fatal("cursor for a shard that does not exist accepted")
		}
	})
	t.Run("randomkey", func(t *testing.T) {
		k, err := p.RandomKey(ctx).Result()
		if err != nil || (k != "h" && !strings.HasPrefix(k, "k:")) {
			t.Fatalf("RANDOMKEY %q %v", k, err)
		}
	})
	t.Run("pipeline order", func(t *testing.T) {
		pipe := p.Pipeline()
		var cmds []*redis.StringCmd
		for i := 0; i < 300; i++ {
			cmds = append(cmds, pipe.Get(ctx, all[(i*7)%len(all)]))
		}
		mg := pipe.MGet(ctx, all[0], all[60], all[120])
		ping := pipe.Ping(ctx)
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		for i, cmd := range cmds {
			if want := "v-" + all[(i*7)%len(all)]; cmd.Val() != want {
				t.Fatalf("reply %d = %q, want %q", i, cmd.Val(), want)
			}
		}
		if v := mg.Val(); len(v) != 3 || v[1] != "v-"+all[60] {
			t.Fatalf("MGET in pipeline: %v", v)
		}
		if ping.Val() != "PONG" {
			t.Fatalf("PING in pipeline: %v", ping.Val())
		}
	})
	t.Run("local", func(t *testing.T) {
		if v, _ := p.Echo(ctx, "hi").Result(); v != "hi" {
			t.Fatalf("ECHO %q", v)
		}
		if err := p.Do(ctx, "CLIENT", "SETNAME", "app1").Err(); err != nil {
			t.Fatal(err)
		}
		if v, _ := p.Do(ctx, "CLIENT", "GETNAME").Text(); v != "app1" {
			t.Fatalf("GETNAME %q", v)
		}
		if v, _ := p.Do(ctx, "CLIENT", "INFO").Text(); !strings.Contains(v, "name=app1") {
			t.Fatalf("CLIENT INFO %q", v)
		}
		if n, _ := p.Do(ctx, "CLIENT", "ID").Int64(); n <= 0 {
			t.Fatalf("CLIENT ID %d", n)
		}
		if err := p.Do(ctx, "CLIENT", "SETINFO", "LIB-NAME", "x").Err(); err != nil {
			t.Fatal(err)
		}
		if err := p.Do(ctx, "READONLY").Err(); err != nil {
			t.Fatal(err)
		}
		if n, _ := p.Do(ctx, "COMMAND", "COUNT").Int64(); n < 200 {
			t.Fatalf("COMMAND COUNT %d", n)
		}
		info, err := p.Do(ctx, "COMMAND", "INFO", "get").Slice()
		if err != nil || len(info) != 1 {
			t.Fatalf("COMMAND INFO %v %v", info, err)
		}
		v, err := p.Info(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("db0:keys=%d,", len(all)+1)
		for _, s := range []string{"# Server", "redis_version:", "# Proxy", "shards:3", "# Keyspace", want} {
			if !strings.Contains(v, s) {
				t.Fatalf("INFO lacks %q:\n%s", s, v)
			}
		}
		hello, err := p.Do(ctx, "HELLO", "2").Slice()
		if err != nil || len(hello) != 14 {
			t.Fatalf("HELLO 2: %v %v", hello, err)
		}
		wantErr(t, p.Do(ctx, "HELLO", "3").Err(), "NOPROTO")
	})
	t.Run("unsupported", func(t *testing.T) {
		for _, args := range [][]any{
			{"CONFIG", "GET", "save"},
			{"FLUSHALL"}, {"CLIENT", "LIST"}, {"MONITOR"},
		} {
			err := p.Do(ctx, args...).Err()
			if err == nil || !strings.Contains(err.Error(), "unsupported command") {
				if args[0] == "FLUSHALL" && err != nil && strings.HasPrefix(err.Error(), "READONLY") {
					continue // a write, refused as such first
				}
				t.Fatalf("%v: %v", args, err)
			}
		}
		wantErr(t, p.Do(ctx, "GET").Err(), "ERR wrong number of arguments for 'get' command")
		// Unknown commands in Redis' words, which client libraries match.
		wantErr(t, p.Do(ctx, "NOSUCH", "a", "b").Err(), "ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' ")
	})
}

func TestSelect(t *testing.T) {
	c := newCluster(t, nil)
	ctx := harness.Context(t, time.Minute)
	c.shards[c.m.ShardOf([]byte("a"))].ClientDB(3).Set(ctx, "a", "db3", 0)
	c.put(ctx, "a", "db0")
	p := c.client(&redis.Options{DB: 3})
	if v, _ := p.Get(ctx, "a").Result(); v != "db3" {
		t.Fatalf("db3: %q", v)
	}
	if n, _ := p.DBSize(ctx).Result(); n != 1 {
		t.Fatalf("DBSIZE db3: %d", n)
	}
	p0 := c.client(nil)
	if v, _ := p0.Get(ctx, "a").Result(); v != "db0" {
		t.Fatalf("db0: %q", v)
	}
	wantErr(t, p0.Do(ctx, "SELECT", "16").Err(), "ERR DB index is out of range")
	info, _ := p0.Info(ctx, "keyspace").Result()
	if !strings.Contains(info, "db0:keys=1,") || !strings.Contains(info, "db3:keys=1,") {
		t.Fatalf("INFO keyspace: %s", info)
	}
}

func TestHiddenKeys(t *testing.T) {
	c := newCluster(t, nil)
	ctx := harness.Context(t, time.Minute)
	p := c.client(nil)
	for i := 0; i < 3; i++ { // hidden keys on every shard
		c.shards[i].Client().Set(ctx, fmt.Sprintf("__replicaof:cp:%d", i), "x", 0)
	}
	if k, err := p.RandomKey(ctx).Result(); err != redis.Nil {
		t.Fatalf("RANDOMKEY with only hidden keys: %q %v", k, err)
	}
	c.put(ctx, "visible", "1")
	for _, check := range []struct {
		name string
		got  any
		want any
	}{
		{"DBSIZE", p.DBSize(ctx).Val(), int64(1)},
		{"KEYS", strings.Join(p.Keys(ctx, "*").Val(), ","), "visible"},
		{"RANDOMKEY", p.RandomKey(ctx).Val(), "visible"},
		{"GET", p.Get(ctx, "__replicaof:cp:0").Err(), redis.Nil},
		{"EXISTS", p.Exists(ctx, "__replicaof:cp:0", "__replicaof:cp:1", "visible").Val(), int64(1)},
		{"TYPE", p.Type(ctx, "__replicaof:cp:1").Val(), "none"},
		{"MGET", fmt.Sprint(p.MGet(ctx, "__replicaof:cp:2", "visible").Val()), "[<nil> 1]"},
	} {
		if fmt.Sprint(check.got) != fmt.Sprint(check.want) {
			t.Errorf("%s = %v, want %v", check.name, check.got, check.want)
		}
	}
	var seen []string
	iter := p.Scan(ctx, 0, "", 1).Iterator()
	for iter.Next(ctx) {
		seen = append(seen, iter.Val())
	}
	if iter.Err() != nil || strings.Join(seen, ",") != "visible" {
		t.Errorf("SCAN: %v %v", seen, iter.Err())
	}
	info := p.Info(ctx, "keyspace").Val()
	if !strings.Contains(info, "db0:keys=1,") {
		t.Errorf("INFO keyspace: %s", info)
	}
	w := newClusterOn(t, c, func(cfg *Config) { cfg.AllowWrites = true })
	wantErr(t, w.Set(ctx, "__replicaof:x", "1", 0).Err(), "ERR keys starting with")
}

// newClusterOn starts a second proxy over c's shards.
func newClusterOn(t *testing.T, c *cluster, mut func(*Config)) *redis.Client {
	c2 := &cluster{t: t, shards: c.shards, m: c.m}
	c2.start(mut)
	return c2.client(nil)
}

func TestAuth(t *testing.T) {
	c := newCluster(t, func(cfg *Config) { cfg.Password = "s3cret" })
	ctx := harness.Context(t, time.Minute)
	c.put(ctx, "a", "1")
	anon := c.client(nil)
	wantErr(t, anon.Get(ctx, "a").Err(), "NOAUTH")
	wantErr(t, anon.Ping(ctx).Err(), "NOAUTH")
	wantErr(t, anon.Do(ctx, "AUTH", "wrong").Err(), "WRONGPASS")
	wantErr(t, anon.Do(ctx, "AUTH", "bob", "s3cret").Err(), "WRONGPASS")
	wantErr(t, anon.Do(ctx, "HELLO", "2").Err(), "NOAUTH")

	// go-redis tries HELLO 3 with AUTH, falls back to AUTH.
	ok := c.client(&redis.Options{Password: "s3cret"})
	if v, err := ok.Get(ctx, "a").Result(); err != nil || v != "1" {
		t.Fatalf("authenticated GET: %q %v", v, err)
	}
	user := c.client(&redis.Options{Username: "default", Password: "s3cret"})
	if err := user.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	bad := c.client(&redis.Options{Password: "nope"})
	wantErr(t, bad.Ping(ctx).Err(), "WRONGPASS")
	// HELLO 2 AUTH authenticates too.
	h := c.client(&redis.Options{Protocol: 2})
	if err := h.Do(ctx, "HELLO", "2", "AUTH", "default", "s3cret").Err(); err != nil {
		t.Fatal(err)
	}
}

func TestReadOnly(t *testing.T) {
	c := newCluster(t, nil)
	ctx := harness.Context(t, time.Minute)
	p := c.client(nil)
	for _, err := range []error{
		p.Set(ctx, "a", "1", 0).Err(),
		p.Del(ctx, "a", "b").Err(),
		p.MSet(ctx, "a", "1", "b", "2").Err(),
		p.Incr(ctx, "n").Err(),
	} {
		wantErr(t, err, "READONLY You can't write against a read only replica.")
	}
	// A script runs read-only: the shard refuses its writes.
	err := p.Eval(ctx, "return redis.call('set', KEYS[1], 'x')", []string{"a"}).Err()
	if err == nil {
		t.Fatal("write from a script accepted")
	}
	if v, _ := p.Eval(ctx, "return 7", []string{"a"}).Int(); v != 7 {
		t.Fatalf("read-only script: %d", v)
	}
	if n, _ := c.shard("a").Exists(ctx, "a").Result(); n != 0 {
		t.Fatal("write reached the shard")
	}
}

func TestWrites(t *testing.T) {
	c := newCluster(t, func(cfg *Config) { cfg.AllowWrites = true })
	ctx := harness.Context(t, time.Minute)
	p := c.client(nil)
	per := c.keysOnEveryShard("w:", 2)
	a, b, d := per[0][0], per[1][0], per[2][0]
	if err := p.MSet(ctx, a, "1", b, "2", d, "3").Err(); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{a: "1", b: "2", d: "3"} {
		if v, _ := c.shard(k).Get(ctx, k).Result(); v != want {
			t.Fatalf("%s on its shard = %q", k, v)
		}
	}
	if n, _ := p.Del(ctx, a, b, "missing").Result(); n != 2 {
		t.Fatalf("DEL %d", n)
	}
	wantErr(t, p.Rename(ctx, d, per[0][1]).Err(), "CROSSSLOT")
	if err := p.Rename(ctx, "{u}1", "{u}2").Err(); err == nil || !strings.Contains(err.Error(), "no such key") {
		t.Fatalf("same-slot RENAME: %v", err)
	}
	// MULTI/EXEC on one shard.
	res, err := p.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Set(ctx, "{u}1", "x", 0)
		pipe.Incr(ctx, "{u}n")
		pipe.Get(ctx, "{u}1")
		return nil
	})
	if err != nil || len(res) != 3 || res[2].(*redis.StringCmd).Val() != "x" {
		t.Fatalf("MULTI/EXEC: %v %v", res, err)
	}
	// Keys on two shards: CROSSSLOT while queueing, EXECABORT at EXEC.
	_, err = p.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Set(ctx, a, "1", 0)
		pipe.Set(ctx, b, "1", 0)
		return nil
	})
	wantErr(t, err, "EXECABORT")
	if n, _ := p.Exists(ctx, a).Result(); n != 0 {
		t.Fatal("aborted transaction wrote")
	}
	// A script whose keys share a shard.
	if err := p.Eval(ctx, "redis.call('set', KEYS[1], ARGV[1]); return redis.call('get', KEYS[2])",
		[]string{"{s}a", "{s}b"}, "v").Err(); err != redis.Nil {
		t.Fatalf("EVAL: %v", err)
	}
	wantErr(t, p.Eval(ctx, "return 1", []string{a, b}).Err(), "CROSSSLOT")
	if v, _ := p.Get(ctx, "{s}a").Result(); v != "v" {
		t.Fatalf("EVAL write: %q", v)
	}
}

func TestPubSub(t *testing.T) {
	c := newCluster(t, nil)
	ctx := harness.Context(t, time.Minute)
	p := c.client(nil)
	chans := c.keysOnEveryShard("ch:", 1)
	sub := p.Subscribe(ctx, chans[0][0], chans[1][0], chans[2][0])
	defer sub.Close()
	if err := sub.PSubscribe(ctx, "news.*"); err != nil {
		t.Fatal(err)
	}
	// go-redis checks the confirmations; wait for all four.
	for i := 0; i < 4; i++ {
		if _, err := sub.ReceiveTimeout(ctx, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// The syncer publishes on the channel's shard.
	for s, ks := range chans {
		if err := c.shards[s].Client().Publish(ctx, ks[0], "m"+ks[0]).Err(); err != nil {
			t.Fatal(err)
		}
	}
	c.shards[c.m.ShardOf([]byte("news.x"))].Client().Publish(ctx, "news.x", "hello")
	got := map[string]string{}
	for len(got) < 4 {
		msg, err := sub.ReceiveTimeout(ctx, 5*time.Second)
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		if m, ok := msg.(*redis.Message); ok {
			got[m.Channel] = m.Payload
		}
	}
	if got["news.x"] != "hello" || got[chans[1][0]] != "m"+chans[1][0] {
		t.Fatalf("messages: %v", got)
	}
	if err := sub.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	// The same connection still works for pings in subscribed mode.
	if err := sub.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sub.PUnsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	// A raw connection: commands other than (un)subscribe are refused.
	raw := harness.DialRaw(t, c.addr)
	raw.Send("SUBSCRIBE a\r\nGET a\r\nUNSUBSCRIBE\r\nGET a\r\n")
	raw.Expect("*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n")
	raw.ExpectPrefix("-ERR Can't execute 'GET'")
	raw.Expect("*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n")
	raw.Expect("$-1\r\n")
}

func TestDeadShard(t *testing.T) {
	c := newCluster(t, func(cfg *Config) { cfg.Timeout = time.Second })
	ctx := harness.Context(t, time.Minute)
	per := c.keysOnEveryShard("d:", 1)
	for _, ks := range per {
		c.put(ctx, ks[0], "v")
	}
	p := c.client(nil)
	if err := p.Get(ctx, per[1][0]).Err(); err != nil {
		t.Fatal(err)
	}
	c.shards[1].Kill()
	start := time.Now()
	wantErr(t, p.Get(ctx, per[1][0]).Err(), "ERR shard 1 unavailable")
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("dead shard answered after %v", d)
	}
	for _, s := range []int{0, 2} {
		if v, err := p.Get(ctx, per[s][0]).Result(); err != nil || v != "v" {
			t.Fatalf("shard %d with shard 1 down: %q %v", s, v, err)
		}
	}
	// MGET over all shards fails as a whole, clearly.
	wantErr(t, p.MGet(ctx, per[0][0], per[1][0]).Err(), "ERR shard 1 unavailable")
	c.shards[1].Restart()
	c.shards[1].Client().Set(ctx, per[1][0], "back", 0)
	harness.WaitFor(t, 10*time.Second, "shard 1 serves again", func() bool {
		v, _ := p.Get(ctx, per[1][0]).Result()
		return v == "back"
	})
}

func TestShutdownClosesClients(t *testing.T) {
	shard := harness.StartRedis(t)
	srv, err := New(Config{Listen: "127.0.0.1:0", Destination: harness.Destination(t, shard.Addr), Loops: *testLoops})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	raws := []*harness.RawConn{harness.DialRaw(t, srv.Addr().String()), harness.DialRaw(t, srv.Addr().String())}
	raws[0].Send("PING\r\n")
	raws[0].Expect("+PONG\r\n")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, r := range raws {
		if _, err := r.Reader.ReadByte(); err == nil {
			t.Fatal("client still open after shutdown")
		}
	}
}
