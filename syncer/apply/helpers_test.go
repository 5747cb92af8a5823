package apply

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/pool"
)

// fixtureDir holds the RDB fixtures (testdata/README.md); tests fail when it is missing.
const fixtureDir = "../../testdata/rdb"

// cluster is a destination of real redis-servers for a test.
type cluster struct {
	servers []*harness.Redis
	dest    *destination.Destination
}

func startCluster(t testing.TB, n int, extra ...string) *cluster {
	t.Helper()
	c := &cluster{servers: harness.StartServers(t, n, extra...)}
	c.dest = harness.DestinationWith(t, destination.Config{Pool: pool.Config{RetryBackoff: 20 * time.Millisecond}}, harness.Addrs(c.servers)...)
	return c
}

// client returns the go-redis client of the shard that owns key, in db.
func (c *cluster) client(key string, db int) *redis.Client {
	return c.servers[c.dest.Map().ShardOf([]byte(key))].ClientDB(db)
}

func (c *cluster) clients(db int) []*redis.Client { return harness.Clients(c.servers, db) }

func (c *cluster) flush(t testing.TB, ctx context.Context) {
	t.Helper()
	if err := FlushAll(ctx, c.dest); err != nil {
		t.Fatal(err)
	}
}

// fixtures lists the *-alltypes.rdb files, failing when there are none.
func fixtures(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(fixtureDir, "*-alltypes.rdb"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures in %s (err %v): the fixtures live in testdata/rdb of the repository", fixtureDir, err)
	}
	return files
}

func loadFile(t testing.TB, ctx context.Context, a *Applier, path string) Stats {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := a.LoadSnapshot(ctx, f)
	if err != nil {
		t.Fatalf("LoadSnapshot(%s): %v", filepath.Base(path), err)
	}
	return st
}

func mustOpen(t testing.TB, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
