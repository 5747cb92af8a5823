package apply

import (
	"bufio"
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/internal/errclass"
	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/syncer/replica"
)

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
		"MULTI\nINCR foo\nSELECT 2\nLMOVE foo bar LEFT RIGHT\nPUBLISH c m\nEXEC",
		"SUNIONSTORE d a b c\nBITOP OR d a b\nSORT a BY w STORE b\nCOPY a b DB 1",
	} {
		f.Add([]byte(s))
	}
	d, err := destination.New(destination.Config{Shards: []destination.Shard{{Addr: "127.0.0.1:1"}, {Addr: "127.0.0.1:2"}, {Addr: "127.0.0.1:3"}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Plain, and in checkpoint mode: one transaction per shard that
		// ends with the checkpoint, back in db 0.
		for _, ckpt := range []bool{false, true} {
			routeOnce(t, d, data, ckpt)
		}
	})
}

func routeOnce(t *testing.T, d *destination.Destination, data []byte, ckpt bool) {
	opts := Options{MaxBlockBytes: 1 << 16}
	if ckpt {
		opts.Checkpoint = CheckpointOptions{Key: CheckpointPrefix + "f", Fingerprint: "fp", Every: time.Nanosecond}
	}
	a := New(d, opts)
	a.ckpt.replID = "id"
	s := &a.stream
	s.plan.reset()
	s.plan.flat = ckpt
	offset := int64(-1)
	for i, line := range bytes.Split(data, []byte("\n")) {
		cmd := replica.Command{Args: bytes.Fields(line), Offset: int64(i)}
		if err := s.route(&cmd); err != nil {
			if !errclass.IsFatal(err) {
				t.Fatalf("routing error %v is not fatal", err)
			}
			break
		}
		if s.job != nil {
			checkJob(t, a, s.job)
			s.job = nil
		}
		if s.block == nil {
			offset = cmd.Offset
		}
	}
	if ckpt {
		s.seal(offset)
	}
	{
		for shard, runs := range s.plan.runs {
			if ckpt && len(runs) > 1 {
				t.Fatalf("checkpoint mode: %d batches for shard %d", len(runs), shard)
			}
			for _, b := range runs {
				depth := 0
				calls := b.seal()
				if ckpt {
					wantCheckpointTail(t, calls, offset)
				}
				for _, c := range calls {
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
							if bytes.HasPrefix(rc.Args[k], []byte(destination.KeyPrefix)) {
								continue // checkpoint and marker: on every shard
							}
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
	}
}

// checkJob resolves a cross-shard job as emulate would (no I/O): it is
// refused with a fatal error, or every key argument of its commands is
// an internal name on the staging shard, which holds a written key.
func checkJob(t *testing.T, a *Applier, j *xjob) {
	t.Helper()
	p, err := a.xs.prepare(j)
	if err != nil {
		if !errclass.IsFatal(err) {
			t.Fatalf("job refused with a non-fatal error: %v", err)
		}
		return
	}
	m := a.d.Map()
	written := false
	for _, k := range p.keys {
		if m.ShardOf([]byte(k.tmp)) != p.stage || !strings.HasPrefix(k.tmp, xsPrefix) {
			t.Fatalf("internal name %q is not on the staging shard %d", k.tmp, p.stage)
		}
		written = written || (k.write && k.home == p.stage)
	}
	if !written && p.keys[0].home != p.stage {
		t.Fatalf("staging shard %d holds no written key", p.stage)
	}
	for _, c := range p.cmds {
		for _, r := range c.refs {
			if string(c.args[r.pos]) != p.keys[r.key].tmp {
				t.Fatalf("%q: argument %d not renamed", c.args, r.pos)
			}
		}
	}
}

// wantCheckpointTail checks a checkpoint-mode transaction: MULTI first,
// then SET <ckpt> <offset> in db 0, EXEC last.
func wantCheckpointTail(t *testing.T, calls []*pool.Call, offset int64) {
	t.Helper()
	db, ckptDB := 0, -1
	var last [][]byte
	for i, c := range calls {
		var rc resp.Command
		if err := resp.ReadCommand(bufio.NewReader(bytes.NewReader(c.Req)), &rc, resp.Limits{}); err != nil {
			t.Fatal(err)
		}
		name := strings.ToUpper(string(rc.Args[0]))
		switch {
		case i == 0 && name != "MULTI", i == len(calls)-1 && name != "EXEC":
			t.Fatalf("transaction %d: %q", i, c.Req)
		case name == "SELECT" && len(rc.Args) == 2:
			db, _ = strconv.Atoi(string(rc.Args[1]))
		case name == "SET" && len(rc.Args) == 3 && string(rc.Args[1]) == CheckpointPrefix+"f":
			ckptDB = db
			last = rc.Args
		}
	}
	if ckptDB != 0 || db != 0 {
		t.Fatalf("checkpoint written in db %d, transaction ends in db %d", ckptDB, db)
	}
	if cp, err := ParseCheckpoint(last[2]); err != nil || cp.Offset != offset {
		t.Fatalf("checkpoint %q, want offset %d (%v)", last[2], offset, err)
	}
}

// TestRouteKeyless checks the keyless fan-out without I/O.
func TestRouteKeyless(t *testing.T) {
	d, err := destination.New(destination.Config{Shards: []destination.Shard{{Addr: "127.0.0.1:1"}, {Addr: "127.0.0.1:2"}, {Addr: "127.0.0.1:3"}}})
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
