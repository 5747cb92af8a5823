//go:build linux

package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/resp"
)

// The proxy runs in the test's process, so its memory is this process's
// resident set (the shards are processes of their own).

// rssMeter follows the process's resident set from a baseline: peak is
// the most seen by sample, and, where the kernel lets a process reset
// its high-water mark (/proc/self/clear_refs, "5"), VmHWM too, which
// catches peaks between samples.
type rssMeter struct {
	t          *testing.T
	base, peak int64
	hwm        bool
}

func newRSSMeter(t *testing.T) *rssMeter {
	t.Helper()
	debug.FreeOSMemory() // the baseline leaves out what earlier tests freed
	m := &rssMeter{t: t}
	m.base = m.read("VmRSS")
	m.peak = m.base
	m.hwm = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	return m
}

// read returns a /proc/self/status field in bytes.
func (m *rssMeter) read(field string) int64 {
	m.t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		m.t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				m.t.Fatalf("%s: %q", field, line)
			}
			return kb << 10
		}
	}
	m.t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

func (m *rssMeter) sample() {
	m.peak = max(m.peak, m.read("VmRSS"))
}

// growth is the peak over the baseline so far.
func (m *rssMeter) growth() int64 {
	m.sample()
	if m.hwm {
		m.peak = max(m.peak, m.read("VmHWM"))
	}
	return m.peak - m.base
}

// check fails the test when the resident set grew by more than limit.
func (m *rssMeter) check(what string, limit int64) {
	m.t.Helper()
	g := m.growth()
	m.t.Logf("%s: resident set %d MB at the start, grew by at most %d MB (limit %d MB)",
		what, m.base>>20, g>>20, limit>>20)
	if g > limit {
		m.t.Fatalf("%s: the resident set grew by %d MB, over %d MB", what, g>>20, limit>>20)
	}
}

// getCmds is n GET commands for keys in turn, as one pipeline.
func getCmds(keys []string, n int) []byte {
	var b []byte
	for i := 0; i < n; i++ {
		b = resp.AppendCommandString(b, "GET", keys[i%len(keys)])
	}
	return b
}

// bulk is the RESP encoding of v.
func bulk(v string) string { return "$" + strconv.Itoa(len(v)) + "\r\n" + v + "\r\n" }

// flooder writes rounds copies of a chunk to a connection from a
// goroutine, until all went out, a write fails (the proxy closed the
// client) or stop closes the connection. written counts the copies sent.
type flooder struct {
	nc      net.Conn
	done    chan struct{} // closed when the goroutine ends; then err is set
	err     error
	written atomic.Int64
}

func flood(nc net.Conn, chunk []byte, rounds int) *flooder {
	f := &flooder{nc: nc, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for i := 0; i < rounds; i++ {
			if _, err := nc.Write(chunk); err != nil {
				f.err = err
				return
			}
			f.written.Add(1)
		}
	}()
	return f
}

// stop closes the connection and waits for the goroutine.
func (f *flooder) stop() {
	f.nc.Close()
	<-f.done
}

