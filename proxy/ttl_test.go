package proxy

import (
	"bufio"
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/resp"
)

// TestTTLGrace: the shards hold TTLs with the grace; the proxy answers
// the source's.
func TestTTLGrace(t *testing.T) {
	const grace = 10 * time.Minute
	c := newCluster(t, func(cfg *Config) { cfg.TTLGrace = grace })
	ctx := harness.Context(t, time.Minute)
	exp := time.Now().Add(time.Hour)
	if err := c.shard("k").Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	c.shard("k").PExpireAt(ctx, "k", exp.Add(grace))
	// Past its source TTL, its DEL not arrived yet.
	c.shard("late").Set(ctx, "late", "v", grace-2*time.Second)
	c.put(ctx, "nottl", "v")

	cl := c.client(nil)
	pipe := cl.Pipeline()
	ttl, pttl := pipe.TTL(ctx, "k"), pipe.PTTL(ctx, "k")
	et, pet := pipe.ExpireTime(ctx, "k"), pipe.Do(ctx, "PEXPIRETIME", "k")
	lateTTL, latePTTL, lateET := pipe.TTL(ctx, "late"), pipe.PTTL(ctx, "late"), pipe.Do(ctx, "PEXPIRETIME", "late")
	noTTL, missing := pipe.PTTL(ctx, "nottl"), pipe.TTL(ctx, "missing")
	hidden := pipe.PTTL(ctx, "__replicaof:x")
	bad := pipe.Do(ctx, "TTL", "a", "b")
	get := pipe.Get(ctx, "k")
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil && bad.Err() == nil {
		t.Fatal(err)
	}
	near := func(name string, got, want, tol time.Duration) {
		t.Helper()
		if got < want-tol || got > want+tol {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	near("TTL", ttl.Val(), time.Hour, time.Second)
	near("PTTL", pttl.Val(), time.Hour, time.Second)
	near("EXPIRETIME", et.Val(), time.Duration(exp.Unix())*time.Second, time.Second)
	pv, _ := pet.Int64()
	near("PEXPIRETIME", time.Duration(pv)*time.Millisecond, time.Duration(exp.UnixMilli())*time.Millisecond, time.Second)
	if lateTTL.Val() != 0 || latePTTL.Val() != 0 {
		t.Errorf("late: TTL %v PTTL %v, want 0 and 0", lateTTL.Val(), latePTTL.Val())
	}
	lv, _ := lateET.Int64()
	near("late PEXPIRETIME", time.Duration(lv)*time.Millisecond, time.Duration(time.Now().Add(-2*time.Second).UnixMilli())*time.Millisecond, time.Second)
	if noTTL.Val() != -1 || missing.Val() != -2 || hidden.Val() != -2 {
		t.Errorf("nottl %v missing %v hidden %v, want -1 -2 -2", noTTL.Val(), missing.Val(), hidden.Val())
	}
	wantErr(t, bad.Err(), "ERR wrong number of arguments for 'ttl'")
	if get.Val() != "v" {
		t.Errorf("GET after the TTL reads: %q", get.Val())
	}

	// Inside MULTI: each TTL read in EXEC's reply.
	var txTTL, txPTTL, txMissing *redis.DurationCmd
	var txGet *redis.StringCmd
	if _, err := cl.TxPipelined(ctx, func(p redis.Pipeliner) error {
		txTTL, txGet, txPTTL, txMissing = p.TTL(ctx, "k"), p.Get(ctx, "k"), p.PTTL(ctx, "k"), p.PTTL(ctx, "missing")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	near("TTL in MULTI", txTTL.Val(), time.Hour, time.Second)
	near("PTTL in MULTI", txPTTL.Val(), time.Hour, time.Second)
	if txGet.Val() != "v" || txMissing.Val() != -2 {
		t.Errorf("MULTI: GET %q, PTTL of a missing key %v", txGet.Val(), txMissing.Val())
	}

	// Without a grace the replies are the shard's.
	c2 := newCluster(t, nil)
	c2.shard("k").Set(ctx, "k", "v", time.Hour)
	near("PTTL without grace", c2.client(nil).PTTL(ctx, "k").Val(), time.Hour, time.Second)
}

// TestTTLReplyFields checks the per-field arrays of HTTL and friends
// (hash-field TTLs need Redis 7.4+ shards).
func TestTTLReplyFields(t *testing.T) {
	c := &session{s: &Server{cfg: Config{TTLGrace: 5 * time.Second}}}
	ms := func(v int64) string { return ":" + strconv.FormatInt(v, 10) + "\r\n" }
	reply := []byte("*5\r\n:-2\r\n:-1\r\n" + ms(6500) + ms(4000) + ms(1700000005000))
	cases := []struct {
		mode ttlMode
		want string
	}{
		{ttlFields, "*5\r\n:-2\r\n:-1\r\n:1500\r\n:0\r\n:1700000000000\r\n"},
		{ttlFields | ttlSeconds, "*5\r\n:-2\r\n:-1\r\n:2\r\n:0\r\n:1700000000\r\n"},
	}
	for _, tc := range cases {
		if got := string(c.ttlReply([]byte("x"), reply, tc.mode)); got != "x"+tc.want {
			t.Errorf("mode %d: %q, want %q", tc.mode, got, tc.want)
		}
	}
	for _, r := range []string{"-ERR unknown command\r\n", "*0\r\n", "*-1\r\n", "$1\r\nx\r\n"} {
		if got := string(c.ttlReply(nil, []byte(r), ttlFields)); got != r {
			t.Errorf("%q became %q", r, got)
		}
	}
	if got := string(c.ttlReply(nil, []byte("*2\r\n:1\r\n"), ttlFields)); got != "-ERR unexpected reply from shard\r\n" {
		t.Errorf("truncated array: %q", got)
	}
	// Keys: TTL rounds to the nearest second like Redis.
	if got := ungrace(5000+1499, 5000, ttlSeconds); got != 1 {
		t.Errorf("TTL of 1499 ms = %d", got)
	}
	if got := ungrace(5000+1500, 5000, ttlSeconds); got != 2 {
		t.Errorf("TTL of 1500 ms = %d", got)
	}
}

// FuzzTTLReply adjusts arbitrary (well-framed) shard replies: one reply
// in, exactly one well-framed reply out, never a panic.
func FuzzTTLReply(f *testing.F) {
	for _, s := range []string{
		":-2\r\n", ":-1\r\n", ":0\r\n", ":5000\r\n", ":1700000005000\r\n", "-ERR x\r\n",
		"*3\r\n:-2\r\n:-1\r\n:6500\r\n", "*0\r\n", "*-1\r\n", "*2\r\n$1\r\nx\r\n:9\r\n", "*1\r\n*1\r\n:7\r\n",
	} {
		f.Add([]byte(s), uint8(0))
	}
	c := &session{s: &Server{cfg: Config{TTLGrace: 5 * time.Second}}}
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		reply, err := resp.ReadReply(bufio.NewReader(bytes.NewReader(data)), nil, resp.Limits{})
		if err != nil {
			return
		}
		out := c.ttlReply([]byte("+prefix\r\n"), reply, ttlMode(mode&7))
		if !bytes.HasPrefix(out, []byte("+prefix\r\n")) {
			t.Fatalf("the preceding reply was overwritten: %q", out)
		}
		out = out[len("+prefix\r\n"):]
		again, err := resp.ReadReply(bufio.NewReader(bytes.NewReader(out)), nil, resp.Limits{})
		if err != nil || len(again) != len(out) {
			t.Fatalf("%q became %q, not one reply: %v", reply, out, err)
		}
	})
}
