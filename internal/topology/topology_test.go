package topology

import (
	"context"
	"testing"

	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/router"
)

// shardsReply is CLUSTER SHARDS as Redis 7.0 answers it over RESP2: two
// shards, the second with a replica, and a failed master without slots.
const shardsReply = "*3\r\n" +
	"*4\r\n$5\r\nslots\r\n*4\r\n:0\r\n:99\r\n:200\r\n:16383\r\n$5\r\nnodes\r\n*1\r\n" +
	"*14\r\n$2\r\nid\r\n$3\r\naaa\r\n$4\r\nport\r\n:7001\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n" +
	"$4\r\nrole\r\n$6\r\nmaster\r\n$18\r\nreplication-offset\r\n:10\r\n$6\r\nhealth\r\n$6\r\nonline\r\n" +
	"*4\r\n$5\r\nslots\r\n*2\r\n:100\r\n:199\r\n$5\r\nnodes\r\n*2\r\n" +
	"*10\r\n$2\r\nid\r\n$3\r\nccc\r\n$4\r\nport\r\n:7003\r\n$2\r\nip\r\n$1\r\n?\r\n$4\r\nrole\r\n$7\r\nreplica\r\n$6\r\nhealth\r\n$6\r\nonline\r\n" +
	"*12\r\n$2\r\nid\r\n$3\r\nbbb\r\n$4\r\nport\r\n:7002\r\n$8\r\ntls-port\r\n:8002\r\n$2\r\nip\r\n$9\r\n127.0.0.2\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$6\r\nhealth\r\n$6\r\nonline\r\n" +
	"*4\r\n$5\r\nslots\r\n*0\r\n$5\r\nnodes\r\n*1\r\n" +
	"*10\r\n$2\r\nid\r\n$3\r\nddd\r\n$4\r\nport\r\n:7004\r\n$2\r\nip\r\n$9\r\n127.0.0.1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$6\r\nhealth\r\n$4\r\nfail\r\n"

// slotsReply is CLUSTER SLOTS for the same cluster (without the failed node).
const slotsReply = "*3\r\n" +
	"*3\r\n:200\r\n:16383\r\n*3\r\n$9\r\n127.0.0.1\r\n:7001\r\n$3\r\naaa\r\n" +
	"*3\r\n:0\r\n:99\r\n*3\r\n$9\r\n127.0.0.1\r\n:7001\r\n$3\r\naaa\r\n" +
	"*4\r\n:100\r\n:199\r\n*3\r\n$9\r\n127.0.0.2\r\n:7002\r\n$3\r\nbbb\r\n*3\r\n$0\r\n\r\n:7003\r\n$3\r\nccc\r\n"

func parse(t testing.TB, s string) resp.Value {
	v, _, err := resp.ParseValue([]byte(s), resp.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestParse(t *testing.T) {
	sh, err := ParseShards(parse(t, shardsReply), "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	sl, err := ParseSlots(parse(t, slotsReply), "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if len(sh) != 3 || len(sl) != 2 {
		t.Fatalf("shards %d, slots %d", len(sh), len(sl))
	}
	if sh.Covered() != router.SlotCount || sl.Covered() != router.SlotCount {
		t.Fatalf("covered %d, %d", sh.Covered(), sl.Covered())
	}
	for _, top := range []Topology{sh, sl} {
		m0, ok0 := top[0].Master()
		m1, ok1 := top[1].Master()
		if !ok0 || !ok1 || m0.ID != "aaa" || m0.Addr(false) != "127.0.0.1:7001" || m1.ID != "bbb" || m1.Addr(false) != "127.0.0.2:7002" {
			t.Fatalf("masters %+v %+v", m0, m1)
		}
		if got := router.FormatSlotRanges(top[0].Slots); got != "0-99,200-16383" {
			t.Fatalf("slots %s", got)
		}
		r := top[1].Replicas()
		if len(r) != 1 || r[0].ID != "ccc" || r[0].Addr(false) != "10.0.0.1:7003" || r[0].Master {
			t.Fatalf("replicas %+v", r)
		}
	}
	if m, _ := sh[1].Master(); m.Addr(true) != "127.0.0.2:8002" {
		t.Fatalf("TLS address %s", m.Addr(true))
	}
	if m, ok := sh[2].Master(); !ok || m.ID != "ddd" || m.Healthy || len(sh[2].Slots) != 0 {
		t.Fatalf("failed master %+v", sh[2])
	}
}

// Read falls back to CLUSTER SLOTS when CLUSTER SHARDS is refused, and
// reports a node that does not answer.
func TestRead(t *testing.T) {
	var asked []string
	do := func(_ context.Context, args ...string) (resp.Value, error) {
		asked = append(asked, args[1])
		if args[1] == "SHARDS" {
			return resp.Value{Type: resp.TypeError, Str: []byte("ERR unknown subcommand 'SHARDS'")}, nil
		}
		return parse(t, slotsReply), nil
	}
	top, err := Read(context.Background(), do, "h")
	if err != nil || len(top) != 2 || len(asked) != 2 {
		t.Fatalf("Read: %v %v %v", top, err, asked)
	}
	refuse := func(_ context.Context, args ...string) (resp.Value, error) {
		return resp.Value{Type: resp.TypeError, Str: []byte("ERR This instance has cluster support disabled")}, nil
	}
	if _, err := Read(context.Background(), refuse, "h"); err == nil {
		t.Fatal("Read of a non-cluster node succeeded")
	}
}

func TestParseBad(t *testing.T) {
	for _, s := range []string{
		":1\r\n",
		"*1\r\n*2\r\n:5\r\n:4\r\n", // reversed range
		"*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\na\r\n:1\r\n",                                      // slot out of range
		"*2\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\na\r\n:1\r\n*3\r\n:5\r\n:6\r\n*2\r\n$1\r\nb\r\n:2\r\n", // slot 5 twice
		"*1\r\n*2\r\n:0\r\n:5\r\n", // no node
	} {
		if _, err := ParseSlots(parse(t, s), "h"); err == nil {
			t.Errorf("ParseSlots(%q) succeeded", s)
		}
		if _, err := ParseShards(parse(t, s), "h"); err == nil {
			t.Errorf("ParseShards(%q) succeeded", s)
		}
	}
}

// FuzzParse feeds both parsers arbitrary replies: they may refuse them
// but must not panic, and what they accept serves no slot twice.
func FuzzParse(f *testing.F) {
	for _, s := range []string{shardsReply, slotsReply, "*0\r\n", ":1\r\n", "*1\r\n*2\r\n:0\r\n:5\r\n",
		"%1\r\n+slots\r\n*0\r\n", "*1\r\n%2\r\n+slots\r\n*2\r\n:0\r\n:16383\r\n+nodes\r\n*1\r\n%3\r\n+id\r\n+x\r\n+port\r\n:1\r\n+role\r\n+master\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, _, err := resp.ParseValue(b, resp.Limits{})
		if err != nil {
			return
		}
		for _, parse := range []func(resp.Value, string) (Topology, error){ParseShards, ParseSlots} {
			top, err := parse(v, "h")
			if err != nil {
				continue
			}
			if top.Covered() > router.SlotCount {
				t.Fatalf("covers %d slots", top.Covered())
			}
			for _, s := range top {
				if len(s.Nodes) == 0 {
					t.Fatal("a shard without nodes")
				}
			}
		}
	})
}
