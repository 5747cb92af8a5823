package apply

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/internal/errclass"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/syncer/rdb"
	"github.com/replicaof/replicaof/syncer/replica"
)

// moduleRDB builds an RDB file holding strings and values of a module type
// (RDB type 7) no test shard has loaded: "ReJSON-RL" encver 3.
type moduleRDB struct{ b []byte }

func (w *moduleRDB) len(n uint64) *moduleRDB {
	switch {
	case n < 1<<6:
		w.b = append(w.b, byte(n))
	case n < 1<<14:
		w.b = append(w.b, byte(n>>8)|0x40, byte(n))
	case n <= math.MaxUint32:
		w.b = binary.BigEndian.AppendUint32(append(w.b, 0x80), uint32(n))
	default:
		w.b = binary.BigEndian.AppendUint64(append(w.b, 0x81), n)
	}
	return w
}

func (w *moduleRDB) str(s string) *moduleRDB {
	w.len(uint64(len(s)))
	w.b = append(w.b, s...)
	return w
}

func (w *moduleRDB) db(n uint64) *moduleRDB { w.b = append(w.b, 0xFE); return w.len(n) }

func (w *moduleRDB) stringKey(k, v string) *moduleRDB {
	w.b = append(w.b, rdb.TypeString)
	return w.str(k).str(v)
}

// moduleKey writes a module value: its 64-bit id, then a module opcode
// stream (UINT 5, STRING "x", EOF).
func (w *moduleRDB) moduleKey(k string, id uint64) *moduleRDB {
	w.b = append(w.b, rdb.TypeModule2)
	w.str(k).len(id)
	return w.len(2).len(5).len(5).str("x").len(0)
}

func (w *moduleRDB) end() []byte {
	w.b = append(w.b, 0xFF)
	return binary.LittleEndian.AppendUint64(w.b, rdb.CRC64(0, w.b))
}

// moduleID packs a 9-character module type name and an encoding version
// as src/module.c does.
func moduleID(name string, encver int) uint64 {
	const cset = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var id uint64
	for _, c := range name {
		id = id<<6 | uint64(strings.IndexRune(cset, c))
	}
	return id<<10 | uint64(encver)
}

func buildModuleRDB(version int) []byte {
	w := &moduleRDB{b: []byte(fmt.Sprintf("REDIS%04d", version))}
	id := moduleID("ReJSON-RL", 3)
	w.db(0).stringKey("a", "1").moduleKey("json:1", id).stringKey("b", "1").moduleKey("json:2", id)
	w.db(2).moduleKey("json:1", id).stringKey("c", "3")
	return w.end()
}

const rejson = "module ReJSON-RL (encver 3)"

// TestUnsupportedKeys loads an RDB holding a module type the shards lack,
// through RESTORE (RDB 9, the shard probes the module type) and with the
// file's version too new for RESTORE (RDB 12).
func TestUnsupportedKeys(t *testing.T) {
	for _, version := range []int{9, 12} {
		t.Run(fmt.Sprintf("rdb%d", version), func(t *testing.T) {
			ctx := harness.Context(t, time.Minute)
			c := startCluster(t, 2)
			table, err := c.dest.Commands(ctx)
			if err != nil {
				t.Fatal(err)
			}
			file := buildModuleRDB(version)

			t.Run("stop", func(t *testing.T) {
				c.flush(t, ctx)
				a := New(c.dest, Options{Table: table})
				err := a.FullSync(ctx, "replid", 0, int64(len(file)), bytes.NewReader(file))
				var ue *UnsupportedKeyError
				if !errors.As(err, &ue) || ue.Key != "json:1" || ue.DB != 0 || ue.Type != rejson || !errclass.IsFatal(err) {
					t.Fatalf("FullSync: %v, want an UnsupportedKeyError for json:1", err)
				}
				for _, want := range []string{`"json:1"`, "ReJSON-RL", "unsupported_keys: skip"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not mention %s", err, want)
					}
				}
				t.Log(err)
			})

			t.Run("skip", func(t *testing.T) {
				c.flush(t, ctx)
				a := New(c.dest, Options{Table: table, SkipUnsupported: true})
				if err := a.FullSync(ctx, "replid", 0, int64(len(file)), bytes.NewReader(file)); err != nil {
					t.Fatal(err)
				}
				st := a.Stats()
				if st.KeysLoaded != 3 || len(st.Unsupported) != 1 || st.Unsupported[rejson] != 3 {
					t.Fatalf("loaded %d, unsupported %v; want 3 and 3 %s", st.KeysLoaded, st.Unsupported, rejson)
				}
				for key, want := range map[string]string{"a": "1", "b": "1"} {
					if got := c.client(key, 0).Get(ctx, key).Val(); got != want {
						t.Errorf("%s = %q, want %q", key, got, want)
					}
				}
				if got := c.client("c", 2).Get(ctx, "c").Val(); got != "3" {
					t.Errorf("db 2 c = %q", got)
				}
				// The stream: commands on skipped keys are dropped, the
				// rest applied.
				lines := []string{
					"SELECT 0",
					"PEXPIREAT json:1 4102444800000", // dropped
					"JSON.SET json:1 $ 1",            // unknown to the shard: dropped
					"RENAME json:2 json:3",           // dropped; json:3 is now skipped
					"PERSIST json:3",                 // dropped
					"SET b 2",
					"MULTI", "SELECT 2", "EXPIRE json:1 100", "SET c 4", "EXEC", // the EXPIRE dropped
					"SELECT 0",
					"SET json:1 now-a-string XX", // replaces the module value on the source
					"DEL json:3", "SET json:3 x",
				}
				if err := a.Apply(ctx, cmds(lines...)); err != nil {
					t.Fatal(err)
				}
				st = a.Stats()
				if st.DroppedCommands != 5 {
					t.Errorf("dropped %d commands, want 5", st.DroppedCommands)
				}
				for key, want := range map[string]string{"b": "2", "json:1": "now-a-string", "json:3": "x"} {
					if got := c.client(key, 0).Get(ctx, key).Val(); got != want {
						t.Errorf("%s = %q, want %q", key, got, want)
					}
				}
				if got := c.client("c", 2).Get(ctx, "c").Val(); got != "4" {
					t.Errorf("db 2 c = %q", got)
				}
				if c.client("json:2", 0).Exists(ctx, "json:2").Val() != 0 || c.client("json:1", 2).Exists(ctx, "json:1").Val() != 0 {
					t.Errorf("a skipped key exists on the destination")
				}
				if ttl := c.client("json:1", 0).TTL(ctx, "json:1").Val(); ttl != -1 {
					t.Errorf("json:1 TTL %v: the dropped PEXPIREAT reached the shard", ttl)
				}
			})
		})
	}
}

