package apply

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/syncer/rdb"
)

// bigRDB writes big values into a real redis-server and returns it with
// the path of its SAVEd dump.rdb: a 300k-element list, a 20 MB string, a
// 100k-field hash and a 50k-member zset.
func bigRDB(t *testing.T, ctx context.Context) (*harness.Redis, string) {
	t.Helper()
	src := harness.StartRedis(t)
	c := src.Client()
	pipe := c.Pipeline()
	for i := 0; i < 300_000; i += 10_000 {
		vals := make([]any, 10_000)
		for j := range vals {
			vals[j] = fmt.Sprintf("e%06d", i+j)
		}
		pipe.RPush(ctx, "big:list", vals...)
	}
	for i := 0; i < 100_000; i += 10_000 {
		var fv []any
		for j := i; j < i+10_000; j++ {
			fv = append(fv, fmt.Sprintf("f%d", j), j)
		}
		pipe.HSet(ctx, "big:hash", fv...)
	}
	for i := 0; i < 50_000; i += 10_000 {
		var zs []redis.Z
		for j := i; j < i+10_000; j++ {
			zs = append(zs, redis.Z{Score: float64(j) / 7, Member: fmt.Sprint("m", j)})
		}
		pipe.ZAdd(ctx, "big:zset", zs...)
	}
	// 20 MB of text that does not compress to nothing.
	var sb strings.Builder
	for i := 0; sb.Len() < 20<<20; i++ {
		fmt.Fprintf(&sb, "%08x", uint32(i)*2654435761)
	}
	pipe.Set(ctx, "big:string", sb.String(), 0)
	pipe.PExpireAt(ctx, "big:list", time.UnixMilli(4102444800000))
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	return src, filepath.Join(src.Dir, "dump.rdb")
}

// TestBigValues loads values far over the batch size: decoded (forced, and
// because they exceed MaxRawPayload), in chunks whose pipelines stay
// bounded, in order.
func TestBigValues(t *testing.T) {
	ctx := harness.Context(t, 2*time.Minute)
	src, path := bigRDB(t, ctx)
	c := startCluster(t, 3)
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"force-decode", Options{ForceDecode: true}},
		{"over-max-raw", Options{RDB: rdb.Options{MaxRawPayload: 1 << 20}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.flush(t, ctx)
			opts := tc.opts
			opts.BatchBytes = 256 << 10
			opts.RDB.ChunkBytes = 128 << 10
			opts.RDB.ChunkElems = 2000
			a := New(c.dest, opts)
			st := loadFile(t, ctx, a, path)
			// The three values over 1 MiB are decoded; the zset fits in a
			// RESTORE unless decoding is forced.
			if st.KeysDecoded+st.KeysRestored != 4 || st.KeysDecoded < 3 || opts.ForceDecode && st.KeysDecoded != 4 {
				t.Errorf("stats %+v: want the big values decoded", st)
			}
			// A pipeline holds at most BatchBytes plus one chunk's command,
			// or one RESTORE of up to MaxRawPayload.
			bound := int64(max(opts.BatchBytes+2*opts.RDB.ChunkBytes, opts.RDB.MaxRawPayload+64<<10))
			if max := a.maxBatch.Load(); max > bound {
				t.Errorf("largest pipeline %d bytes, bound %d", max, bound)
			}
			t.Logf("stats %+v, largest pipeline %d bytes", st, a.maxBatch.Load())
			harness.RequireEqual(t, ctx, []*redis.Client{src.Client()}, c.clients(0), harness.CompareOptions{})
		})
	}
}
