package replica

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"sync"
	"testing"
)

// simQueue passes src through a queue of max bytes in memory and a spool
// of spoolMax bytes (none when 0), in one goroutine: the rng chooses at
// each step whether the reader reads (a size from sizes, when there is
// room) or the consumer takes the next segment (releasing the previous
// one, copied out only then, to prove it stayed intact while held). It
// checks the bounds after every step and returns what the consumer got.
func simQueue(t testing.TB, src []byte, max, spoolMax int64, sizes []int, rng *rand.Rand) []byte {
	dir := t.TempDir()
	var sp *spool
	if spoolMax > 0 {
		var err error
		if sp, err = openSpool(dir, spoolMax); err != nil {
			t.Fatal(err)
		}
	}
	q := newQueue(max, sp)
	ctx := context.Background()
	var out []byte
	var held segment
	have := false
	in, step := 0, 0
	for len(out) < len(src) {
		q.mu.Lock()
		room := q.room()
		q.mu.Unlock()
		pending := q.pending()
		if in < len(src) && room > 0 && (pending == 0 || rng.Intn(2) == 0) {
			p, err := q.writable(ctx)
			if err != nil {
				t.Fatal(err)
			}
			k := min(len(p), sizes[step%len(sizes)], len(src)-in)
			step++
			copy(p, src[in:in+k])
			if err := q.commit(k); err != nil {
				t.Fatal(err)
			}
			in += k
		} else {
			if have {
				out = append(out, held.data...)
				q.release(held)
				have = false
			}
			if q.pending() > 0 {
				s, err := q.pop(ctx)
				if err != nil {
					t.Fatal(err)
				}
				held, have = s, true
			} else if in == len(src) && len(out) < len(src) {
				t.Fatalf("nothing pending, %d of %d bytes out", len(out), len(src))
			}
		}
		st := q.stats()
		if st.queued > max || (sp == nil && st.spooled != 0) || (sp != nil && st.spooled > spoolMax) {
			t.Fatalf("bounds broken: %+v (max %d, spool %d)", st, max, spoolMax)
		}
		if sp != nil {
			if fi, err := sp.f.Stat(); err != nil || fi.Size() > spoolMax {
				t.Fatalf("spool file: %v, %v", fi, err)
			}
		}
	}
	if have {
		t.Fatalf("segment held past the end")
	}
	q.closeWriter()
	if sp != nil {
		if err := sp.close(); err != nil {
			t.Fatal(err)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("spool files left: %v", ents)
	}
	return out
}

func testStream(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// Every read size, small bounds: what comes out is what went in, whichever
// side of the memory/disk boundary each byte went through.
func TestQueueSpillEverySize(t *testing.T) {
	src := testStream(300, 1)
	for _, max := range []int64{1, 7, 64, 1000} {
		for _, spoolMax := range []int64{0, 1, 5, 64, 299, 4096} {
			for size := 1; size <= 70; size++ {
				rng := rand.New(rand.NewSource(int64(size)))
				out := simQueue(t, src, max, spoolMax, []int{size}, rng)
				if !bytes.Equal(out, src) {
					t.Fatalf("max %d spool %d size %d: out differs at %d", max, spoolMax, size, firstDiff(out, src))
				}
			}
		}
	}
}

// Larger than a chunk, random read sizes: chunk reuse and ring wrap.
func TestQueueSpillRandom(t *testing.T) {
	src := testStream(600<<10, 2)
	for i, c := range []struct{ max, spool int64 }{
		{100 << 10, 150 << 10}, {1, 64<<10 + 1}, {200 << 10, 1}, {3 << 20, 0}, {10 << 10, 1 << 20}, {70 << 10, 70<<10 - 1},
	} {
		t.Run(fmt.Sprintf("%d-%d", c.max, c.spool), func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(i)))
			sizes := make([]int, 97)
			for k := range sizes {
				sizes[k] = 1 + rng.Intn(100<<10)
			}
			if out := simQueue(t, src, c.max, c.spool, sizes, rng); !bytes.Equal(out, src) {
				t.Fatalf("out differs at %d", firstDiff(out, src))
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// A reader and a consumer goroutine, as in a link (run with -race).
func TestQueueSpillConcurrent(t *testing.T) {
	src := testStream(4<<20, 3)
	sp, err := openSpool(t.TempDir(), 300<<10)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.close()
	q := newQueue(128<<10, sp)
	pauses := 0
	q.onPause = func(int64) { pauses++ }
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Go(func() {
		defer q.closeWriter()
		rng := rand.New(rand.NewSource(4))
		for in := 0; in < len(src); {
			p, err := q.writable(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			k := min(len(p), 1+rng.Intn(80<<10), len(src)-in)
			copy(p, src[in:in+k])
			if err := q.commit(k); err != nil {
				t.Error(err)
				return
			}
			in += k
		}
		q.close(errDone)
	})
	var out []byte
	for {
		s, err := q.pop(ctx)
		if err == errDone {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s.data...)
		q.release(s)
	}
	wg.Wait()
	if !bytes.Equal(out, src) {
		t.Fatalf("out (%d bytes) differs at %d", len(out), firstDiff(out, src))
	}
	t.Logf("spool peak %d, reader paused %d times", q.stats().peak, pauses)
}

var errDone = fmt.Errorf("done")

// FuzzQueueSpill passes the input through a tiny queue and spool with
// read sizes taken from the input itself.
func FuzzQueueSpill(f *testing.F) {
	f.Add([]byte("*1\r\n$4\r\nPING\r\n"), uint8(3), uint8(5), int64(1))
	f.Add(testStream(1000, 5), uint8(1), uint8(0), int64(2))
	f.Add(testStream(200, 6), uint8(50), uint8(1), int64(3))
	f.Fuzz(func(t *testing.T, src []byte, max, spoolMax uint8, seed int64) {
		if len(src) == 0 || len(src) > 4096 { // a 1-byte spool costs syscalls per byte
			return
		}
		rng := rand.New(rand.NewSource(seed))
		sizes := make([]int, 1+len(src)%13)
		for k := range sizes {
			sizes[k] = 1 + int(src[k%len(src)])
		}
		out := simQueue(t, src, int64(max)+1, int64(spoolMax), sizes, rng)
		if !bytes.Equal(out, src) {
			t.Fatalf("out differs at %d", firstDiff(out, src))
		}
	})
}