// TestSlowReader: a client pipelines a million GETs of 10 KB values and
// reads nothing. The proxy stops reading it (or closes it) instead of
// holding its replies: its memory stays within a small multiple of
// MaxPending, not the 10 GB the replies would take, and another client is
// answered all along. What the slow client does get is right and in
// order.
func TestSlowReader(t *testing.T) {
	const maxPending = 4 << 20
	c := newCluster(t, func(cfg *Config) { cfg.MaxPending = maxPending })
	ctx := harness.Context(t, 3*time.Minute)
	val := strings.Repeat("v", 10<<10)
	var keys []string
	for _, ks := range c.keysOnEveryShard("big:", 10) {
		keys = append(keys, ks...)
	}
	for _, k := range keys {
		c.put(ctx, k, val)
	}
	c.put(ctx, "small", "s")

	other := harness.DialRaw(t, c.addr)
	ask := func() {
		t.Helper()
		_ = other.Conn.SetDeadline(time.Now().Add(30 * time.Second))
		other.Send("GET small\r\n")
		other.Expect("$1\r\ns\r\n")
		other.Send("GET " + keys[7] + "\r\n")
		other.Expect(bulk(val))
	}
	ask()

	rss := newRSSMeter(t)
	slow := harness.DialRaw(t, c.addr)
	_ = slow.Conn.SetDeadline(time.Time{})
	const perChunk, rounds = 1000, 1000 // 1M GETs
	chunk := getCmds(keys, perChunk)
	fl := flood(slow.Conn, chunk, rounds)
	defer fl.stop()

	// Until the writer is done (all sent, or the proxy closed the client)
	// or makes no progress for 40 rounds in a row (the proxy stopped
	// reading it), the other client keeps asking.
	finished := false
	stuck, last := 0, int64(-1)
	for round := 0; round < 1200 && !finished && stuck < 40; round++ {
		ask()
		rss.sample()
		select {
		case <-fl.done:
			finished = true
		case <-time.After(50 * time.Millisecond): // pacing only
		}
		if w := fl.written.Load(); w == last {
			stuck++
		} else {
			stuck, last = 0, w
		}
	}
	var werr error
	if finished {
		werr = fl.err
	}
	t.Logf("slow reader: %d of %d GETs written (done %v, err %v)", fl.written.Load()*perChunk, rounds*perChunk, finished, werr)
	if finished && werr == nil {
		t.Fatal("the proxy read a million GETs from a client that reads no reply")
	}
	rss.check("slow reader", 64*maxPending)
	ask()

	// What reached the slow client is the right replies in order; read up
	// to 200 of them (the proxy may have closed it).
	_ = slow.Conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	want := []byte(bulk(val))
	got := make([]byte, len(want))
	n := 0
	for ; n < 200; n++ {
		if _, err := io.ReadFull(slow.Reader, got); err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !isReset(err) {
				t.Fatalf("slow reader, reply %d: %v", n, err)
			}
			break
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("slow reader, reply %d: %.40q…", n, got)
		}
	}
	t.Logf("slow reader: read %d replies afterwards", n)
	fl.stop()
	ask()
}

