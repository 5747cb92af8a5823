package proxy

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replicaof/replicaof/internal/harness"
)

func TestFlushKeepsInternalKeys(t *testing.T) {
	c := newCluster(t, func(cfg *Config) { cfg.AllowWrites = true })
	ctx := harness.Context(t, time.Minute)
	per := c.keysOnEveryShard("f:", 3)
	for s, sh := range c.shards {
		cl := sh.Client()
		cl.Set(ctx, "__replicaof:ckpt:x", "ck"+per[s][0], 0)
		cl.Set(ctx, "__replicaof:ttl", "t", time.Hour)
		for _, k := range per[s] {
			c.put(ctx, k, "v")
		}
		db2 := sh.ClientDB(2)
		db2.Set(ctx, "other", "x", 0)
		db2.Set(ctx, "__replicaof:db2", "y", 0)
	}
	p := c.client(nil)
	if n, err := p.DBSize(ctx).Result(); err != nil || n != 9 {
		t.Fatalf("DBSIZE = %d %v", n, err)
	}
	if err := p.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := p.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("DBSIZE after FLUSHDB = %d %v", n, err)
	}
	for s, sh := range c.shards {
		cl := sh.Client()
		if v, _ := cl.Get(ctx, "__replicaof:ckpt:x").Result(); v != "ck"+per[s][0] {
			t.Fatalf("shard %d lost its checkpoint: %q", s, v)
		}
		if ttl, _ := cl.TTL(ctx, "__replicaof:ttl").Result(); ttl <= 0 || ttl > time.Hour {
			t.Fatalf("shard %d: TTL %v", s, ttl)
		}
		if n, _ := cl.DBSize(ctx).Result(); n != 2 {
			t.Fatalf("shard %d keeps %d keys", s, n)
		}
		if n, _ := sh.ClientDB(2).DBSize(ctx).Result(); n != 2 {
			t.Fatalf("FLUSHDB reached db 2 of shard %d", s)
		}
	}
	if err := p.Do(ctx, "FLUSHALL", "ASYNC").Err(); err != nil {
		t.Fatal(err)
	}
	for s, sh := range c.shards {
		db2 := sh.ClientDB(2)
		if n, _ := db2.DBSize(ctx).Result(); n != 1 {
			t.Fatalf("shard %d db 2 keeps %d keys", s, n)
		}
		if v, _ := db2.Get(ctx, "__replicaof:db2").Result(); v != "y" {
			t.Fatalf("shard %d db 2 lost its internal key", s)
		}
	}
	wantErr(t, p.Do(ctx, "FLUSHDB", "NOW").Err(), "ERR syntax error")
	ro := newClusterOn(t, c, nil)
	wantErr(t, ro.FlushAll(ctx).Err(), "READONLY")
}

// TestDBSizeExactAfterFlush: shards flushed behind the proxy (as a
// replicated FLUSHALL does) show at once in DBSIZE.
func TestDBSizeExactAfterFlush(t *testing.T) {
	c := newCluster(t, nil)
	ctx := harness.Context(t, time.Minute)
	p := c.client(nil)
	for _, sh := range c.shards {
		sh.Client().Set(ctx, "__replicaof:ckpt", "x", 0)
		sh.Client().Set(ctx, "data", "x", 0)
	}
	if n, _ := p.DBSize(ctx).Result(); n != 3 {
		t.Fatalf("DBSIZE = %d", n)
	}
	for _, sh := range c.shards {
		sh.Client().FlushAll(ctx)
	}
	sh0 := c.shards[0].Client()
	sh0.Set(ctx, "one", "1", 0)
	if n, _ := p.DBSize(ctx).Result(); n != 1 {
		t.Fatalf("DBSIZE right after the flush = %d, want 1", n)
	}
}

