package harness

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The comparator must see a replica made by Redis itself as equal, and
// must notice each kind of difference: this is what every later test
// leans on.
func TestCompareAgainstNativeReplica(t *testing.T) {
	ctx := Context(t, time.Minute)
	src := StartRedis(t)
	dst := StartRedis(t)
	if err := LoadDataset(ctx, src.Client(), "", 1, 2000); err != nil {
		t.Fatal(err)
	}
	if err := dst.Client().ReplicaOf(ctx, "127.0.0.1", strconv.Itoa(src.Port)).Err(); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, 30*time.Second, "native replica catches up", func() bool {
		a, _ := src.Client().DBSize(ctx).Result()
		b, _ := dst.Client().DBSize(ctx).Result()
		info, _ := dst.Client().Info(ctx, "replication").Result()
		return a == b && strings.Contains(info, "master_link_status:up")
	})
	a, b := []*redis.Client{src.Client()}, []*redis.Client{dst.Client()}
	d, err := Compare(ctx, a, b, CompareOptions{})
	if err != nil || !d.Empty() || d.Equal != 2000 {
		t.Fatalf("native replica: %v %v", d, err)
	}
	if err := dst.Client().ReplicaOf(ctx, "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}

	// Each kind of difference is reported.
	dc := dst.Client()
	dc.Set(ctx, "str:0", "changed", 0)  // value
	dc.Del(ctx, "list:4")               // missing
	dc.Set(ctx, "extra", "x", 0)        // extra
	dc.Expire(ctx, "hash:7", time.Hour) // TTL presence
	dc.SAdd(ctx, "set:5", "new-member") // set value
	dc.XAdd(ctx, &redis.XAddArgs{Stream: "stream:8", Values: []any{"a", "b"}})
	d, err = Compare(ctx, a, b, CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Missing != 1 || d.Extra != 1 || d.Changed != 4 {
		t.Fatalf("differences not all found: %s", d)
	}
	// Skip hides keys.
	d, _ = Compare(ctx, a, b, CompareOptions{Skip: func(k string) bool { return k == "extra" }})
	if d.Extra != 0 {
		t.Fatalf("Skip ignored: %s", d)
	}
}

func TestCompareUnionOfShards(t *testing.T) {
	ctx := Context(t, time.Minute)
	one, s1, s2 := StartRedis(t), StartRedis(t), StartRedis(t)
	if err := LoadDataset(ctx, one.Client(), "", 7, 300); err != nil {
		t.Fatal(err)
	}
	// Spread the same dataset over two servers by loading halves.
	if err := LoadDataset(ctx, s1.Client(), "", 7, 300); err != nil {
		t.Fatal(err)
	}
	keys, _ := s1.Client().Keys(ctx, "*").Result()
	for i, k := range keys {
		if i%2 == 0 {
			if err := s1.Client().Migrate(ctx, "127.0.0.1", strconv.Itoa(s2.Port), k, 0, 5*time.Second).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	RequireEqual(t, ctx, []*redis.Client{one.Client()}, []*redis.Client{s1.Client(), s2.Client()}, CompareOptions{})
	// A key on both shards of one side is an error, not a pass.
	s2.Client().Set(ctx, keys[1], "dup", 0)
	if _, err := Compare(ctx, []*redis.Client{one.Client()}, []*redis.Client{s1.Client(), s2.Client()}, CompareOptions{}); err == nil {
		t.Fatal("duplicate key across shards not reported")
	}
}

func TestRestartKeepsPort(t *testing.T) {
	ctx := context.Background()
	r := StartRedis(t, "--appendonly", "yes")
	c := r.Client()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	r.Restart()
	WaitFor(t, 10*time.Second, "value survives restart with AOF", func() bool {
		v, err := c.Get(ctx, "k").Result()
		return err == nil && v == "v"
	})
}