// TestStalledShard: with one shard stopped (SIGSTOP), commands to it fail
// with a clear error within the timeout, clients of the other shards keep
// being served, clients flooding the stalled shard cost bounded memory,
// and the shard serves again once resumed.
func TestStalledShard(t *testing.T) {
	const maxPending = 4 << 20
	c := newCluster(t, func(cfg *Config) { cfg.Timeout = time.Second; cfg.MaxPending = maxPending })
	ctx := harness.Context(t, 3*time.Minute)
	per := c.keysOnEveryShard("st:", 20)
	val := strings.Repeat("w", 10<<10)
	for s, ks := range per {
		for _, k := range ks {
			c.put(ctx, k, fmt.Sprintf("%d:%s", s, k))
		}
	}
	for _, k := range per[1] {
		c.put(ctx, k, val)
	}
	other := harness.DialRaw(t, c.addr)
	ask := func(i int) {
		t.Helper()
		_ = other.Conn.SetDeadline(time.Now().Add(30 * time.Second))
		for _, s := range []int{0, 2} {
			k := per[s][i%len(per[s])]
			other.Send("GET " + k + "\r\n")
			other.Expect(bulk(fmt.Sprintf("%d:%s", s, k)))
		}
	}
	ask(0)
	other.Send("GET " + per[1][0] + "\r\n")
	other.Expect(bulk(val))

	rss := newRSSMeter(t)
	stalled := c.shards[1]
	if err := stalled.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if err := stalled.Signal(syscall.SIGCONT); err != nil {
				t.Error(err)
			}
		}
	}
	defer resume()

	// Four clients pipeline 5,000 GETs each at the stalled shard; each
	// reads its replies, all errors naming the shard.
	const flooders, gets = 4, 5000
	type result struct {
		errs  int
		first string
		err   error
		took  time.Duration
	}
	results := make(chan result, flooders)
	var wg sync.WaitGroup
	for f := 0; f < flooders; f++ {
		r := harness.DialRaw(t, c.addr)
		_ = r.Conn.SetDeadline(time.Now().Add(2 * time.Minute))
		fl := flood(r.Conn, getCmds(per[1], 1000), gets/1000)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer fl.stop()
			start := time.Now()
			var res result
			for i := 0; i < gets; i++ {
				line, err := r.Reader.ReadString('\n')
				if err != nil {
					res.err = fmt.Errorf("reply %d: %w", i, err)
					break
				}
				if !strings.HasPrefix(line, "-") {
					res.err = fmt.Errorf("reply %d from a stopped shard: %q", i, line)
					break
				}
				if res.errs == 0 {
					res.first = strings.TrimSpace(line)
				}
				res.errs++
			}
			res.took = time.Since(start)
			results <- res
		}()
	}
	// The other shards answer meanwhile.
	for i := 0; i < 50; i++ {
		ask(i)
		rss.sample()
	}
	wg.Wait()
	close(results)
	for res := range results {
		if res.err != nil {
			t.Fatal(res.err)
		}
		t.Logf("flooder: %d errors in %v, the first %q", res.errs, res.took.Round(time.Millisecond), res.first)
		if !strings.HasPrefix(res.first, "-ERR shard 1 unavailable") {
			t.Fatalf("error from the stalled shard: %q, want it named", res.first)
		}
	}
	// One more command to the stalled shard fails the same way, and a
	// command over all shards fails as a whole, naming it.
	_ = other.Conn.SetDeadline(time.Now().Add(30 * time.Second))
	other.Send("GET " + per[1][1] + "\r\n")
	other.ExpectPrefix("-ERR shard 1 unavailable")
	other.Send("MGET " + per[0][0] + " " + per[1][0] + " " + per[2][0] + "\r\n")
	other.ExpectPrefix("-ERR shard 1 unavailable")
	ask(1)
	rss.check("stalled shard", 64*maxPending)

	resume()
	harness.WaitFor(t, 30*time.Second, "the resumed shard serves again", func() bool {
		v, err := other.Do("GET", per[1][2])
		return err == nil && v == bulk(val)
	})
	ask(2)
}

// TestHalfClosedClient: a client that sends its commands and then shuts
// down its writing side (nc -q, piped input) still gets every reply,
// then the proxy closes the connection.
func TestHalfClosedClient(t *testing.T) {
	c := newCluster(t, nil)
	ctx := harness.Context(t, time.Minute)
	c.put(ctx, "k", "v")
	var keys []string
	for _, ks := range c.keysOnEveryShard("hc:", 5) {
		keys = append(keys, ks...)
	}
	for _, k := range keys {
		c.put(ctx, k, "val-"+k)
	}
	for _, tc := range []struct {
		name, in, want string
	}{
		{"one inline GET", "GET k\r\n", bulk("v")},
		{"inline GET without CRLF at the end", "PING\r\nGET k", "+PONG\r\n"},
		{"pipeline over every shard", string(getCmds(keys, 10000)), func() string {
			var b strings.Builder
			for i := 0; i < 10000; i++ {
				b.WriteString(bulk("val-" + keys[i%len(keys)]))
			}
			return b.String()
		}()},
		{"MGET then PING", "MGET k " + strings.Join(keys[:4], " ") + "\r\nPING\r\n",
			"*5\r\n" + bulk("v") + bulk("val-"+keys[0]) + bulk("val-"+keys[1]) + bulk("val-"+keys[2]) + bulk("val-"+keys[3]) + "+PONG\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := net.DialTimeout("tcp", c.addr, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(time.Minute))
			// The reader runs while the input is sent: a large pipeline's
			// replies must be taken for the proxy to read all of it.
			out := make(chan []byte, 1)
			rerr := make(chan error, 1)
			go func() {
				b, err := io.ReadAll(bufio.NewReader(nc))
				out <- b
				rerr <- err
			}()
			if _, err := io.WriteString(nc, tc.in); err != nil {
				t.Fatal(err)
			}
			if err := nc.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			got := <-out
			if err := <-rerr; err != nil {
				t.Fatalf("read: %v (after %d bytes)", err, len(got))
			}
			if string(got) != tc.want {
				t.Fatalf("got %d bytes %.80q…, want %d bytes %.80q…", len(got), got, len(tc.want), tc.want)
			}
		})
	}
}

