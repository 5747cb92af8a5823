package harness

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/redis/go-redis/v9"
)

// CompareOptions tune Compare. The zero value compares every key.
type CompareOptions struct {
	// Skip drops keys for which it returns true (e.g. internal keys).
	Skip func(key string) bool
	// MaxReport bounds the keys listed per kind of difference (default 20).
	MaxReport int
	// TTLTolerance, when positive, also compares TTL values: a key with a
	// TTL on both sides differs when B's, less TTLGrace (the grace the
	// syncer adds, replica_of.ttl_grace), and A's are further apart. Both
	// sides are read as times to live, one after the other: the tolerance
	// must cover the time Compare takes. 0 compares TTL presence only.
	TTLTolerance time.Duration
	TTLGrace     time.Duration
}

// Diff is the outcome of Compare.
type Diff struct {
	Equal     int      // keys present on both sides with the same content
	OnlyA     []string // keys missing from B (at most MaxReport)
	OnlyB     []string // keys missing from A
	Different []string // "key: what differs"
	Missing   int      // total count of OnlyA
	Extra     int      // total count of OnlyB
	Changed   int      // total count of Different
}

// Empty reports whether the two sides were equal.
func (d *Diff) Empty() bool { return d.Missing == 0 && d.Extra == 0 && d.Changed == 0 }

func (d *Diff) String() string {
	if d.Empty() {
		return fmt.Sprintf("equal (%d keys)", d.Equal)
	}
	return fmt.Sprintf("%d equal, %d only in A %v, %d only in B %v, %d differ %v",
		d.Equal, d.Missing, d.OnlyA, d.Extra, d.OnlyB, d.Changed, d.Different)
}

// keyInfo is the logical content of one key: its type, a digest of its
// canonical value, and whether it has a TTL.
type keyInfo struct {
	typ    string
	digest uint64
	ttl    bool
	pttl   time.Duration // the TTL when ttl; not part of ==
}

// same compares a (side A) and b (side B) as Compare does.
func (a keyInfo) same(b keyInfo, opt CompareOptions) bool {
	if a.typ != b.typ || a.digest != b.digest || a.ttl != b.ttl {
		return false
	}
	if opt.TTLTolerance <= 0 || !a.ttl {
		return true
	}
	diff := max(b.pttl-opt.TTLGrace, 0) - a.pttl
	return diff <= opt.TTLTolerance && diff >= -opt.TTLTolerance
}

// Compare reads every key of the clients on side A (the union of their
// keyspaces, e.g. several sources) and side B (e.g. destination shards) and
// compares them logically: type, value and TTL presence. A key held by two
// clients of one side counts as a difference.
func Compare(ctx context.Context, a, b []*redis.Client, opt CompareOptions) (*Diff, error) {
	if opt.MaxReport <= 0 {
		opt.MaxReport = 20
	}
	ka, err := snapshot(ctx, a, opt.Skip)
	if err != nil {
		return nil, fmt.Errorf("side A: %w", err)
	}
	kb, err := snapshot(ctx, b, opt.Skip)
	if err != nil {
		return nil, fmt.Errorf("side B: %w", err)
	}
	d := &Diff{}
	for _, k := range sortedKeys(ka) {
		ia := ka[k]
		ib, ok := kb[k]
		switch {
		case !ok:
			d.Missing++
			if len(d.OnlyA) < opt.MaxReport {
				d.OnlyA = append(d.OnlyA, k)
			}
		case !ia.same(ib, opt):
			d.Changed++
			if len(d.Different) < opt.MaxReport {
				d.Different = append(d.Different, fmt.Sprintf("%s: A %s/ttl=%v, B %s/ttl=%v (values %s)",
					k, ia.typ, ia.pttl, ib.typ, ib.pttl, map[bool]string{true: "equal", false: "differ"}[ia.digest == ib.digest]))
			}
		default:
			d.Equal++
		}
	}
	for _, k := range sortedKeys(kb) {
		if _, ok := ka[k]; !ok {
			d.Extra++
			if len(d.OnlyB) < opt.MaxReport {
				d.OnlyB = append(d.OnlyB, k)
			}
		}
	}
	return d, nil
}

// RequireEqual fails t unless the two sides compare equal.
func RequireEqual(t testing.TB, ctx context.Context, a, b []*redis.Client, opt CompareOptions) {
	t.Helper()
	d, err := Compare(ctx, a, b, opt)
	if err != nil {
		t.Fatalf("compare: %v", err)
	}
	if !d.Empty() {
		t.Fatalf("keyspaces differ: %s", d)
	}
}

