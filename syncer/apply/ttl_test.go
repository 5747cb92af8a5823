package apply

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/internal/harness"
)

func splitArgs(s string) [][]byte {
	var out [][]byte
	for _, f := range strings.Fields(s) {
		out = append(out, []byte(f))
	}
	return out
}

func joinArgs(args [][]byte) string {
	var parts []string
	for _, a := range args {
		parts = append(parts, string(a))
	}
	return strings.Join(parts, " ")
}

// TestTTLRewrite covers every command form that sets a TTL, with a grace
// of 5000 ms.
func TestTTLRewrite(t *testing.T) {
	cases := []struct{ in, want string }{
		// SET options, any case, any position after the value.
		{"SET k v EX 10", "SET k v PX 15000"},
		{"SET k v px 1500", "SET k v px 6500"},
		{"SET k v EXAT 1700000000", "SET k v PXAT 1700000005000"},
		{"SET k v PXAT 1700000000123", "SET k v PXAT 1700000005123"},
		{"SET k v NX GET PX 100", "SET k v NX GET PX 5100"},
		{"set k v xx pxat 1700000000000", "set k v xx pxat 1700000005000"},
		{"SET k v KEEPTTL", "SET k v KEEPTTL"},
		{"SET k v", "SET k v"},
		{"SET k EX", "SET k EX"}, // the value is not an option
		{"SET k v EX", "SET k v EX"},
		{"SET k v EX 0", "SET k v EX 0"},   // invalid on a master: never propagated
		{"SET k v PX -5", "SET k v PX -5"}, // idem
		{"SET k v EX abc", "SET k v EX abc"},
		// SETEX / PSETEX.
		{"SETEX k 10 v", "PSETEX k 15000 v"},
		{"PSETEX k 10 v", "PSETEX k 5010 v"},
		// The EXPIRE family, flags kept.
		{"EXPIRE k 10", "PEXPIRE k 15000"},
		{"EXPIRE k 10 GT", "PEXPIRE k 15000 GT"},
		{"PEXPIRE k 10 NX", "PEXPIRE k 5010 NX"},
		{"EXPIREAT k 1700000000 LT", "PEXPIREAT k 1700000005000 LT"},
		{"PEXPIREAT k 1700000000000", "PEXPIREAT k 1700000005000"},
		{"PEXPIREAT k 1", "PEXPIREAT k 5001"}, // past: graced, the DEL follows
		{"EXPIRE k -1", "EXPIRE k -1"},        // relative <= 0: delete now
		{"PEXPIRE k 0", "PEXPIRE k 0"},
		// GETEX.
		{"GETEX k EX 10", "GETEX k PX 15000"},
		{"GETEX k PXAT 1700000000000", "GETEX k PXAT 1700000005000"},
		{"GETEX k PERSIST", "GETEX k PERSIST"},
		{"GETEX k", "GETEX k"},
		// RESTORE, relative and absolute; 0 is no TTL.
		{"RESTORE k 100 payload", "RESTORE k 5100 payload"},
		{"RESTORE k 1700000000000 payload REPLACE ABSTTL", "RESTORE k 1700000005000 payload REPLACE ABSTTL"},
		{"RESTORE k 0 payload REPLACE", "RESTORE k 0 payload REPLACE"},
		// Hash-field TTLs.
		{"HEXPIRE h 10 FIELDS 1 f", "HPEXPIRE h 15000 FIELDS 1 f"},
		{"HPEXPIRE h 10 NX FIELDS 2 f g", "HPEXPIRE h 5010 NX FIELDS 2 f g"},
		{"HEXPIREAT h 1700000000 FIELDS 1 f", "HPEXPIREAT h 1700000005000 FIELDS 1 f"},
		{"HPEXPIREAT h 1700000000000 FIELDS 1 f", "HPEXPIREAT h 1700000005000 FIELDS 1 f"},
		{"HSETEX h FNX EX 10 FIELDS 1 f v", "HSETEX h FNX PX 15000 FIELDS 1 f v"},
		{"HSETEX h PXAT 1700000000000 FIELDS 1 f v", "HSETEX h PXAT 1700000005000 FIELDS 1 f v"},
		{"HSETEX h KEEPTTL FIELDS 1 ex 10", "HSETEX h KEEPTTL FIELDS 1 ex 10"}, // fields are not options
		{"HGETEX h PX 10 FIELDS 1 f", "HGETEX h PX 5010 FIELDS 1 f"},
		{"HGETEX h PERSIST FIELDS 1 f", "HGETEX h PERSIST FIELDS 1 f"},
		// Untouched.
		{"COPY a b", "COPY a b"},
		{"PERSIST k", "PERSIST k"},
		{"HSET h ex 10", "HSET h ex 10"},
		{"PEXPIREAT k 99999999999999999", "PEXPIREAT k 99999999999999999"}, // beyond maxGraced
		{"PEXPIREAT k 9223372036854775807", "PEXPIREAT k 9223372036854775807"},
		{"EXPIRE k 9223372036854775807", "EXPIRE k 9223372036854775807"},
	}
	r := &ttlRewriter{grace: 5000}
	var nb [16]byte
	for _, c := range cases {
		args := splitArgs(c.in)
		r.reset()
		got := joinArgs(r.rewrite(lowerName(nb[:0], args[0]), args))
		if got != c.want {
			t.Errorf("%s: got %q, want %q", c.in, got, c.want)
		}
		if joinArgs(args) != c.in {
			t.Errorf("%s: the input was modified: %q", c.in, joinArgs(args))
		}
	}
	// No grace: nothing changes.
	off := &ttlRewriter{}
	for _, c := range cases {
		args := splitArgs(c.in)
		if got := joinArgs(off.rewrite(lowerName(nb[:0], args[0]), args)); got != c.in {
			t.Errorf("grace 0: %s became %q", c.in, got)
		}
	}
}

