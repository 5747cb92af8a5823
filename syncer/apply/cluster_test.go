package apply

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/router"
	"github.com/replicaof/replicaof/syncer/replica"
)

func TestSettleSlots(t *testing.T) {
	cp := func(off int64) *Checkpoint { return &Checkpoint{Fingerprint: "fp", ReplID: "r", Offset: off} }
	name := func(s int) string { return "slot " + string(rune('0'+s)) }
	cases := []struct {
		name     string
		held     []int64
		got      []*Checkpoint
		raise    bool
		wantHeld []int64
		wantBack wentBack
		lost     bool
	}{
		{"first read after a restart", []int64{-1, -1, -1}, []*Checkpoint{cp(10), cp(20), cp(30)}, true,
			[]int64{10, 20, 30}, wentBack{Slot: -1}, false},
		{"checkpoints moved on", []int64{10, 20, 30}, []*Checkpoint{cp(15), cp(20), cp(40)}, true,
			[]int64{15, 20, 40}, wentBack{Slot: -1}, false},
		{"a failover lost writes of two slots: the lowest is reported", []int64{50, 60, 70}, []*Checkpoint{cp(50), cp(40), cp(30)}, true,
			[]int64{50, 40, 30}, wentBack{Slot: 2, Offset: 30}, false},
		{"a slot without its checkpoint lost its data", []int64{50, 60, 70}, []*Checkpoint{cp(50), nil, cp(70)}, true,
			nil, wentBack{Slot: -1}, true},
		{"another source list's checkpoint is none", []int64{-1, -1}, []*Checkpoint{cp(1), {Fingerprint: "other", ReplID: "r", Offset: 1}}, true,
			nil, wentBack{Slot: -1}, true},
		{"without raise nothing moves", []int64{50, 60}, []*Checkpoint{cp(10), cp(10)}, false,
			[]int64{50, 60}, wentBack{Slot: -1}, false},
	}
	for _, c := range cases {
		held := append([]int64(nil), c.held...)
		back, err := settleSlots(held, c.got, "fp", c.raise, name, "k")
		if c.lost {
			if !errors.Is(err, ErrCheckpointLost) {
				t.Errorf("%s: err = %v, want ErrCheckpointLost", c.name, err)
			}
			continue
		}
		if err != nil || back != c.wantBack {
			t.Errorf("%s: back %+v err %v, want %+v", c.name, back, err, c.wantBack)
		}
		for i := range held {
			if held[i] != c.wantHeld[i] {
				t.Errorf("%s: held %v, want %v", c.name, held, c.wantHeld)
				break
			}
		}
	}
}