// TestMaxPendingGoroutines: on the goroutine driver, a pipeline whose
// replies turn out over the hard limit closes its client (counted in INFO
// stats), a single reply over it is delivered whole, and clients whose
// replies change size have their batches cut to fit and get every reply.
func TestMaxPendingGoroutines(t *testing.T) {
	const maxPending = 64 << 10 // hard limit 256 KB
	c := newCluster(t, func(cfg *Config) { cfg.Loops = 0; cfg.MaxPending = maxPending })
	ctx := harness.Context(t, 2*time.Minute)
	val := strings.Repeat("x", 10<<10)
	huge := strings.Repeat("h", 1<<20)
	c.put(ctx, "v10k", val)
	c.put(ctx, "huge", huge)
	c.put(ctx, "small", "s")
	c.put(ctx, "v100", strings.Repeat("c", 100))
	stat := func() string {
		t.Helper()
		r := harness.DialRaw(t, c.addr)
		reply, err := r.Do("INFO", "stats")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(reply, "\r\n") {
			if v, ok := strings.CutPrefix(line, "client_output_buffer_limit_disconnections:"); ok {
				return v
			}
		}
		t.Fatalf("no client_output_buffer_limit_disconnections in INFO stats:\n%s", reply)
		return ""
	}
	if got := stat(); got != "0" {
		t.Fatalf("disconnections before: %s", got)
	}

	// A client that reads nothing, with a small receive buffer: a first
	// batch (64 commands, the slow start) of 100-byte replies fills it,
	// so they wait in the proxy's socket; the next batch, 200 GETs of
	// 10 KB, is 2 MB, over the hard limit: the client is closed.
	d := net.Dialer{Timeout: 10 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1) }); err != nil {
			return err
		}
		return serr
	}}
	nc, err := d.Dial("tcp", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(time.Minute))
	if _, err := nc.Write(append(getCmds([]string{"v100"}, slowStartOps), getCmds([]string{"v10k"}, 200)...)); err != nil {
		t.Fatal(err)
	}
	// Read only once the proxy has decided: it counts the close first.
	harness.WaitFor(t, 30*time.Second, "the client over the hard limit closed", func() bool { return stat() == "1" })
	n, err := io.Copy(io.Discard, nc)
	if err != nil && !isReset(err) {
		t.Fatal(err)
	}
	if n > slowStartOps*int64(len(bulk(strings.Repeat("c", 100)))) {
		t.Fatalf("the client over the hard limit read %d bytes: more than its first batch", n)
	}

	// One reply over the hard limit is delivered; then smaller replies
	// in a long pipeline come in batches that fit.
	r := harness.DialRaw(t, c.addr)
	r.Send("GET huge\r\n")
	r.Expect(bulk(huge))
	r.Send(string(getCmds([]string{"v10k", "small"}, 2000)))
	for i := 0; i < 2000; i++ {
		if i%2 == 0 {
			r.Expect(bulk(val))
		} else {
			r.Expect(bulk("s"))
		}
	}
	// A pipeline of small replies, then one of larger ones.
	r.Send(string(getCmds([]string{"small"}, 5000)))
	r.Expect(strings.Repeat(bulk("s"), 5000))
	r.Send(string(getCmds([]string{"v10k"}, 1000)))
	for i := 0; i < 1000; i++ {
		r.Expect(bulk(val))
	}
	if got := stat(); got != "1" {
		t.Fatalf("disconnections at the end: %s", got)
	}
}