// WaitEqual compares a with b (read again each time: after a failover
// the masters change) every 100 ms until they are equal, and fails t
// when they still differ after within.
func WaitEqual(t testing.TB, ctx context.Context, within time.Duration, a []*redis.Client, b func() []*redis.Client, opt CompareOptions) {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(100 * time.Millisecond) {
		d, err := Compare(ctx, a, b(), opt)
		if err != nil {
			t.Fatalf("compare: %v", err)
		}
		if d.Empty() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("destination never equal to the source within %v: %s", within, d)
		}
	}
}

func sortedKeys(m map[string]keyInfo) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var errDuplicate = errors.New("key held by two servers of one side")

func snapshot(ctx context.Context, clients []*redis.Client, skip func(string) bool) (map[string]keyInfo, error) {
	out := map[string]keyInfo{}
	for _, c := range clients {
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, "*", 1000).Result()
			if err != nil {
				return nil, err
			}
			var todo []string
			for _, k := range keys {
				if skip != nil && skip(k) {
					continue
				}
				if _, dup := out[k]; dup {
					return nil, fmt.Errorf("%q: %w", k, errDuplicate)
				}
				todo = append(todo, k)
			}
			infos, err := describe(ctx, c, todo)
			if err != nil {
				return nil, err
			}
			for i, k := range todo {
				if infos[i].typ != "none" { // expired or deleted since SCAN
					out[k] = infos[i]
				}
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
	}
	return out, nil
}

// describe reads the type, TTL and canonical value of each key.
func describe(ctx context.Context, c *redis.Client, keys []string) ([]keyInfo, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	pipe := c.Pipeline()
	types := make([]*redis.StatusCmd, len(keys))
	ttls := make([]*redis.DurationCmd, len(keys))
	for i, k := range keys {
		types[i] = pipe.Type(ctx, k)
		ttls[i] = pipe.PTTL(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	pipe = c.Pipeline()
	vals := make([]redis.Cmder, len(keys))
	groups := make([]*redis.XInfoGroupsCmd, len(keys))
	for i, k := range keys {
		switch types[i].Val() {
		case "string":
			vals[i] = pipe.Get(ctx, k)
		case "list":
			vals[i] = pipe.LRange(ctx, k, 0, -1)
		case "set":
			vals[i] = pipe.SMembers(ctx, k)
		case "zset":
			vals[i] = pipe.ZRangeWithScores(ctx, k, 0, -1)
		case "hash":
			vals[i] = pipe.HGetAll(ctx, k)
		case "stream":
			vals[i] = pipe.XRange(ctx, k, "-", "+")
			groups[i] = pipe.XInfoGroups(ctx, k)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([]keyInfo, len(keys))
	for i := range keys {
		info := keyInfo{typ: types[i].Val(), ttl: ttls[i].Val() > 0}
		if info.ttl {
			info.pttl = ttls[i].Val()
		}
		if vals[i] != nil {
			text := canonical(vals[i])
			if groups[i] != nil {
				// Group state a replica must reproduce; not wall-clock times.
				for _, g := range groups[i].Val() {
					text += fmt.Sprintf("|group %s consumers=%d pending=%d last=%s", g.Name, g.Consumers, g.Pending, g.LastDeliveredID)
				}
			}
			info.digest = xxhash.Sum64String(text)
		}
		out[i] = info
	}
	return out, nil
}

// canonical renders a value so equal content gives equal text whatever the
// server's internal order.
func canonical(cmd redis.Cmder) string {
	switch v := cmd.(type) {
	case *redis.StringCmd:
		return v.Val()
	case *redis.StringSliceCmd:
		vals := v.Val()
		if strings.HasPrefix(v.Name(), "smembers") {
			vals = append([]string(nil), vals...)
			sort.Strings(vals)
		}
		return joinLen(vals)
	case *redis.ZSliceCmd:
		var parts []string
		for _, z := range v.Val() {
			parts = append(parts, fmt.Sprint(z.Member), strconv.FormatFloat(z.Score, 'g', -1, 64))
		}
		return joinLen(parts)
	case *redis.MapStringStringCmd:
		m := v.Val()
		var parts []string
		for _, k := range sortedStrings(m) {
			parts = append(parts, k, m[k])
		}
		return joinLen(parts)
	case *redis.XMessageSliceCmd:
		var parts []string
		for _, m := range v.Val() {
			parts = append(parts, m.ID)
			for _, f := range sortedAny(m.Values) {
				parts = append(parts, f, fmt.Sprint(m.Values[f]))
			}
		}
		return joinLen(parts)
	}
	return ""
}

func sortedAny(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func joinLen(parts []string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(strconv.Itoa(len(p)))
		b.WriteByte(':')
		b.WriteString(p)
	}
	return b.String()
}

func sortedStrings(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