func TestServerCommands(t *testing.T) {
	c := newCluster(t, nil)
	ctx := harness.Context(t, time.Minute)
	p := c.client(nil)

	t.Run("time", func(t *testing.T) {
		tm, err := p.Time(ctx).Result()
		if err != nil || time.Since(tm).Abs() > time.Minute {
			t.Fatalf("TIME = %v %v", tm, err)
		}
	})
	t.Run("pubsub", func(t *testing.T) {
		chans := c.keysOnEveryShard("ps:", 1)
		sub := c.client(nil).Subscribe(ctx, chans[0][0], chans[1][0], chans[2][0])
		defer sub.Close()
		psub := c.client(nil).PSubscribe(ctx, "pat.*")
		defer psub.Close()
		for i := 0; i < 3; i++ {
			if _, err := sub.Receive(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := psub.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		got, err := p.PubSubNumSub(ctx, chans[0][0], chans[1][0], chans[2][0], "none").Result()
		if err != nil || got[chans[0][0]] != 1 || got[chans[1][0]] != 1 || got[chans[2][0]] != 1 || got["none"] != 0 {
			t.Fatalf("PUBSUB NUMSUB = %v %v", got, err)
		}
		if n, err := p.PubSubNumPat(ctx).Result(); err != nil || n != 1 {
			t.Fatalf("PUBSUB NUMPAT = %d %v", n, err)
		}
		chs, err := p.PubSubChannels(ctx, "ps:*").Result()
		if err != nil || len(chs) != 3 {
			t.Fatalf("PUBSUB CHANNELS = %v %v", chs, err)
		}
	})
	t.Run("client reply", func(t *testing.T) {
		c.put(ctx, "r", "1")
		raw := harness.DialRaw(t, c.addr)
		raw.Send("CLIENT REPLY OFF\r\nGET r\r\nPING\r\nCLIENT REPLY ON\r\nGET r\r\n")
		raw.Expect("+OK\r\n$1\r\n1\r\n")
		raw.Send("CLIENT REPLY SKIP\r\nGET r\r\nPING\r\n")
		raw.Expect("+PONG\r\n")
		raw.Send("CLIENT NO-EVICT on\r\nCLIENT NO-TOUCH on\r\n")
		raw.Expect("+OK\r\n")
		raw.ExpectPrefix("-ERR CLIENT NO-TOUCH is not supported by the proxy")
	})
}

func infoFields(s string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(s, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
			m[k] = v
		}
	}
	return m
}

// TestInfoMerged: INFO carries the fields monitoring tools read, merged
// over the shards.
func TestInfoMerged(t *testing.T) {
	c := newCluster(t, nil, "--save", "3600 1000000")
	ctx := harness.Context(t, time.Minute)
	per := c.keysOnEveryShard("i:", 5)
	for _, ks := range per {
		for _, k := range ks {
			c.put(ctx, k, strings.Repeat("x", 1000))
		}
	}
	p := c.client(nil)
	text, err := p.Info(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	got := infoFields(text)
	for _, f := range []string{"used_memory", "used_memory_human", "used_cpu_user", "used_cpu_sys", "mem_allocator",
		"rdb_changes_since_last_save", "used_memory_peak", "maxmemory_policy", "rdb_last_bgsave_status",
		"keyspace_hits", "instantaneous_ops_per_sec", "redis_version", "process_id", "connected_clients", "db0"} {
		if _, ok := got[f]; !ok {
			t.Errorf("INFO lacks %s", f)
		}
	}
	var sumMem, sumChanges int64
	for _, sh := range c.shards {
		st := infoFields(sh.Client().Info(ctx, "memory", "persistence").Val())
		n, _ := strconv.ParseInt(st["used_memory"], 10, 64)
		sumMem += n
		ch, _ := strconv.ParseInt(st["rdb_changes_since_last_save"], 10, 64)
		sumChanges += ch
	}
	mem, _ := strconv.ParseInt(got["used_memory"], 10, 64)
	if mem < sumMem*9/10 || mem > sumMem*11/10 {
		t.Errorf("used_memory %d, shards sum to %d", mem, sumMem)
	}
	if ch, _ := strconv.ParseInt(got["rdb_changes_since_last_save"], 10, 64); ch != sumChanges || ch < 15 {
		t.Errorf("rdb_changes_since_last_save %d, shards sum to %d", ch, sumChanges)
	}
	if got["used_memory_human"] != humanBytes(mem) {
		t.Errorf("used_memory_human %s for %d", got["used_memory_human"], mem)
	}
	if cpu, _ := strconv.ParseFloat(got["used_cpu_user"], 64); cpu <= 0 {
		t.Errorf("used_cpu_user %s", got["used_cpu_user"])
	}
	if got["process_id"] != strconv.Itoa(os.Getpid()) {
		t.Errorf("process_id %s is not the proxy's", got["process_id"])
	}
	if got["mem_allocator"] == "" || got["rdb_last_bgsave_status"] != "ok" {
		t.Errorf("text fields: %q %q", got["mem_allocator"], got["rdb_last_bgsave_status"])
	}
	// One section alone.
	mem2 := infoFields(p.Info(ctx, "memory").Val())
	if _, ok := mem2["used_memory"]; !ok || len(mem2) < 10 {
		t.Errorf("INFO memory: %v", mem2)
	}
}

func TestMergeValue(t *testing.T) {
	cases := []struct {
		key  string
		vals []string
		want string
	}{
		{"used_memory", []string{"100", "200", "300"}, "600"},
		{"mem_fragmentation_ratio", []string{"1.00", "2.00"}, "1.50"},
		{"used_memory_peak_perc", []string{"90.00%", "100.00%"}, "95.00%"},
		{"used_cpu_sys", []string{"0.5", "0.25"}, "0.750000"},
		{"rdb_last_save_time", []string{"300", "100", "200"}, "100"},
		{"rdb_bgsave_in_progress", []string{"0", "1", "0"}, "1"},
		{"total_system_memory", []string{"64", "64"}, "64"},
		{"rdb_last_bgsave_status", []string{"ok", "err", "ok"}, "err"},
		{"mem_allocator", []string{"jemalloc-5.3.0", "libc"}, "jemalloc-5.3.0"},
	}
	for _, c := range cases {
		if got := mergeValue(c.key, c.vals); got != c.want {
			t.Errorf("%s %v: %s, want %s", c.key, c.vals, got, c.want)
		}
	}
	if humanBytes(2825016) != "2.69M" || humanBytes(600) != "600B" {
		t.Errorf("humanBytes: %s %s", humanBytes(2825016), humanBytes(600))
	}
}