// FuzzTTLRewrite: the rewriter never panics, never changes the number of
// arguments or the key, and only ever changes TTL values upward by the
// grace.
func FuzzTTLRewrite(f *testing.F) {
	for _, s := range []string{
		"SET k v EX 10", "SET k v PXAT 1700000000000 GET", "SETEX k 1 v", "EXPIRE k 5 GT",
		"PEXPIREAT k 1", "GETEX k EXAT 17", "RESTORE k 5 p ABSTTL", "HSETEX h EX 1 FIELDS 1 f v",
		"HPEXPIRE h 10 FIELDS 1 f", "SET k v EX", "SET k v PX -1", "EXPIRE k 99999999999999999999",
	} {
		f.Add(s, int64(5000))
	}
	f.Fuzz(func(t *testing.T, line string, grace int64) {
		args := splitArgs(line)
		if len(args) == 0 {
			return
		}
		r := &ttlRewriter{grace: grace % int64(MaxTTLGrace/time.Millisecond)}
		var nb [16]byte
		r.reset()
		out := r.rewrite(lowerName(nb[:0], args[0]), args)
		if len(out) != len(args) {
			t.Fatalf("%q: %d args became %d", line, len(args), len(out))
		}
		if len(args) > 1 && string(out[1]) != string(args[1]) {
			t.Fatalf("%q: the key changed to %q", line, out[1])
		}
		for i := range out {
			if string(out[i]) == string(args[i]) {
				continue
			}
			if i == 0 {
				continue // SETEX → PSETEX, EXPIRE → PEXPIRE, …
			}
			n, err := strconv.ParseInt(string(out[i]), 10, 64)
			if err != nil {
				// An option renamed: EX → PX, EXAT → PXAT.
				switch strings.ToUpper(string(args[i])) + ">" + string(out[i]) {
				case "EX>PX", "EXAT>PXAT":
					continue
				}
				t.Fatalf("%q: argument %d %q became %q", line, i, args[i], out[i])
			}
			old, err := strconv.ParseInt(string(args[i]), 10, 64)
			if err != nil || (n != old+r.grace && n != old*1000+r.grace) {
				t.Fatalf("%q: TTL %q became %q with grace %d", line, args[i], out[i], r.grace)
			}
		}
	})
}