// TestSkippedKeysBounded: beyond MaxSkippedKeys, skipped keys are counted
// but not remembered.
func TestSkippedKeysBounded(t *testing.T) {
	a := &Applier{opts: Options{MaxSkippedKeys: 2}.withDefaults()}
	a.skips.a = a
	for i := range 5 {
		a.skips.skip(0, []byte(fmt.Sprint("k", i)), rejson, "test")
	}
	if len(a.skips.keys) != 2 || a.skips.untracked.Load() != 3 || a.skips.snapshot()[rejson] != 5 {
		t.Fatalf("remembered %d, untracked %d, counted %v", len(a.skips.keys), a.skips.untracked.Load(), a.skips.snapshot())
	}
	// A retried Apply's changes are undone.
	a.skips.begin()
	a.skips.forget(0, []byte("k0"))
	a.skips.remember(0, "other")
	a.skips.replaceAll(nil, 0)
	a.skips.undo()
	if !a.skips.has(0, []byte("k0")) || a.skips.has(0, []byte("other")) || len(a.skips.keys) != 2 {
		t.Fatalf("after undo: %v", a.skips.keys)
	}
}

// FuzzRouteSkipped routes arbitrary streams with skipped keys and a TTL
// grace: nothing panics, errors are fatal ones, every planned request
// parses and is a command the destination knows, and the skipped set
// stays within its bound.
func FuzzRouteSkipped(f *testing.F) {
	for _, s := range []string{
		"PEXPIREAT json:1 5\nSET json:1 v XX\nEXPIRE json:1 5",
		"RENAME json:2 x\nINCR x\nDEL x\nINCR x",
		"MULTI\nSELECT 2\nEXPIRE json:1 1\nEXEC\nSELECT 0\nJSON.GET json:1",
		"COPY json:1 y DB 3\nSELECT 3\nPERSIST y\nSWAPDB 0 3\nFLUSHDB\nFLUSHALL",
		"SET k v EX 10\nGETEX json:1 EX 5\nMOVE json:2 4",
	} {
		f.Add([]byte(s))
	}
	d, err := destination.New(destination.Config{Shards: []destination.Shard{{Addr: "127.0.0.1:1"}, {Addr: "127.0.0.1:2"}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a := New(d, Options{MaxBlockBytes: 1 << 16, SkipUnsupported: true, TTLGrace: time.Minute, MaxSkippedKeys: 8})
		for _, k := range []string{"json:1", "json:2"} {
			a.skips.skip(0, []byte(k), rejson, "fuzz")
			a.skips.skip(2, []byte(k), rejson, "fuzz")
		}
		s := &a.stream
		s.plan.reset()
		for i, line := range bytes.Split(data, []byte("\n")) {
			cmd := replica.Command{Args: bytes.Fields(line), Offset: int64(i)}
			if err := s.route(&cmd); err != nil {
				if !errclass.IsFatal(err) {
					t.Fatalf("routing error %v is not fatal", err)
				}
				break
			}
		}
		for _, runs := range s.plan.runs {
			for _, b := range runs {
				for _, c := range b.seal() {
					var rc resp.Command
					if err := resp.ReadCommand(bufio.NewReader(bytes.NewReader(c.Req)), &rc, resp.Limits{}); err != nil || len(rc.Args) == 0 {
						t.Fatalf("request %q does not parse: %v", c.Req, err)
					}
					if a.opts.Table.Lookup(rc.Args) == nil {
						t.Fatalf("a command unknown to the destination was planned: %q", c.Req)
					}
				}
			}
		}
		if a.skips.bytes < 0 || len(a.skips.keys) > 8 {
			t.Fatalf("skipped set: %d keys, %d bytes", len(a.skips.keys), a.skips.bytes)
		}
	})
}
