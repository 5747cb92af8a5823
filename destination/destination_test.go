package destination

import (
	"context"
	"errors"
	"testing"

	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/router"
)

func TestNew(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without shards succeeded")
	}
	if _, err := New(Config{Shards: []Shard{{Addr: "a:1"}, {}}}); err == nil {
		t.Fatal("New with a shard without address succeeded")
	}
	m1, _ := router.EvenSlotMap(1)
	if _, err := New(Config{Shards: []Shard{{Addr: "a:1"}, {Addr: "b:1"}}, Map: m1}); err == nil {
		t.Fatal("New with a map of another size succeeded")
	}
	d, err := New(Config{Shards: []Shard{{Addr: "a:1"}, {Addr: "b:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Len() != 2 || d.Map().Len() != 2 || d.Addr(1) != "b:1" {
		t.Fatalf("Len %d, Map().Len %d, Addr(1) %s", d.Len(), d.Map().Len(), d.Addr(1))
	}
}

// SetMap swaps the placement atomically and refuses a map of another size.
func TestSetMap(t *testing.T) {
	d, err := New(Config{Shards: []Shard{{Addr: "a:1"}, {Addr: "b:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	old := d.Map()
	rs := func(s string) []router.SlotRange { r, _ := router.ParseSlotRanges(s); return r }
	m, err := router.NewSlotMap([][]router.SlotRange{rs("0-99"), rs("100-16383")})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetMap(m); err != nil {
		t.Fatal(err)
	}
	if d.Map() != m || old.ShardOfSlot(100) != 0 || d.Map().ShardOfSlot(100) != 1 {
		t.Fatal("SetMap did not swap the map")
	}
	m1, _ := router.EvenSlotMap(1)
	if err := d.SetMap(m1); err == nil || d.Map() != m {
		t.Fatal("SetMap took a map of another size")
	}
	if err := d.SetMap(nil); err == nil {
		t.Fatal("SetMap(nil) succeeded")
	}
}

// Init holds AUTH (with or without a user) and SELECT, each only when
// needed; PoolConfig fills the per-shard fields of a template.
func TestInit(t *testing.T) {
	d, err := New(Config{Shards: []Shard{{Addr: "a:1"}, {Addr: "b:1", Password: "pw"}, {Addr: "c:1", User: "u", Password: "pw"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, tc := range []struct {
		shard, db int
		want      []byte
	}{
		{0, 0, nil},
		{0, 3, resp.AppendCommandString(nil, "SELECT", "3")},
		{1, 0, resp.AppendCommandString(nil, "AUTH", "pw")},
		{2, 5, resp.AppendCommandString(resp.AppendCommandString(nil, "AUTH", "u", "pw"), "SELECT", "5")},
	} {
		if got := d.Init(tc.shard, tc.db); string(got) != string(tc.want) {
			t.Errorf("Init(%d, %d) = %q, want %q", tc.shard, tc.db, got, tc.want)
		}
	}
	c := d.PoolConfig(2, 5, pool.Config{Conns: 7})
	if c.Addr != "c:1" || c.Shard != 2 || c.Conns != 7 || string(c.Init) != string(d.Init(2, 5)) {
		t.Fatalf("PoolConfig: %+v", c)
	}
}

// Pool sets hand out one backend per (shard, db); after Close every
// backend, old or new, fails its calls with pool.ErrClosed.
func TestPoolsClose(t *testing.T) {
	d, err := New(Config{Shards: []Shard{{Addr: "127.0.0.1:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	ps := d.NewPools(pool.Config{})
	if ps.Get(0, 1) != ps.Get(0, 1) || ps.Get(0, 1) == ps.Get(0, 2) || d.Backend(0, 1) == ps.Get(0, 1) {
		t.Fatal("pool sets do not keep one backend per (shard, db)")
	}
	d.Close()
	for _, b := range []*pool.Backend{ps.Get(0, 1), ps.Get(0, 9), d.Backend(0, 0), d.NewPools(pool.Config{}).Get(0, 0)} {
		if _, err := b.Do(context.Background(), resp.AppendCommandString(nil, "PING"), nil); !errors.Is(err, pool.ErrClosed) {
			t.Fatalf("after Close: %v, want pool.ErrClosed", err)
		}
	}
}

func TestRefused(t *testing.T) {
	d, err := New(Config{Shards: []Shard{{Addr: "a:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	req := resp.AppendCommandString(nil, "SET", "k", "v")
	var we *WriteError
	if err := d.Refused(0, 2, req, "OOM command not allowed"); !errors.Is(err, ErrOOM) || !errors.As(err, &we) || we.Command != "SET" || we.Key != "k" || we.DB != 2 {
		t.Fatalf("Refused OOM: %v", err)
	}
	if err := d.Refused(0, 0, req, "WRONGTYPE x"); !errors.Is(err, ErrRejected) {
		t.Fatalf("Refused WRONGTYPE: %v", err)
	}
	if err := d.Refused(0, 0, req, "WRONGTYPE x"); !errors.Is(err, resp.Error("WRONGTYPE x")) {
		t.Fatalf("Refused does not wrap the reply: %v", err)
	}
}

func TestParseRedirect(t *testing.T) {
	for _, tc := range []struct {
		reply string
		want  Redirect
		ok    bool
	}{
		{"-MOVED 3999 127.0.0.1:6381\r\n", Redirect{Slot: 3999, Addr: "127.0.0.1:6381"}, true},
		{"-ASK 0 10.0.0.1:7000\r\n", Redirect{Ask: true, Slot: 0, Addr: "10.0.0.1:7000"}, true},
		{"-MOVED 16383 ::1:7000\r\n", Redirect{Slot: 16383, Addr: "[::1]:7000"}, true},
		{"-MOVED 12 :7000\r\n", Redirect{Slot: 12, Addr: ":7000"}, true},
		{"-MOVED 16384 h:1\r\n", Redirect{}, false},
		{"-MOVED 1 h\r\n", Redirect{}, false},
		{"-MOVED 1 h:0\r\n", Redirect{}, false},
		{"-MOVEDX 1 h:1\r\n", Redirect{}, false},
		{"+MOVED 1 h:1\r\n", Redirect{}, false},
		{"-ERR MOVED 1 h:1\r\n", Redirect{}, false},
	} {
		got, ok := ParseRedirect([]byte(tc.reply))
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseRedirect(%q) = %+v, %v; want %+v, %v", tc.reply, got, ok, tc.want, tc.ok)
		}
	}
	for reply, want := range map[string][2]bool{
		"-TRYAGAIN Multiple keys request during rehashing of slot\r\n": {true, false},
		"-CLUSTERDOWN The cluster is down\r\n":                         {false, true},
		"-CLUSTERDOWNX\r\n":                                            {false, false},
		"+TRYAGAIN\r\n":                                                {false, false},
		"-ERR TRYAGAIN\r\n":                                            {false, false},
	} {
		if IsTryAgain([]byte(reply)) != want[0] || IsClusterDown([]byte(reply)) != want[1] {
			t.Errorf("%q: IsTryAgain %v IsClusterDown %v, want %v", reply, IsTryAgain([]byte(reply)), IsClusterDown([]byte(reply)), want)
		}
	}
}
