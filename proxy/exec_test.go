package proxy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/replicaof/replicaof/internal/harness"
)

// TestContinuationOrder pipelines writes between commands the executor
// runs as continuations (DBSIZE with its hidden-key listing, INFO
// keyspace, EXEC, FLUSHDB, RANDOMKEY, PUBSUB NUMPAT) in one batch: each
// must see exactly the writes planned before it and none after it.
func TestContinuationOrder(t *testing.T) {
	c := newCluster(t, func(cfg *Config) { cfg.AllowWrites = true })
	ctx := harness.Context(t, time.Minute)
	// Enough keys per shard that listing the hidden keys (SCAN MATCH …
	// COUNT 1000) takes several rounds.
	const bulk = 2500
	for i, keys := range c.keysOnEveryShard("bulk:", bulk) {
		pipe := c.shards[i].Client().Pipeline()
		for _, k := range keys {
			pipe.Set(ctx, k, "x", 0)
		}
		pipe.Set(ctx, fmt.Sprintf("__replicaof:cp:%d", i), "x", 0)
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	k := c.keysOnEveryShard("k:", 1) // one key per shard
	p := c.client(nil)
	var (
		sizes   []*redis.IntCmd
		info    *redis.StringCmd
		get     *redis.StringCmd
		exec    *redis.Cmd
		random  *redis.StringCmd
		numpat  *redis.Cmd
		flushed *redis.Cmd
	)
	_, err := p.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Set(ctx, k[0][0], "1", 0)
		sizes = append(sizes, pipe.DBSize(ctx)) // bulk*3 + 1
		pipe.Set(ctx, k[1][0], "1", 0)
		sizes = append(sizes, pipe.DBSize(ctx)) // + 2
		pipe.Do(ctx, "MULTI")
		pipe.Do(ctx, "SET", k[2][0], "1")
		exec = pipe.Do(ctx, "EXEC")
		sizes = append(sizes, pipe.DBSize(ctx)) // + 3
		info = pipe.Info(ctx, "keyspace")
		get = pipe.Get(ctx, k[2][0])
		flushed = pipe.Do(ctx, "FLUSHDB")
		sizes = append(sizes, pipe.DBSize(ctx)) // 0: hidden keys survive, uncounted
		random = pipe.RandomKey(ctx)
		pipe.Set(ctx, k[0][0], "2", 0)
		numpat = pipe.Do(ctx, "PUBSUB", "NUMPAT")
		sizes = append(sizes, pipe.DBSize(ctx)) // 1
		return nil
	})
	if err != nil && err != redis.Nil {
		t.Fatal(err)
	}
	want := []int64{3*bulk + 1, 3*bulk + 2, 3*bulk + 3, 0, 1}
	for i, s := range sizes {
		if s.Err() != nil || s.Val() != want[i] {
			t.Errorf("DBSIZE %d = %d %v, want %d", i, s.Val(), s.Err(), want[i])
		}
	}
	if got := fmt.Sprint(exec.Val()); exec.Err() != nil || got != "[OK]" {
		t.Errorf("EXEC = %s %v", got, exec.Err())
	}
	if want := fmt.Sprintf("db0:keys=%d,", 3*bulk+3); !strings.Contains(info.Val(), want) {
		t.Errorf("INFO keyspace = %q, want %s", info.Val(), want)
	}
	if get.Val() != "1" {
		t.Errorf("GET after EXEC = %q %v", get.Val(), get.Err())
	}
	if flushed.Err() != nil {
		t.Errorf("FLUSHDB: %v", flushed.Err())
	}
	if random.Err() != redis.Nil {
		t.Errorf("RANDOMKEY after FLUSHDB = %q %v, want nil", random.Val(), random.Err())
	}
	if n, err := numpat.Int64(); err != nil || n != 0 {
		t.Errorf("PUBSUB NUMPAT = %d %v", n, err)
	}
	for i := range c.shards {
		if n := c.shards[i].Client().Exists(ctx, fmt.Sprintf("__replicaof:cp:%d", i)).Val(); n != 1 {
			t.Errorf("shard %d lost its hidden key", i)
		}
	}
}