// clusterApplier is an Applier planning as on a 3-group cluster (the
// groups own what EvenSlotMap(3) gives them), for tests of planning only:
// nothing is sent.
func clusterApplier(t testing.TB, opts Options) *Applier {
	t.Helper()
	d, err := destination.New(destination.Config{Shards: []destination.Shard{
		{Addr: "127.0.0.1:1"}, {Addr: "127.0.0.1:2"}, {Addr: "127.0.0.1:3"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if opts.Checkpoint.Key == "" {
		opts.Checkpoint = CheckpointOptions{Key: CheckpointPrefix + "t", Fingerprint: "fp"}
	}
	a := New(d, opts)
	a.cluster = true
	a.cl.init(a)
	a.ckpt.init(a)
	a.stream.init(a)
	a.xs.init(a)
	for i := range a.ckpt.held {
		a.ckpt.held[i] = 0
	}
	return a
}

// plan routes cmds (offsets 1, 2, …) and seals them as Apply would,
// returning each touched slot's transaction as text, and the error.
func planCluster(t *testing.T, a *Applier, cmds ...[]string) (map[int]string, error) {
	t.Helper()
	s := &a.stream
	s.plan.reset()
	s.plan.flat = true
	var off int64
	for i, c := range cmds {
		args := make([][]byte, len(c))
		for j, x := range c {
			args[j] = []byte(x)
		}
		if err := s.route(&replica.Command{Args: args, Offset: int64(i + 1)}); err != nil {
			return nil, err
		}
		if s.job != nil {
			t.Fatalf("command %v left a cross-slot job", c)
		}
		if s.block == nil {
			off = int64(i + 1)
		}
	}
	s.seal(off)
	out := map[int]string{}
	for _, u := range s.plan.touched {
		for _, b := range s.plan.runs[u] {
			if b.slot != u {
				t.Errorf("slot %d: batch for slot %d", u, b.slot)
			}
			var parts []string
			for _, c := range b.seal() {
				parts = append(parts, strings.Join(decodeReq(t, c.Req), " "))
			}
			out[u] = strings.Join(parts, " | ")
		}
	}
	return out, nil
}

func decodeReq(t *testing.T, req []byte) []string {
	t.Helper()
	v, _, err := resp.ParseValue(req, resp.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range v.Elems {
		out = append(out, string(e.Str))
	}
	return out
}

func slotOf(k string) int { return int(router.Slot([]byte(k))) }

func TestClusterPlanPerSlot(t *testing.T) {
	a := clusterApplier(t, Options{})
	txs, err := planCluster(t, a,
		[]string{"SET", "a", "1"},
		[]string{"MSET", "a", "2", "b", "3", "{a}x", "4"},
		[]string{"INCR", "b"},
	)
	if err != nil {
		t.Fatal(err)
	}
	ckA := "__replicaof:ckpt:t{" + router.SlotTag(uint16(slotOf("a"))) + "}"
	ckB := "__replicaof:ckpt:t{" + router.SlotTag(uint16(slotOf("b"))) + "}"
	want := map[int]string{
		slotOf("a"): "MULTI | SET a 1 | MSET a 2 {a}x 4 | SET " + ckA + " fp  3 | EXEC",
		slotOf("b"): "MULTI | MSET b 3 | INCR b | SET " + ckB + " fp  3 | EXEC",
	}
	if slotOf(ckA) != slotOf("a") || slotOf(ckB) != slotOf("b") {
		t.Fatalf("checkpoint keys %s, %s are not in their slots", ckA, ckB)
	}
	if len(txs) != len(want) {
		t.Fatalf("transactions %v, want %v", txs, want)
	}
	for slot, w := range want {
		if txs[slot] != w {
			t.Errorf("slot %d:\n got %s\nwant %s", slot, txs[slot], w)
		}
	}
}

func TestClusterPlanBlocksAndKeyless(t *testing.T) {
	a := clusterApplier(t, Options{})
	ck := func(k string) string { return "__replicaof:ckpt:t{" + router.SlotTag(uint16(slotOf(k))) + "}" }
	// A block over two slots is applied one block per slot; a keyless
	// command goes once per group, with the slot of the group the block
	// touches, else the group's first slot.
	txs, err := planCluster(t, a,
		[]string{"MULTI"},
		[]string{"SET", "a", "1"},
		[]string{"SET", "b", "2"},
		[]string{"SCRIPT", "FLUSH"},
		[]string{"EXEC"},
	)
	if err != nil {
		t.Fatal(err)
	}
	m := a.d.Map()
	ga, gb := m.ShardOfSlot(uint16(slotOf("a"))), m.ShardOfSlot(uint16(slotOf("b")))
	want := map[int]string{
		slotOf("a"): "MULTI | SET a 1 | SCRIPT FLUSH | SET " + ck("a") + " fp  5 | EXEC",
		slotOf("b"): "MULTI | SET b 2",
	}
	if ga == gb {
		t.Fatalf("test keys a and b must be on two groups")
	}
	want[slotOf("b")] += " | SCRIPT FLUSH | SET " + ck("b") + " fp  5 | EXEC"
	for g := 0; g < 3; g++ {
		if g != ga && g != gb {
			u := a.anchor(g)
			want[u] = "MULTI | SCRIPT FLUSH | SET __replicaof:ckpt:t{" + router.SlotTag(uint16(u)) + "} fp  5 | EXEC"
		}
	}
	if len(txs) != len(want) {
		t.Fatalf("transactions %v, want %v", txs, want)
	}
	for slot, w := range want {
		if txs[slot] != w {
			t.Errorf("slot %d:\n got %s\nwant %s", slot, txs[slot], w)
		}
	}

	// FLUSHALL cannot be applied with per-slot checkpoints: full resync.
	for _, cmds := range [][][]string{
		{{"FLUSHALL"}},
		{{"MULTI"}, {"SET", "a", "1"}, {"FLUSHDB"}, {"EXEC"}},
	} {
		if _, err := planCluster(t, a, cmds...); !errors.Is(err, ErrClusterFlush) {
			t.Errorf("%v: err = %v, want ErrClusterFlush", cmds, err)
		}
	}
	// Under CrossShardStop a block over two slots stops.
	stop := clusterApplier(t, Options{CrossShard: CrossShardStop})
	_, err = planCluster(t, stop, []string{"MULTI"}, []string{"SET", "a", "1"}, []string{"SET", "{a}2", "2"}, []string{"SET", "b", "2"}, []string{"EXEC"})
	var ce *CrossSlotError
	if !errors.As(err, &ce) {
		t.Errorf("block over two slots under stop: err = %v, want a CrossSlotError", err)
	}
}

func TestClusterDBMap(t *testing.T) {
	a := clusterApplier(t, Options{})
	_, err := planCluster(t, a, []string{"SELECT", "3"}, []string{"SET", "a", "1"})
	var de *DBError
	if !errors.As(err, &de) || de.DB != 3 || !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "database 3") {
		t.Fatalf("write to db 3: err = %v, want a DBError naming db 3", err)
	}
	a = clusterApplier(t, Options{DBMap: map[int]int{3: 0, 4: DropDB}})
	txs, err := planCluster(t, a,
		[]string{"SELECT", "3"}, []string{"SET", "a", "1"},
		[]string{"SELECT", "4"}, []string{"SET", "b", "1"},
		[]string{"MULTI"}, []string{"SELECT", "3"}, []string{"SET", "c", "1"}, []string{"SELECT", "4"}, []string{"SET", "d", "1"}, []string{"EXEC"},
	)
	if err != nil {
		t.Fatal(err)
	}
	if len(txs) != 2 || !strings.HasPrefix(txs[slotOf("a")], "MULTI | SET a 1 | SET") || !strings.HasPrefix(txs[slotOf("c")], "MULTI | SET c 1 | SET") {
		t.Fatalf("db 3 mapped to 0, db 4 dropped: got %v", txs)
	}
	for _, tx := range txs {
		if strings.Contains(tx, "SELECT") {
			t.Errorf("a cluster transaction selects a database: %s", tx)
		}
	}
	if DropDB != config.DBDrop {
		t.Fatalf("apply.DropDB %d, config.DBDrop %d: serve passes destination.db_map as it is", DropDB, config.DBDrop)
	}
	// Standalone shards keep every database.
	for _, db := range []int{0, 1, 2, 5} {
		if to, keep, err := (&Applier{opts: Options{DBMap: map[int]int{1: 0, 2: DropDB}}}).mapDB(db); to != db || !keep || err != nil {
			t.Errorf("standalone mapDB(%d) = %d %v %v", db, to, keep, err)
		}
	}
}

func TestClusterCheckpointRefresh(t *testing.T) {
	a := clusterApplier(t, Options{})
	// Every slot is due: the first Apply refreshes all untouched slots,
	// with plain SETs, one pipeline per group.
	txs, err := planCluster(t, a, []string{"SET", "a", "1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(txs) != 1 {
		t.Fatalf("transactions %v", txs)
	}
	total := 0
	for g, b := range a.stream.plan.refresh {
		if b == nil || !b.pipe || b.shard != g {
			t.Fatalf("group %d: refresh batch %+v", g, b)
		}
		total += b.Len()
		for i, slot := range a.stream.plan.refreshSlots[g] {
			if a.d.Map().ShardOfSlot(uint16(slot)) != g {
				t.Fatalf("slot %d refreshed on group %d", slot, g)
			}
			if i == 0 {
				args := decodeReq(t, b.seal()[0].Req)
				if args[0] != "SET" || slotOf(args[1]) != slot {
					t.Fatalf("refresh %v for slot %d", args, slot)
				}
			}
		}
	}
	if total != router.SlotCount-1 {
		t.Fatalf("%d slots refreshed, want %d", total, router.SlotCount-1)
	}
	// Right after, nothing is due.
	if _, err := planCluster(t, a, []string{"SET", "a", "2"}); err != nil {
		t.Fatal(err)
	}
	for _, b := range a.stream.plan.refresh {
		if b != nil {
			t.Fatalf("refresh planned again within Every")
		}
	}
}

func TestClassifyRedirect(t *testing.T) {
	cases := []struct {
		reply string
		kind  redirectKind
		slot  uint16
		addr  string
	}{
		{"-MOVED 3999 127.0.0.1:6381\r\n", redirMoved, 3999, "127.0.0.1:6381"},
		{"-ASK 3999 127.0.0.1:6381\r\n", redirAsk, 3999, "127.0.0.1:6381"},
		{"-TRYAGAIN Multiple keys request during rehashing of slot\r\n", redirTryAgain, 0, ""},
		{"-CLUSTERDOWN The cluster is down\r\n", redirDown, 0, ""},
		{"-EXECABORT Transaction discarded because of previous errors.\r\n", notRedirect, 0, ""},
		{"-ERR wrong number of arguments\r\n", notRedirect, 0, ""},
		{"+OK\r\n", notRedirect, 0, ""},
		{"$5\r\nMOVED\r\n", notRedirect, 0, ""},
		{"", notRedirect, 0, ""},
	}
	for _, c := range cases {
		kind, r := classifyRedirect([]byte(c.reply))
		if kind != c.kind || (kind == redirMoved || kind == redirAsk) && (r.Slot != c.slot || r.Addr != c.addr) {
			t.Errorf("classifyRedirect(%q) = %v %+v, want %v slot %d addr %q", c.reply, kind, r, c.kind, c.slot, c.addr)
		}
	}
	prev := redirectWait(1)
	for n := 2; n < maxRedirects; n++ {
		w := redirectWait(n)
		if w < prev || w > 200*time.Millisecond {
			t.Fatalf("redirectWait(%d) = %v after %v", n, w, prev)
		}
		prev = w
	}
}

// TestClusterStreamMatchesReference applies a mixed stream (blocks,
// split commands, keyless commands, cross-slot commands emulated, a
// mapped database) to a real 3-master Redis Cluster in checkpoint mode
// and compares it with a reference server that ran the same commands;
// every slot's checkpoint ends at the last offset.
func TestClusterStreamMatchesReference(t *testing.T) {
	ctx := harness.Context(t, 2*time.Minute)
	ref := harness.StartRedis(t)
	cl := harness.StartCluster(t, 3, 0)
	d, err := destination.Open(ctx, destination.Config{Shards: []destination.Shard{{Addr: cl.Addr()}}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if !d.Cluster() {
		t.Fatal("not a cluster")
	}
	if err := FlushAll(ctx, d); err != nil {
		t.Fatal(err)
	}
	key := CheckpointPrefix + "ref"
	a := New(d, Options{
		Checkpoint: CheckpointOptions{Key: key, Fingerprint: "fp", Every: time.Nanosecond},
		DBMap:      map[int]int{1: 0, 2: DropDB},
	})
	fullSyncEmpty(t, ctx, a, 0)

	base := streamScript()
	var lines []string
	for _, l := range base {
		if strings.HasPrefix(l, "SELECT 3") {
			break // the rest writes databases a cluster does not have
		}
		lines = append(lines, l)
	}
	lines = append(lines,
		"PUBLISH news hello", "SET last done",
		"MULTI", "SET {t}a 1", "SET {t}b 2", "EXEC",
		"MULTI", "SET x 1", "INCR y", "SET {t}c 3", "EXEC", // over three slots: one block per slot
		"SET {s}urvivor 1", "COPY {s}urvivor {s}copied", "RENAME {user1}.name {user1}.fullname",
		"RENAME b b-renamed", "SMOVE set set2 m1", "LMOVE list list2 LEFT RIGHT", // across slots: emulated
		"SELECT 1", "SET db1key one", "INCR db1counter", // db 1 mapped onto 0
		"SELECT 2", "SET dropped x", // db 2 dropped
		"SELECT 0", "SET end 1",
	)
	script := cmds(lines...)
	conn := ref.Client().Conn()
	defer conn.Close()
	for _, cmd := range script {
		args := make([]any, len(cmd.Args))
		for i, a := range cmd.Args {
			args[i] = string(a)
		}
		if err := conn.Do(ctx, args...).Err(); err != nil && !errors.Is(err, redis.Nil) {
			t.Fatalf("reference %q: %v", args, err)
		}
	}
	sizes := []int{1, 2, 5, 3, 7}
	for i, n := 0, 0; i < len(script); n++ {
		end := min(i+sizes[n%len(sizes)], len(script))
		if err := a.Apply(ctx, script[i:end]); err != nil {
			t.Fatalf("Apply(%d..%d): %v", i, end, err)
		}
		i = end
	}
	st := a.Stats()
	if st.CrossShard != 3 {
		t.Errorf("%d commands emulated, want 3", st.CrossShard)
	}
	masters := cl.Masters(ctx)
	harness.RequireEqual(t, ctx, []*redis.Client{ref.ClientDB(0), ref.ClientDB(1)}, masters, harness.CompareOptions{Skip: internalKey})
	cps, err := Checkpoints(ctx, d, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(cps) != router.SlotCount {
		t.Fatalf("%d checkpoints, want one per slot", len(cps))
	}
	for slot, cp := range cps {
		if cp == nil || cp.Offset != int64(len(script)) || cp.Fingerprint != "fp" {
			t.Fatalf("slot %d checkpoint %+v, want offset %d", slot, cp, len(script))
		}
	}
	for i, m := range masters {
		libs, err := m.FunctionList(ctx, redis.FunctionListQuery{LibraryNamePattern: "streamlib"}).Result()
		if err != nil || len(libs) != 1 {
			t.Errorf("master %d: function library not loaded: %v %v", i, libs, err)
		}
	}
	// Continue re-reads the slots: nothing went back, nothing to rewind;
	// the same stream delivered again is skipped whole.
	if err := a.Continue(ctx, "replid0", int64(len(script))); err != nil {
		t.Fatal(err)
	}
	before := a.Stats().Skipped
	if err := a.Apply(ctx, script); err != nil {
		t.Fatal(err)
	}
	if a.Stats().Skipped == before {
		t.Error("a redelivered stream was not skipped")
	}
	harness.RequireEqual(t, ctx, []*redis.Client{ref.ClientDB(0), ref.ClientDB(1)}, masters, harness.CompareOptions{Skip: internalKey})

	// A slot that lost writes (its checkpoint set back, as a failover
	// that lost them leaves it) makes Continue ask for a rewind.
	slot := int(router.Slot([]byte("a")))
	g := d.Map().ShardOfSlot(uint16(slot))
	ck := string(slotKey(nil, key, slot))
	old := Checkpoint{Fingerprint: "fp", ReplID: "replid0", Offset: 3}.Append(nil)
	if _, err := d.Do(ctx, g, 0, "SET", ck, string(old)); err != nil {
		t.Fatal(err)
	}
	err = a.Continue(ctx, "replid0", int64(len(script)))
	var rw *RewindError
	if !errors.As(err, &rw) || rw.Offset != 3 || rw.Slot != slot {
		t.Fatalf("Continue after slot %d went back: %v, want a RewindError to 3", slot, err)
	}
	// Another source list's checkpoint, or none, is lost data.
	if _, err := d.Do(ctx, g, 0, "DEL", ck); err != nil {
		t.Fatal(err)
	}
	if err := a.Continue(ctx, "replid0", 3); !errors.Is(err, ErrCheckpointLost) {
		t.Fatalf("Continue with slot %d's checkpoint gone: %v, want ErrCheckpointLost", slot, err)
	}
}

// BenchmarkPlanCluster measures routing and sealing a batch of 64 SETs
// on random keys (no I/O): per shard on 3 standalone shards, per slot on
// a 3-group cluster (64 transactions instead of 3, checkpoint keys built
// per slot).
func BenchmarkPlanCluster(b *testing.B) {
	stream := make([]replica.Command, 64)
	for i := range stream {
		stream[i] = replica.Command{Args: [][]byte{[]byte("SET"), []byte(fmt.Sprintf("key:%d", i*7919)), []byte("v")}}
	}
	for _, cluster := range []bool{false, true} {
		b.Run(fmt.Sprintf("cluster=%v", cluster), func(b *testing.B) {
			a := clusterApplier(b, Options{Checkpoint: CheckpointOptions{Key: CheckpointPrefix + "b", Fingerprint: "fp", Every: time.Hour}})
			if !cluster {
				a.cluster = false
				a.cl.init(a)
				a.ckpt.init(a)
				a.stream.init(a)
			}
			for i := range a.ckpt.held {
				a.ckpt.held[i] = 0
			}
			a.cl.scanned = time.Now()
			s := &a.stream
			off := int64(0)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s.plan.reset()
				s.plan.flat = true
				for j := range stream {
					off++
					stream[j].Offset = off
					if err := s.route(&stream[j]); err != nil {
						b.Fatal(err)
					}
				}
				s.seal(off)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(stream)), "ns/cmd")
		})
	}
}
