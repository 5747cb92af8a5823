package harness

import (
	"context"
	"fmt"
	"math/rand"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// LoadDataset writes n keys of mixed types into c, deterministically for a
// given seed: strings (text, binary with NUL and CRLF, integers, empty),
// lists, sets (integer and string members), sorted sets (with ±inf), hashes,
// streams (with a consumer group), hash-tagged keys that share a slot, and
// keys with a TTL. Key names are prefixed with prefix so several datasets
// can live side by side.
func LoadDataset(ctx context.Context, c redis.Cmdable, prefix string, seed int64, n int) error {
	rng := rand.New(rand.NewSource(seed))
	pipe := c.Pipeline()
	flush := func() error {
		_, err := pipe.Exec(ctx)
		return err
	}
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("%s%s:%d", prefix, kinds[i%len(kinds)], i)
		if i%10 == 3 {
			key = fmt.Sprintf("%s{tag%d}:%d", prefix, i%7, i) // slot-sharing keys
		}
		switch kinds[i%len(kinds)] {
		case "str":
			pipe.Set(ctx, key, RandString(rng, rng.Intn(100)), 0)
		case "bin":
			pipe.Set(ctx, key, string([]byte{0, '\r', '\n', byte(rng.Intn(256)), 0xff}), 0)
		case "int":
			pipe.Set(ctx, key, rng.Int63n(1<<40)-1<<39, 0)
		case "empty":
			pipe.Set(ctx, key, "", 0)
		case "list":
			for j, m := 0, 1+rng.Intn(20); j < m; j++ {
				pipe.RPush(ctx, key, RandString(rng, rng.Intn(30)))
			}
		case "set":
			for j, m := 0, 1+rng.Intn(20); j < m; j++ {
				if j%2 == 0 {
					pipe.SAdd(ctx, key, rng.Intn(1000))
				} else {
					pipe.SAdd(ctx, key, RandString(rng, 1+rng.Intn(10)))
				}
			}
		case "zset":
			for j, m := 0, 1+rng.Intn(20); j < m; j++ {
				pipe.ZAdd(ctx, key, redis.Z{Score: rng.NormFloat64() * 1000, Member: RandString(rng, 1+rng.Intn(10))})
			}
			if i%3 == 0 {
				pipe.ZAdd(ctx, key, redis.Z{Score: posInf, Member: "top"}, redis.Z{Score: negInf, Member: "bottom"})
			}
		case "hash":
			for j, m := 0, 1+rng.Intn(20); j < m; j++ {
				pipe.HSet(ctx, key, fmt.Sprint("f", j), RandString(rng, rng.Intn(40)))
			}
		case "stream":
			for j, m := 0, 1+rng.Intn(5); j < m; j++ {
				pipe.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: fmt.Sprintf("%d-%d", 1000+i, j), Values: []any{"f", RandString(rng, 8)}})
			}
			if i%2 == 0 {
				pipe.XGroupCreate(ctx, key, "g1", "0")
			}
		case "ttl":
			pipe.Set(ctx, key, RandString(rng, 10), time.Hour+time.Duration(rng.Intn(3600))*time.Second)
		}
		if i%500 == 499 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

var kinds = []string{"str", "bin", "int", "empty", "list", "set", "zset", "hash", "stream", "ttl"}

var (
	posInf = func() float64 { var z float64; return 1 / z }()
	negInf = -posInf
)

// RandString returns n characters drawn by rng from letters, digits and
// a little punctuation.
func RandString(rng *rand.Rand, n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 :-_"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rng.Intn(len(alphabet))]
	}
	return string(b)
}

// LoadBigKeys writes one big key of each type into c, named
// prefix+"big:<type>": a list, a set, a sorted set, a hash and a stream of
// n elements each, and a string of n*64 bytes; the hash has a TTL. They
// are written 1000 elements per command, so a sync must carry keys far
// larger than any one of the source's writes (a snapshot's big keys, sent
// on in parts). Deterministic.
func LoadBigKeys(ctx context.Context, c redis.Cmdable, prefix string, n int) error {
	const batch = 1000
	pipe := c.Pipeline()
	for lo := 0; lo < n; lo += batch {
		hi := min(lo+batch, n)
		var list, set, hash []any
		var zs []redis.Z
		for i := lo; i < hi; i++ {
			list = append(list, fmt.Sprint("e", i))
			set = append(set, fmt.Sprint("m", i))
			hash = append(hash, fmt.Sprint("f", i), fmt.Sprint("v", i))
			zs = append(zs, redis.Z{Score: float64(i) / 3, Member: fmt.Sprint("z", i)})
		}
		pipe.RPush(ctx, prefix+"big:list", list...)
		pipe.SAdd(ctx, prefix+"big:set", set...)
		pipe.HSet(ctx, prefix+"big:hash", hash...)
		pipe.ZAdd(ctx, prefix+"big:zset", zs...)
		for i := lo; i < hi; i++ {
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: prefix + "big:stream", ID: fmt.Sprintf("%d-1", i+1), Values: []any{"i", i}})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
	}
	pipe.Expire(ctx, prefix+"big:hash", 2*time.Hour)
	pipe.Set(ctx, prefix+"big:string", strings.Repeat("0123456789abcdef", n*4), 0)
	_, err := pipe.Exec(ctx)
	return err
}
