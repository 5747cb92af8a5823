package verify

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// state is what one side holds for one key: enough to compare it with the
// other side without keeping its value.
type state struct {
	typ    string // TYPE reply; "none" when the key does not exist
	ttl    bool   // the key has an expiry
	pttl   int64  // its time to live in ms when ttl
	digest uint64 // canonical value digest (see digest.go)
	bad    string // non-empty when the value could not be read consistently
}

// reader reads keys' type, TTL presence and value digest. The first chunk
// of every value of a batch travels in one pipeline; values longer than one
// chunk are then read chunk by chunk, so memory is bounded by batch × first
// chunk plus one chunk, whatever the size of a value.
type reader struct {
	first    int   // elements of each value read in the batch pipeline
	chunk    int   // elements per later read
	strFirst int64 // bytes of each string read in the batch pipeline
	strChunk int64 // bytes per later GETRANGE
}

// serverErr reports whether err is a reply of the server (including a nil
// reply) rather than a failure to talk to it.
func serverErr(err error) bool {
	var re redis.Error
	return errors.Is(err, redis.Nil) || errors.As(err, &re)
}

// execPipe runs pipe; errors the server returned for single commands stay on
// their commands, I/O errors are returned.
func execPipe(ctx context.Context, pipe redis.Pipeliner) error {
	cmds, err := pipe.Exec(ctx)
	if err == nil {
		return nil
	}
	for _, c := range cmds {
		if e := c.Err(); e != nil && !serverErr(e) {
			return e
		}
	}
	if len(cmds) == 0 {
		return err
	}
	return nil
}

// firstRead holds the batch-pipeline commands of one key.
type firstRead struct {
	str             *redis.StringCmd
	list            *redis.StringSliceCmd
	scan            *redis.ScanCmd
	card            *redis.IntCmd
	zset            *redis.ZSliceCmd
	xr, xinfo, xgrp *redis.Cmd
}

