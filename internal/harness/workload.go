package harness

import (
	"context"
	"fmt"
	"math/rand"
	"time"

	"github.com/redis/go-redis/v9"
)

// Workload is a deterministic random stream of writes for one source,
// covering each type's write commands, INCR counters, MULTI/EXEC, Lua
// scripts (keys in one slot), EXPIRE/PERSIST, streams with groups, binary
// values and writes to another database. Counters records how often each
// counter key was incremented, so a replica's counters can be checked
// exactly.
type Workload struct {
	Prefix   string // key prefix, to keep several sources' keys disjoint
	Seed     int64
	DB       int            // the other database written to (besides 0); 0 disables
	Counters map[string]int // counter key → expected value
	// Cluster keeps multi-key commands in one slot (MSET), for a Redis
	// Cluster client.
	Cluster bool
}

// Run issues n operations against c (database 0) and, when DB is set,
// against a client for that database. It stops early, with ctx's error,
// when ctx ends.
func (w *Workload) Run(ctx context.Context, c redis.Cmdable, other *redis.Client, n int) error {
	if w.Counters == nil {
		w.Counters = map[string]int{}
	}
	rng := rand.New(rand.NewSource(w.Seed))
	p := w.Prefix
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := fmt.Sprintf("%sw:%d", p, rng.Intn(200))
		var err error
		switch op := rng.Intn(20); op {
		case 0, 1:
			ck := fmt.Sprintf("%scounter:%d", p, rng.Intn(10))
			w.Counters[ck]++
			err = c.Incr(ctx, ck).Err()
		case 2:
			err = c.Set(ctx, k+":s", RandString(rng, rng.Intn(50)), 0).Err()
		case 3:
			err = c.Set(ctx, k+":bin", string([]byte{0, '\r', '\n', byte(i), 0xff}), 0).Err()
		case 4:
			err = c.RPush(ctx, k+":l", RandString(rng, 5), RandString(rng, 5)).Err()
		case 5:
			err = c.LPop(ctx, k+":l").Err()
		case 6:
			err = c.SAdd(ctx, k+":set", rng.Intn(50), RandString(rng, 3)).Err()
		case 7:
			err = c.SRem(ctx, k+":set", rng.Intn(50)).Err()
		case 8:
			err = c.ZAdd(ctx, k+":z", redis.Z{Score: float64(rng.Intn(1000)) / 7, Member: RandString(rng, 4)}).Err()
		case 9:
			err = c.ZIncrBy(ctx, k+":z", 1.5, "m").Err()
		case 10:
			err = c.HSet(ctx, k+":h", RandString(rng, 3), RandString(rng, 10)).Err()
		case 11:
			err = c.HIncrBy(ctx, k+":h", "n", 1).Err()
		case 12:
			err = c.Expire(ctx, k+":s", time.Hour).Err()
		case 13:
			err = c.Persist(ctx, k+":s").Err()
		case 14:
			err = c.Del(ctx, k+":l").Err()
		case 15:
			// MULTI/EXEC on keys of one slot.
			tag := fmt.Sprintf("%s{tx%d}", p, rng.Intn(5))
			ck := tag + ":counter"
			w.Counters[ck]++
			_, err = c.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
				pipe.Incr(ctx, ck)
				pipe.Set(ctx, tag+":last", i, 0)
				pipe.LPush(ctx, tag+":log", i)
				return nil
			})
		case 16:
			// A Lua script on keys of one slot (replicated as its effects).
			tag := fmt.Sprintf("%s{lua%d}", p, rng.Intn(5))
			ck := tag + ":counter"
			w.Counters[ck]++
			err = c.Eval(ctx, "redis.call('INCR', KEYS[1]); return redis.call('SET', KEYS[2], ARGV[1])",
				[]string{ck, tag + ":v"}, i).Err()
		case 17:
			sk := fmt.Sprintf("%sstream:%d", p, rng.Intn(3))
			err = c.XAdd(ctx, &redis.XAddArgs{Stream: sk, Values: []any{"i", i}}).Err()
			if err == nil && rng.Intn(4) == 0 {
				_ = c.XGroupCreateMkStream(ctx, sk, "g", "0").Err() // BUSYGROUP after the first
				err = c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "c1", Streams: []string{sk, ">"}, Count: 2, Block: -1}).Err()
			}
		case 18:
			k2 := fmt.Sprintf("%sw:%d:m2", p, rng.Intn(200))
			if w.Cluster {
				k2 = "{" + k + "}:m2"
				k = "{" + k + "}"
			}
			err = c.MSet(ctx, k+":m1", i, k2, i).Err()
		case 19:
			if other != nil {
				ck := fmt.Sprintf("%sdb%d:counter", p, w.DB)
				w.Counters[fmt.Sprintf("db%d/%s", w.DB, ck)]++
				err = other.Incr(ctx, ck).Err()
			}
		}
		if err != nil && err != redis.Nil {
			return fmt.Errorf("workload op %d: %w", i, err)
		}
	}
	return nil
}

// CheckCounters compares every counter with its expected value on the
// clients of a side (db 0 keys on dbs[0], "dbN/" keys on dbs[N]). It
// returns the first difference.
func (w *Workload) CheckCounters(ctx context.Context, dbs map[int][]*redis.Client) error {
	for key, want := range w.Counters {
		db, k := 0, key
		var n int
		if _, err := fmt.Sscanf(key, "db%d/", &n); err == nil {
			db = n
			k = key[len(fmt.Sprintf("db%d/", n)):]
		}
		found := false
		for _, c := range dbs[db] {
			v, err := c.Get(ctx, k).Int()
			if err == redis.Nil {
				continue
			}
			if err != nil {
				return err
			}
			found = true
			if v != want {
				return fmt.Errorf("counter %s = %d, want %d", key, v, want)
			}
		}
		if !found {
			return fmt.Errorf("counter %s missing", key)
		}
	}
	return nil
}