// TestApplyTTLGrace applies every streamed TTL form, and a snapshot, to
// real shards with a grace and checks the TTLs the shards hold.
func TestApplyTTLGrace(t *testing.T) {
	ctx := harness.Context(t, time.Minute)
	c := startCluster(t, 2)
	c.flush(t, ctx)
	table, err := c.dest.Commands(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const grace = 10 * time.Minute
	a := New(c.dest, Options{Table: table, TTLGrace: grace})
	now := time.Now()
	at := now.Add(time.Hour)
	atS, atMs := strconv.FormatInt(at.Unix(), 10), strconv.FormatInt(at.UnixMilli(), 10)
	past := strconv.FormatInt(now.Add(-time.Minute).UnixMilli(), 10)
	lines := []string{
		"SELECT 0",
		"SET ex v EX 3600", "SET px v PX 3600000", "SET exat v EXAT " + atS, "SET pxat v PXAT " + atMs,
		"SETEX setex 3600 v", "PSETEX psetex 3600000 v",
		"SET e v", "EXPIRE e 3600", "SET pe v", "PEXPIRE pe 3600000",
		"SET ea v", "EXPIREAT ea " + atS, "SET pea v", "PEXPIREAT pea " + atMs,
		"SET g v", "GETEX g EX 3600",
		"SET gt v PX 3600000", "PEXPIRE gt 1800000 GT", // not greater: stays at 1 h
		"SET lt v PX 3600000", "PEXPIRE lt 1800000 LT", // less: 30 min
		"SET late v PX 3600000", "PEXPIREAT late " + past, // a late renewal: kept for the grace
		"SET keep v PX 3600000", "SET keep w KEEPTTL",
		"SET {c}src v PX 3600000", "COPY {c}src {c}dst",
		"SET gone v", "EXPIRE gone -1", // relative <= 0: deleted now
		"SET persist v EX 3600", "PERSIST persist",
	}
	if err := a.Apply(ctx, cmds(lines...)); err != nil {
		t.Fatal(err)
	}
	hour := time.Hour
	want := map[string]time.Duration{
		"ex": hour, "px": hour, "exat": hour, "pxat": hour, "setex": hour, "psetex": hour,
		"e": hour, "pe": hour, "ea": hour, "pea": hour, "g": hour, "gt": hour, "lt": hour / 2,
		"late": -time.Minute, "keep": hour, "{c}src": hour, "{c}dst": hour,
	}
	for key, ttl := range want {
		got, err := c.client(key, 0).PTTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if d := got - (ttl + grace); d > 5*time.Second || d < -5*time.Second {
			t.Errorf("%s: PTTL %v, want %v + grace %v", key, got, ttl, grace)
		}
	}
	if n := c.client("gone", 0).Exists(ctx, "gone").Val(); n != 0 {
		t.Errorf("gone: EXPIRE -1 left the key")
	}
	if got := c.client("persist", 0).PTTL(ctx, "persist").Val(); got != -1 {
		t.Errorf("persist: PTTL %v, want -1", got)
	}
}

// TestApplyTTLGraceSnapshot: keys RESTOREd and rebuilt from a snapshot
// carry the grace.
func TestApplyTTLGraceSnapshot(t *testing.T) {
	ctx := harness.Context(t, time.Minute)
	src := harness.StartRedis(t)
	rc := src.Client()
	exp := time.Now().Add(time.Hour)
	for i := range 20 {
		k := "k" + strconv.Itoa(i)
		rc.Set(ctx, k, strings.Repeat("x", i), 0)
		rc.PExpireAt(ctx, k, exp)
	}
	rc.RPush(ctx, "list", "a", "b")
	rc.PExpireAt(ctx, "list", exp)
	rc.Set(ctx, "noexp", "v", 0)
	for _, force := range []bool{false, true} {
		c := startCluster(t, 2)
		c.flush(t, ctx)
		const grace = 5 * time.Minute
		a := New(c.dest, Options{TTLGrace: grace, ForceDecode: force})
		if err := rc.Save(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		loadFile(t, ctx, a, filepath.Join(src.Dir, "dump.rdb"))
		for _, key := range []string{"k0", "k7", "k19", "list"} {
			got, err := c.client(key, 0).PExpireTime(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			if want := time.Duration(exp.Add(grace).UnixMilli()) * time.Millisecond; got < want-time.Second || got > want+time.Second {
				t.Errorf("decode=%v %s: PEXPIRETIME %v, want %v", force, key, got, want)
			}
		}
		if got := c.client("noexp", 0).PTTL(ctx, "noexp").Val(); got != -1 {
			t.Errorf("decode=%v noexp: PTTL %v", force, got)
		}
	}
}

// BenchmarkRouteTTLGrace routes a Redis 7-style stream of SET … PXAT,
// PEXPIREAT and plain SETs (no I/O) with and without a TTL grace and
// reports the cost of the rewriting as a ratio against no grace.
func BenchmarkRouteTTLGrace(b *testing.B) {
	d, err := destination.New(destination.Config{Shards: []destination.Shard{{Addr: "127.0.0.1:1"}, {Addr: "127.0.0.1:2"}, {Addr: "127.0.0.1:3"}}})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	var lines []string
	for i := range 300 {
		k := "session:" + strconv.Itoa(i)
		lines = append(lines, "SET "+k+" payload-"+strconv.Itoa(i)+" PXAT 1700000001500", "PEXPIREAT "+k+" 1700000003000", "SET plain:"+strconv.Itoa(i)+" v")
	}
	stream := cmds(lines...)
	per := map[string]float64{}
	for _, g := range []time.Duration{0, 5 * time.Minute} {
		name := "grace=" + g.String()
		b.Run(name, func(b *testing.B) {
			a := New(d, Options{TTLGrace: g})
			s := &a.stream
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				s.plan.reset()
				for i := range stream {
					if err := s.route(&stream[i]); err != nil {
						b.Fatal(err)
					}
				}
			}
			ns := float64(time.Since(start).Nanoseconds()) / float64(b.N*len(stream))
			b.ReportMetric(ns, "ns/cmd")
			per[name] = ns
			if base := per["grace=0s"]; base > 0 && g > 0 {
				b.ReportMetric(ns/base, "x_no_grace")
			}
		})
	}
}

// TestTTLRewriteWireTranscripts runs the rewriter over every command real
// masters sent (testdata/wire: Redis 5.0 to 8.0 and Valkey 8.0, relative
// and absolute forms): each one that sets a TTL gets the grace, nothing
// else changes.
func TestTTLRewriteWireTranscripts(t *testing.T) {
	files, err := filepath.Glob("../../testdata/wire/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no wire transcripts (err %v): they live in testdata/wire of the repository", err)
	}
	r := &ttlRewriter{grace: 60_000}
	rewritten := map[string]int{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var tr struct {
			Commands []struct {
				Argv []string `json:"argv"`
			} `json:"commands"`
		}
		if err := json.Unmarshal(data, &tr); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, c := range tr.Commands {
			args := make([][]byte, len(c.Argv))
			for i, a := range c.Argv {
				args[i] = []byte(a)
			}
			var nb [16]byte
			name := lowerName(nb[:0], args[0])
			r.reset()
			out := r.rewrite(name, args)
			changed := joinArgs(out) != joinArgs(args)
			if changed != setsTTL(c.Argv) {
				t.Errorf("%s: %q became %q", filepath.Base(f), c.Argv, joinArgs(out))
			}
			if changed {
				rewritten[strings.ToUpper(c.Argv[0])]++
			}
		}
	}
	t.Logf("rewritten: %v", rewritten)
	for _, name := range []string{"SET", "EXPIRE", "PEXPIREAT", "HPEXPIREAT"} {
		if rewritten[name] == 0 {
			t.Errorf("no %s with a TTL in the transcripts was rewritten", name)
		}
	}
}

// setsTTL tells, independently of the rewriter, whether a propagated
// command sets a TTL.
func setsTTL(argv []string) bool {
	name := strings.ToUpper(argv[0])
	switch name {
	case "EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT", "HEXPIRE", "HPEXPIRE", "HEXPIREAT", "HPEXPIREAT", "SETEX", "PSETEX":
		return true
	case "SET", "GETEX":
		from := 2
		if name == "SET" {
			from = 3
		}
		for _, a := range argv[min(from, len(argv)):] {
			switch strings.ToUpper(a) {
			case "EX", "PX", "EXAT", "PXAT":
				return true
			}
		}
	case "RESTORE":
		return len(argv) > 2 && argv[2] != "0"
	}
	return false
}
