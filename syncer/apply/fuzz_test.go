package apply

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/syncer/replica"
)

// FuzzParseInfo feeds INFO text to the version parser.
func FuzzParseInfo(f *testing.F) {
	for _, s := range []string{
		"# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n",
		"redis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.0.1\r\n",
		"redis_version:7.4.1\r\n", "redis_version:8.0.0\r\n", "redis_version:5.0.14\r\n",
		"redis_version:\r\n", "redis_version:x.y\r\n", ":\n:",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		si := parseInfo(text)
		switch si.MaxRDB {
		case 0, 9, 10, 11, 12:
		default:
			t.Fatalf("MaxRDB %d for %q", si.MaxRDB, text)
		}
	})
}

// FuzzRoute routes arbitrary command streams without I/O and checks the
// plan: every request re-parses to a command, keyed commands sit on their
// keys' shard, MULTI/EXEC pairs are balanced.
func FuzzRoute(f *testing.F) {
	for _, s := range []string{
		strings.Join(streamScript(), "\n"),
		"MULTI\nSET {a}1 x\nSET {a}2 y\nEXEC",
		"MULTI\nSET a 1\nSET b 2\nEXEC\nSET c 3",
		"MSET a 1 b 2 c 3 d 4\nDEL a b c d\nMSETNX x 1 y 2",
		"SELECT 3\nMULTI\nSELECT 4\nSET k v\nPUBLISH ch m\nEXEC\nFLUSHALL",
		"RENAME a b\nSET z 1", "SELECT -1", "EVAL return 0", "XGROUP CREATE s g $",
	} {
		f.Add([]byte(s))
	}
	d, err := NewDestination(DestinationConfig{Shards: []Shard{{Addr: "127.0.0.1:1"}, {Addr: "127.0.0.1:2"}, {Addr: "127.0.0.1:3"}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a := New(d, Options{MaxBlockBytes: 1 << 16})
		s := &a.stream
		s.plan.reset()
		for i, line := range bytes.Split(data, []byte("\n")) {
			cmd := replica.Command{Args: bytes.Fields(line), Offset: int64(i)}
			if err := s.route(&cmd); err != nil {
				if !Fatal(err) {
					t.Fatalf("routing error %v is not fatal", err)
				}
				break
			}
		}
		for shard, runs := range s.plan.runs {
			for _, b := range runs {
				depth := 0
				for _, c := range b.seal() {
					var rc resp.Command
					if err := resp.ReadCommand(bufio.NewReader(bytes.NewReader(c.Req)), &rc, resp.Limits{}); err != nil || len(rc.Args) == 0 || rc.Size != len(c.Req) {
						t.Fatalf("request %q does not parse: %v", c.Req, err)
					}
					switch strings.ToUpper(string(rc.Args[0])) {
					case "MULTI":
						depth++
					case "EXEC":
						depth--
					}
					if depth < 0 || depth > 1 {
						t.Fatalf("unbalanced MULTI/EXEC in %q", c.Req)
					}
					if cmd := a.opts.Table.Lookup(rc.Args); cmd != nil {
						keys, err := cmd.Keys(rc.Args, nil)
						if err != nil {
							continue
						}
						for _, k := range keys {
							if got := d.Map().ShardOf(rc.Args[k]); got != shard {
								t.Fatalf("%q on shard %d, its key %q belongs to %d", c.Req, shard, rc.Args[k], got)
							}
						}
					}
				}
				if depth != 0 {
					t.Fatalf("MULTI without EXEC in a run")
				}
			}
		}
	})
}

// TestRouteKeyless checks the keyless fan-out without I/O.
func TestRouteKeyless(t *testing.T) {
	d, err := NewDestination(DestinationConfig{Shards: []Shard{{Addr: "127.0.0.1:1"}, {Addr: "127.0.0.1:2"}, {Addr: "127.0.0.1:3"}}})
	if err != nil {
		t.Fatal(err)
	}
	a := New(d, Options{})
	s := &a.stream
	s.plan.reset()
	for _, c := range cmds("FLUSHALL", "SELECT 2", "FUNCTION FLUSH", "SCRIPT FLUSH", "SWAPDB 1 2", "PING", "REPLCONF GETACK *") {
		if err := s.route(&c); err != nil {
			t.Fatal(err)
		}
	}
	for shard, runs := range s.plan.runs {
		if len(runs) != 2 || runs[0].db != 0 || runs[0].Len() != 1 || runs[1].db != 2 || runs[1].Len() != 3 {
			t.Errorf("shard %d: runs %d, want FLUSHALL in db 0 then 3 commands in db 2", shard, len(runs))
		}
	}
	c := cmds("EVAL x 1 k")[0]
	if err := s.route(&c); err != nil {
		t.Errorf("EVAL with a key: %v", err)
	}
	c = cmds("NOSUCHCOMMAND k")[0]
	if err := s.route(&c); !errors.Is(err, ErrUnsupported) {
		t.Errorf("unknown command: %v", err)
	}
}
