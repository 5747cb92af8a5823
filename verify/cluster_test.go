package verify

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/internal/harness"
)

// TestVerifyClusterDestination: a Redis Cluster destination (Open) is
// verified group by group with its live map; source databases other than
// 0 are compared with database 0 through DBMap, as the syncer's
// destination.db_map maps them, and a dropped one is left out.
func TestVerifyClusterDestination(t *testing.T) {
	ctx := harness.Context(t, 3*time.Minute)
	src := harness.StartServers(t, 1)[0]
	c := harness.StartCluster(t, 3, 0)
	must(t, harness.LoadDataset(ctx, src.Client(), "a:", 1, 1500))
	must(t, harness.LoadDataset(ctx, src.ClientDB(2), "db2:", 2, 300))
	must(t, harness.LoadDataset(ctx, src.ClientDB(5), "db5:", 5, 100)) // dropped
	cc := c.Client()
	for _, db := range []int{0, 2} {
		copyToCluster(t, ctx, src.ClientDB(db), cc)
	}
	d, err := destination.Open(ctx, destination.Config{Shards: []destination.Shard{{Addr: c.Nodes[1].Addr}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if !d.Cluster() {
		t.Fatal("not opened as a cluster")
	}
	cfg := Config{RecheckDelay: -1, Destination: d, Sources: []Endpoint{{Name: "src", Addr: src.Addr}},
		DBMap: map[int]int{2: 0, 5: DBDrop}}
	rep := run(t, ctx, cfg)
	srcKeys := src.Client().DBSize(ctx).Val() + src.ClientDB(2).DBSize(ctx).Val()
	if !rep.OK() || rep.Compared != srcKeys || rep.Equal != srcKeys || rep.Shards != 3 || rep.DestinationKeys != srcKeys {
		t.Fatalf("equal data: %+v (source keys %d)", rep, srcKeys)
	}

	// One value changed, one key gone, one extra, on the cluster.
	var changed, gone string
	iter := src.ClientDB(2).Scan(ctx, 0, "db2:*", 100).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		if typ := src.ClientDB(2).Type(ctx, k).Val(); typ == "string" && changed == "" {
			changed = k
		} else if gone == "" && k != changed {
			gone = k
		}
	}
	must(t, cc.Set(ctx, changed, "different", redis.KeepTTL).Err())
	must(t, cc.Del(ctx, gone).Err())
	must(t, cc.Set(ctx, "extra:key", "x", 0).Err())
	rep = run(t, ctx, cfg)
	if rep.Value != 1 || rep.Missing != 1 || rep.Extra != 1 || rep.Different() != 3 {
		t.Fatalf("after changes: %+v", rep)
	}

	// Without the map, source database 2 cannot be read on the cluster.
	cfg.DBMap = nil
	if _, err := Run(ctx, cfg); err == nil || !strings.Contains(err.Error(), "source database 2 needs mapping to 0 or dropping") {
		t.Fatalf("database 2 compared with a cluster without DBMap: %v", err)
	}
}

// copyToCluster restores every key of src onto the cluster, with its TTL.
func copyToCluster(t *testing.T, ctx context.Context, src *redis.Client, cc *redis.ClusterClient) {
	t.Helper()
	iter := src.Scan(ctx, 0, "", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		dump, err := src.Dump(ctx, k).Result()
		must(t, err)
		ttl, err := src.PTTL(ctx, k).Result()
		must(t, err)
		if ttl < 0 {
			ttl = 0
		}
		must(t, cc.RestoreReplace(ctx, k, ttl, dump).Err())
	}
	must(t, iter.Err())
}
