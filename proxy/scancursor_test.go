package proxy

import (
	"strconv"
	"testing"
	"time"

	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/router"
)

// TestScanCursorTopology: a SCAN cursor survives a new slot map that
// places every slot the same way, and is refused with a clear error,
// not silently followed, after slots moved.
func TestScanCursorTopology(t *testing.T) {
	c := newCluster(t, nil)
	ctx := harness.Context(t, time.Minute)
	_, all := c.putOnEveryShard(ctx, "k:", 40)
	p := c.client(nil)
	d := c.srv.cfg.Destination

	// Walk into shard 1, where the shard's own cursor is not 0.
	var cursor uint64
	seen := map[string]bool{}
	for {
		keys, next, err := p.Scan(ctx, cursor, "k:*", 5).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			seen[k] = true
		}
		cursor = next
		if cursor == 0 {
			t.Fatal("SCAN ended before shard 1")
		}
		b := scanBits(3)
		if int(cursor&(1<<b-1)) == 1 && cursor>>(b+scanTagBits) != 0 {
			break
		}
	}

	// The same placement in a new map: the cursor goes on.
	same, _ := router.EvenSlotMap(3)
	if err := d.SetMap(same); err != nil {
		t.Fatal(err)
	}
	keys, next, err := p.Scan(ctx, cursor, "k:*", 5).Result()
	if err != nil {
		t.Fatalf("SCAN after an equal map: %v", err)
	}
	for _, k := range keys {
		seen[k] = true
	}
	for cursor = next; cursor != 0; {
		keys, cursor, err = p.Scan(ctx, cursor, "k:*", 5).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			seen[k] = true
		}
	}
	if len(seen) != len(all) {
		t.Fatalf("SCAN saw %d keys of %d", len(seen), len(all))
	}

	// Slot 0 moves from shard 0 to shard 2: an unfinished cursor is stale.
	_, next, err = p.Scan(ctx, 0, "k:*", 5).Result()
	if err != nil || next == 0 {
		t.Fatalf("SCAN 0: %d %v", next, err)
	}
	moved, err := router.NewSlotMap([][]router.SlotRange{
		{{Lo: 1, Hi: 5460}}, {{Lo: 5461, Hi: 10922}}, {{Lo: 0, Hi: 0}, {Lo: 10923, Hi: 16383}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.SetMap(moved); err != nil {
		t.Fatal(err)
	}
	err = p.Do(ctx, "SCAN", strconv.FormatUint(next, 10), "MATCH", "k:*").Err()
	wantErr(t, err, errStaleCursor)
	// A new scan in the new map sees every key once.
	seen = map[string]bool{}
	cursor = 0
	for {
		keys, cursor, err = p.Scan(ctx, cursor, "k:*", 5).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			seen[k] = true
		}
		if cursor == 0 {
			break
		}
	}
	// Every shard is scanned whole, whatever it owns.
	if len(seen) != len(all) {
		t.Fatalf("SCAN in the new map saw %d keys, want %d", len(seen), len(all))
	}
}

// TestScanCursorEncoding checks the cursor layout round trip and its
// tags: never 0, the fresh tag independent of any address.
func TestScanCursorEncoding(t *testing.T) {
	m, _ := router.EvenSlotMap(5)
	h := digestOf(m)
	if h != digestOf(m) {
		t.Fatal("digest not stable")
	}
	m2, _ := router.EvenSlotMap(5)
	if digestOf(m2) != h {
		t.Fatal("equal maps, different digests")
	}
	m3, _ := router.EvenSlotMap(4)
	if digestOf(m3) == h {
		t.Fatal("different maps, same digest")
	}
	for _, addr := range []string{"", "127.0.0.1:1", "127.0.0.1:2"} {
		for _, started := range []bool{false, true} {
			if tag := scanTag(h, addr, started); tag == 0 || tag >= 1<<scanTagBits {
				t.Fatalf("tag %d", tag)
			}
		}
	}
	if scanTag(h, "a", false) != scanTag(h, "b", false) {
		t.Fatal("a fresh tag depends on the address")
	}
	if scanTag(h, "127.0.0.1:1", true) == scanTag(h, "127.0.0.1:2", true) {
		t.Fatal("two addresses, one tag (a 1 in 65536 chance: change the addresses)")
	}
}

// FuzzScanCursor: any cursor a client sends is read without panicking;
// a valid one names an existing shard; every cursor the proxy hands out
// reads back as the shard and shard cursor it encodes.
func FuzzScanCursor(f *testing.F) {
	for _, c := range []uint64{0, 1, 2, 3, 4, 5, 1 << 20, 1<<64 - 1, 12345678901234} {
		f.Add(c, uint64(7), uint8(1))
	}
	dests := map[int]*Server{}
	for _, n := range []int{1, 2, 3, 5, 16} {
		addrs := make([]string, n)
		for i := range addrs {
			addrs[i] = "127.0.0.1:" + strconv.Itoa(7000+i)
		}
		dests[n] = &Server{cfg: Config{Destination: harness.Destination(f, addrs...)}}
	}
	f.Fuzz(func(t *testing.T, cur, sc uint64, n uint8) {
		s := dests[[]int{1, 2, 3, 5, 16}[int(n)%5]]
		shards := s.shards().Len()
		shard, _, tags, msg := s.scanStart(cur)
		if msg != "" {
			if cur == 0 {
				t.Fatalf("cursor 0 refused: %s", msg)
			}
			return
		}
		if shard < 0 || shard >= shards {
			t.Fatalf("cursor %d: shard %d of %d", cur, shard, shards)
		}
		// Round trip from a shard's reply.
		next, ok := s.scanNext(tags, shard, sc)
		if !ok {
			if sc>>(64-scanBits(shards)-scanTagBits) == 0 {
				t.Fatalf("shard cursor %d did not fit", sc)
			}
			return
		}
		if next == 0 {
			if sc != 0 || shard != shards-1 {
				t.Fatalf("scan ended at shard %d of %d, shard cursor %d", shard, shards, sc)
			}
			return
		}
		wantShard, wantSC := shard, sc
		if sc == 0 {
			wantShard, wantSC = shard+1, 0
		}
		sh2, sc2, _, msg := s.scanStart(next)
		if msg != "" || sh2 != wantShard || sc2 != wantSC {
			t.Fatalf("cursor %d reads back as shard %d cursor %d (%q), want %d %d", next, sh2, sc2, msg, wantShard, wantSC)
		}
	})
}