// describe returns the state of each key on c.
func (r *reader) describe(ctx context.Context, c *redis.Client, keys []string) ([]state, error) {
	out := make([]state, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	pipe := c.Pipeline()
	types := make([]*redis.StatusCmd, len(keys))
	ttls := make([]*redis.DurationCmd, len(keys))
	for i, k := range keys {
		types[i] = pipe.Type(ctx, k)
		ttls[i] = pipe.PTTL(ctx, k)
	}
	if err := execPipe(ctx, pipe); err != nil {
		return nil, err
	}
	pipe = c.Pipeline()
	reads := make([]firstRead, len(keys))
	first := int64(r.first)
	for i, k := range keys {
		if err := types[i].Err(); err != nil {
			out[i] = state{typ: "none", bad: err.Error()}
			continue
		}
		out[i].typ = types[i].Val()
		// PTTL is -1 without an expiry, -2 without the key (go-redis keeps
		// those two raw); anything else, 0 included, is an expiry.
		out[i].ttl = ttls[i].Err() == nil && ttls[i].Val() >= 0
		if out[i].ttl {
			out[i].pttl = ttls[i].Val().Milliseconds()
		}
		fr := &reads[i]
		switch out[i].typ {
		case "string":
			fr.str = pipe.GetRange(ctx, k, 0, r.strFirst-1)
		case "list":
			fr.list = pipe.LRange(ctx, k, 0, first-1)
		case "set":
			fr.scan = pipe.SScan(ctx, k, 0, "", first)
			fr.card = pipe.SCard(ctx, k)
		case "hash":
			fr.scan = pipe.HScan(ctx, k, 0, "", first)
			fr.card = pipe.HLen(ctx, k)
		case "zset":
			fr.zset = pipe.ZRangeWithScores(ctx, k, 0, first-1)
		case "stream":
			fr.xr = pipe.Do(ctx, "XRANGE", k, "-", "+", "COUNT", first)
			fr.xinfo = pipe.Do(ctx, "XINFO", "STREAM", k)
			fr.xgrp = pipe.Do(ctx, "XINFO", "GROUPS", k)
		}
	}
	if err := execPipe(ctx, pipe); err != nil {
		return nil, err
	}
	for i, k := range keys {
		if out[i].typ == "none" {
			continue
		}
		if err := r.finish(ctx, c, k, &reads[i], &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// finish completes the digest of one key from its first read, reading the
// rest of a long value chunk by chunk. Server errors (a key that changed
// type or vanished between TYPE and the read) mark the state bad; only I/O
// errors are returned.
func (r *reader) finish(ctx context.Context, c *redis.Client, key string, fr *firstRead, st *state) error {
	var err error
	switch st.typ {
	case "string":
		st.digest, err = r.stringDigest(ctx, c, key, fr.str)
	case "list":
		st.digest, err = r.listDigest(ctx, c, key, fr.list)
	case "set", "hash":
		st.digest, err = r.scanDigest(ctx, c, st.typ, key, fr.scan, fr.card)
	case "zset":
		st.digest, err = r.zsetDigest(ctx, c, key, fr.zset)
	case "stream":
		st.digest, err = r.streamDigest(ctx, c, key, fr)
	default:
		// Module types and types this version does not know: compared by
		// type only.
		st.digest = final(st.typ, 0, 0)
	}
	if err != nil {
		if !serverErr(err) {
			return err
		}
		st.bad = err.Error()
	}
	return nil
}

func (r *reader) stringDigest(ctx context.Context, c *redis.Client, key string, cmd *redis.StringCmd) (uint64, error) {
	var o ordered
	s, err := cmd.Result()
	size, want := int64(0), r.strFirst
	for {
		if err != nil {
			return 0, err
		}
		o.raw(s)
		size += int64(len(s))
		if int64(len(s)) < want {
			break
		}
		want = r.strChunk
		s, err = c.GetRange(ctx, key, size, size+want-1).Result()
	}
	return final("string", size, o.d.Sum64()), nil
}

func (r *reader) listDigest(ctx context.Context, c *redis.Client, key string, cmd *redis.StringSliceCmd) (uint64, error) {
	var o ordered
	vals, err := cmd.Result()
	want := int64(r.first)
	for {
		if err != nil {
			return 0, err
		}
		for _, v := range vals {
			o.add(v)
		}
		if int64(len(vals)) < want {
			break
		}
		want = int64(r.chunk)
		vals, err = c.LRange(ctx, key, o.n, o.n+want-1).Result()
	}
	return final("list", o.n, o.d.Sum64()), nil
}

// scanDigest digests a set (SSCAN) or hash (HSCAN) in any order. A scan may
// return an element twice when the server rehashes between calls, so the
// count is checked against SCARD/HLEN; on a difference the key is scanned
// once more, and a second difference marks it bad (it is probably being
// written, and the re-check decides).
func (r *reader) scanDigest(ctx context.Context, c *redis.Client, typ, key string, scan *redis.ScanCmd, card *redis.IntCmd) (uint64, error) {
	for attempt := 0; ; attempt++ {
		var u unordered
		vals, cursor, err := scan.Result()
		for {
			if err != nil {
				return 0, err
			}
			if typ == "set" {
				for _, m := range vals {
					u.add(m)
				}
			} else {
				for j := 0; j+1 < len(vals); j += 2 {
					u.add(vals[j], vals[j+1])
				}
			}
			if cursor == 0 {
				break
			}
			vals, cursor, err = r.scanCall(ctx, c, typ, key, cursor).Result()
		}
		n, err := card.Result()
		if err != nil {
			return 0, err
		}
		if n == u.n {
			return final(typ, u.n, u.sum), nil
		}
		if attempt == 1 {
			return 0, &unstableError{typ: typ, seen: u.n, card: n}
		}
		scan = r.scanCall(ctx, c, typ, key, 0)
		if typ == "set" {
			card = c.SCard(ctx, key)
		} else {
			card = c.HLen(ctx, key)
		}
	}
}

func (r *reader) scanCall(ctx context.Context, c *redis.Client, typ, key string, cursor uint64) *redis.ScanCmd {
	if typ == "set" {
		return c.SScan(ctx, key, cursor, "", int64(r.chunk))
	}
	return c.HScan(ctx, key, cursor, "", int64(r.chunk))
}

// unstableError is a set or hash whose scan did not see as many elements as
// its cardinality. It counts as a server-side condition: the key is marked
// bad, not the run failed.
type unstableError struct {
	typ        string
	seen, card int64
}

func (e *unstableError) Error() string {
	return fmt.Sprintf("%s changed while being read: scan saw %d elements, cardinality %d", e.typ, e.seen, e.card)
}

// RedisError makes unstableError a redis.Error for serverErr.
func (e *unstableError) RedisError() {}

func (r *reader) zsetDigest(ctx context.Context, c *redis.Client, key string, cmd *redis.ZSliceCmd) (uint64, error) {
	var o ordered
	var num []byte
	zs, err := cmd.Result()
	want, n := int64(r.first), int64(0)
	for {
		if err != nil {
			return 0, err
		}
		for _, z := range zs {
			m, _ := z.Member.(string)
			o.add(m)
			num = strconv.AppendFloat(num[:0], z.Score, 'g', -1, 64)
			o.add(string(num))
		}
		n += int64(len(zs))
		if int64(len(zs)) < want {
			break
		}
		want = int64(r.chunk)
		zs, err = c.ZRangeWithScores(ctx, key, n, n+want-1).Result()
	}
	return final("zset", n, o.d.Sum64()), nil
}

// streamDigest covers the entries in ID order (field order kept), the
// length and last generated ID, and each consumer group's name, consumer
// count, pending count and last delivered ID. Fields only newer servers
// report (entries-added, entries-read, lag) are left out so a 5.0 source can
// be compared with a 7.x destination.
func (r *reader) streamDigest(ctx context.Context, c *redis.Client, key string, fr *firstRead) (uint64, error) {
	var o ordered
	entries, err := fr.xr.Result()
	want, n := r.first, int64(0)
	for {
		if err != nil {
			return 0, err
		}
		list, _ := entries.([]any)
		last := ""
		for _, e := range list {
			id, fields := streamEntry(e)
			last = id
			o.add(id)
			o.add(strconv.Itoa(len(fields)))
			for _, f := range fields {
				o.add(f)
			}
		}
		n += int64(len(list))
		if len(list) < want || last == "" {
			break
		}
		next, ok, perr := nextStreamID(last)
		if perr != nil || !ok {
			break
		}
		want = r.chunk
		entries, err = c.Do(ctx, "XRANGE", key, next, "+", "COUNT", want).Result()
	}
	info, err := fr.xinfo.Result()
	if err != nil {
		return 0, err
	}
	meta := pairs(info)
	o.add(fmt.Sprint(meta["length"]))
	o.add(fmt.Sprint(meta["last-generated-id"]))
	groups, err := fr.xgrp.Result()
	if err != nil {
		return 0, err
	}
	var g unordered
	glist, _ := groups.([]any)
	for _, e := range glist {
		m := pairs(e)
		g.add(fmt.Sprint(m["name"]), fmt.Sprint(m["consumers"]), fmt.Sprint(m["pending"]), fmt.Sprint(m["last-delivered-id"]))
	}
	o.add(strconv.FormatUint(g.sum, 16))
	o.add(strconv.FormatInt(g.n, 10))
	return final("stream", n, o.d.Sum64()), nil
}

// streamEntry splits one XRANGE entry, [id, [field, value, ...]].
func streamEntry(e any) (id string, fields []string) {
	pair, _ := e.([]any)
	if len(pair) != 2 {
		return "", nil
	}
	id, _ = pair[0].(string)
	fv, _ := pair[1].([]any)
	for _, f := range fv {
		s, _ := f.(string)
		fields = append(fields, s)
	}
	return id, fields
}

// pairs reads a RESP2 flat name/value array (or a RESP3 map) into a map.
func pairs(v any) map[string]any {
	out := map[string]any{}
	switch t := v.(type) {
	case []any:
		for i := 0; i+1 < len(t); i += 2 {
			if k, ok := t[i].(string); ok {
				out[k] = t[i+1]
			}
		}
	case map[any]any:
		for k, val := range t {
			if ks, ok := k.(string); ok {
				out[ks] = val
			}
		}
	}
	return out
}
