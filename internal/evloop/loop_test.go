//go:build linux

package evloop

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// funcs is a Handler made of functions; nil ones do the defaults: Data
// consumes nothing, EOF closes, Closed records.
type funcs struct {
	data   func(c *Conn, b []byte) int
	eof    func(c *Conn)
	closed func(c *Conn, err error)
}

func (h *funcs) Data(c *Conn, b []byte) int {
	if h.data == nil {
		return 0
	}
	return h.data(c, b)
}

func (h *funcs) EOF(c *Conn) {
	if h.eof == nil {
		c.Close()
		return
	}
	h.eof(c)
}

func (h *funcs) Closed(c *Conn, err error) {
	if h.closed != nil {
		h.closed(c, err)
	}
}

func echo() *funcs {
	return &funcs{data: func(c *Conn, b []byte) int { c.Write(b); return len(b) }}
}

// server runs a loop and a loopback listener whose accepted sockets are
// attached with h; both stop when the test ends.
type server struct {
	l     *Loop
	ln    net.Listener
	conns chan *Conn
}

func startServer(t testing.TB, cfg Config, h Handler, lim Limits) *server {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{l: l, ln: ln, conns: make(chan *Conn, 1024)}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := l.Run(); err != nil {
			t.Error(err)
		}
	}()
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			fd, err := Detach(nc)
			if err != nil {
				t.Error(err)
				return
			}
			if err := l.Execute(func() {
				c, err := l.Attach(fd, h, lim)
				if err != nil {
					t.Error(err)
					return
				}
				select {
				case s.conns <- c:
				default:
				}
			}); err != nil {
				closeFd(fd)
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		l.Stop()
		wg.Wait()
	})
	return s
}

func (s *server) dial(t testing.TB) *net.TCPConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", s.ln.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	return nc.(*net.TCPConn)
}

// on runs f on the loop and waits for it.
func (s *server) on(t testing.TB, f func()) {
	t.Helper()
	done := make(chan struct{})
	if err := s.l.Execute(func() { f(); close(done) }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the loop did not run the function")
	}
}

func TestEcho(t *testing.T) {
	s := startServer(t, Config{}, echo(), Limits{})
	nc := s.dial(t)
	if _, err := nc.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(nc, got); err != nil || string(got) != "hello" {
		t.Fatalf("got %q, %v", got, err)
	}
	// 8 MB each way: the replies outgrow the socket buffers, so writes
	// go partial and wait for EPOLLOUT while reads keep coming.
	big := bytes.Repeat([]byte("0123456789abcdef"), 512<<10)
	go func() { nc.Write(big) }()
	got = make([]byte, len(big))
	if _, err := io.ReadFull(nc, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, big) {
		t.Fatal("echoed bytes differ")
	}
}

func TestManyClients(t *testing.T) {
	s := startServer(t, Config{}, echo(), Limits{})
	const clients, rounds = 200, 50
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		nc := s.dial(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := bufio.NewReader(nc)
			for j := 0; j < rounds; j++ {
				msg := fmt.Sprintf("client %d round %d\n", i, j)
				if _, err := nc.Write([]byte(msg)); err != nil {
					errs <- err
					return
				}
				line, err := r.ReadString('\n')
				if err != nil || line != msg {
					errs <- fmt.Errorf("client %d: got %q, %v; want %q", i, line, err, msg)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s.on(t, func() {
		if n := s.l.Open(); n != clients {
			t.Errorf("open conns: %d, want %d", n, clients)
		}
	})
}

// lineServer answers every line with its upper-case copy later, from
// another goroutine (as a shard would), and closes a half-closed client
// once every reply is written.
type lineServer struct {
	funcs
	pending map[*Conn]int
}

func TestHalfCloseGetsReplies(t *testing.T) {
	var closed atomic.Int32
	ls := &lineServer{pending: map[*Conn]int{}}
	// One worker answers the lines in order, 10ms late each.
	type job struct {
		c    *Conn
		line []byte
	}
	jobs := make(chan job, 100)
	worker := make(chan struct{})
	go func() {
		defer close(worker)
		for j := range jobs {
			time.Sleep(10 * time.Millisecond)
			j.c.Loop().Execute(func() {
				j.c.Write(j.line)
				ls.pending[j.c]--
				if ls.pending[j.c] == 0 && j.c.EOF() {
					j.c.Close()
				}
			})
		}
	}()
	defer func() { close(jobs); <-worker }()
	ls.data = func(c *Conn, b []byte) int {
		n := 0
		for {
			i := bytes.IndexByte(b[n:], '\n')
			if i < 0 {
				return n
			}
			ls.pending[c]++
			jobs <- job{c, bytes.ToUpper(b[n : n+i+1])}
			n += i + 1
		}
	}
	ls.eof = func(c *Conn) {
		if ls.pending[c] == 0 {
			c.Close()
		}
	}
	ls.closed = func(c *Conn, err error) {
		if err != nil {
			t.Errorf("closed with %v", err)
		}
		closed.Add(1)
	}
	s := startServer(t, Config{}, ls, Limits{})
	nc := s.dial(t)
	if _, err := nc.Write([]byte("get a\nget b\nget c\n")); err != nil {
		t.Fatal(err)
	}
	if err := nc.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(nc)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "GET A\nGET B\nGET C\n" {
		t.Fatalf("got %q", got)
	}
	s.on(t, func() {})
	if closed.Load() != 1 {
		t.Fatalf("Closed called %d times", closed.Load())
	}
}

func TestPauseResume(t *testing.T) {
	var calls atomic.Int32
	h := &funcs{data: func(c *Conn, b []byte) int {
		calls.Add(1)
		// Take one line, then pause: the rest stays pending.
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return 0
		}
		c.Write(b[:i+1])
		c.PauseRead()
		return i + 1
	}}
	s := startServer(t, Config{}, h, Limits{})
	nc := s.dial(t)
	r := bufio.NewReader(nc)
	nc.Write([]byte("one\ntwo\nthree\n"))
	if line, err := r.ReadString('\n'); err != nil || line != "one\n" {
		t.Fatalf("got %q, %v", line, err)
	}
	c := <-s.conns
	nc.Write([]byte("four\n"))
	time.Sleep(50 * time.Millisecond)
	if n := calls.Load(); n != 1 {
		t.Fatalf("Data called %d times while paused", n)
	}
	// Each resume delivers the held input at once, with no new bytes.
	for _, want := range []string{"two\n", "three\n", "four\n"} {
		s.on(t, c.ResumeRead)
		if line, err := r.ReadString('\n'); err != nil || line != want {
			t.Fatalf("got %q, %v; want %q", line, err, want)
		}
	}
}

// amplify answers every input byte with 1 KB.
func amplify() *funcs {
	reply := bytes.Repeat([]byte("x"), 1024)
	return &funcs{data: func(c *Conn, b []byte) int {
		for range b {
			c.Write(reply)
		}
		return len(b)
	}}
}

func TestOutputPausesReading(t *testing.T) {
	const pauseAt = 256 << 10
	s := startServer(t, Config{ReadSize: 64}, amplify(), Limits{PauseOutput: pauseAt, MaxOutput: 64 << 20})
	nc := s.dial(t)
	// 32 MB of replies asked for while reading none: the loop must stop
	// reading once 256 KB wait, not buffer 32 MB.
	const asks = 32 << 10
	go nc.Write(make([]byte, asks))
	c := <-s.conns
	time.Sleep(300 * time.Millisecond)
	var pending int
	var paused bool
	s.on(t, func() { pending, paused = c.Pending(), c.Paused() })
	if !paused || pending < pauseAt || pending > pauseAt+64*1024 {
		t.Fatalf("pending %d, paused %v; want paused with %d..%d pending", pending, paused, pauseAt, pauseAt+64*1024)
	}
	n, err := io.CopyN(io.Discard, nc, asks*1024)
	if err != nil || n != asks*1024 {
		t.Fatalf("read %d of %d replies: %v", n, asks*1024, err)
	}
}

func TestOutputLimitCloses(t *testing.T) {
	errc := make(chan error, 1)
	h := amplify()
	h.closed = func(c *Conn, err error) { errc <- err }
	s := startServer(t, Config{}, h, Limits{PauseOutput: -1, MaxOutput: 1 << 20})
	nc := s.dial(t)
	// 32 MB of replies, more than the socket buffers hold.
	go nc.Write(make([]byte, 32<<10))
	select {
	case err := <-errc:
		if !errors.Is(err, ErrOutputTooLarge) {
			t.Fatalf("closed with %v, want ErrOutputTooLarge", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("not closed")
	}
}

func TestInputLimitCloses(t *testing.T) {
	errc := make(chan error, 1)
	h := &funcs{closed: func(c *Conn, err error) { errc <- err }} // consumes nothing
	s := startServer(t, Config{}, h, Limits{MaxInput: 1024})
	nc := s.dial(t)
	nc.Write(make([]byte, 4096))
	select {
	case err := <-errc:
		if !errors.Is(err, ErrInputTooLarge) {
			t.Fatalf("closed with %v, want ErrInputTooLarge", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("not closed")
	}
	if _, err := io.ReadAll(nc); err != nil {
		t.Fatalf("the client should see the close: %v", err)
	}
}

func TestCloseFromAnotherGoroutine(t *testing.T) {
	errc := make(chan error, 2)
	h := echo()
	h.closed = func(c *Conn, err error) { errc <- err }
	s := startServer(t, Config{}, h, Limits{})
	nc := s.dial(t)
	nc.Write([]byte("bye"))
	c := <-s.conns
	echoed := make([]byte, 3)
	if _, err := io.ReadFull(nc, echoed); err != nil {
		t.Fatal(err)
	}
	// Close writes what is pending first.
	if err := s.l.Execute(func() { c.Write([]byte("!")); c.Close() }); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(nc)
	if err != nil || string(got) != "!" {
		t.Fatalf("got %q, %v; want \"!\" then EOF", got, err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("Closed got %v, want nil", err)
	}

	// Stop from another goroutine closes every Conn with ErrClosed.
	nc2 := s.dial(t)
	nc2.Write([]byte("x"))
	<-s.conns
	s.l.Stop()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Closed got %v, want ErrClosed", err)
	}
	if got, _ := io.ReadAll(nc2); len(got) > 1 {
		t.Fatalf("read %q after Stop", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.l.Execute(func() {}) == nil {
		if time.Now().After(deadline) {
			t.Fatal("Execute still accepted after Stop")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestResetWhilePaused(t *testing.T) {
	errc := make(chan error, 1)
	h := &funcs{
		data:   func(c *Conn, b []byte) int { c.PauseRead(); return len(b) },
		closed: func(c *Conn, err error) { errc <- err },
	}
	s := startServer(t, Config{}, h, Limits{})
	nc := s.dial(t)
	nc.Write([]byte("x"))
	<-s.conns
	time.Sleep(20 * time.Millisecond)
	nc.SetLinger(0) // close with a reset
	nc.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("closed without an error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a reset socket that is not being read was not closed")
	}
}

func closeFd(fd int) { unix.Close(fd) }

// FuzzStream feeds a byte stream, written in the pieces the fuzzer
// chooses, through a loop whose handler consumes a data-dependent prefix
// of its input each time (1 to all of it) and echoes what it consumed in
// pieces: what comes back must be exactly the stream's start, in order,
// whatever the reads, leftovers and output chunks were.
func FuzzStream(f *testing.F) {
	f.Add([]byte("*1\r\n$4\r\nPING\r\n"), []byte{3, 1, 200})
	f.Add(bytes.Repeat([]byte("abcdefgh"), 300), []byte{0, 7, 13, 255})
	f.Add([]byte{0}, []byte{})
	l, err := New(Config{ReadSize: 7})
	if err != nil {
		f.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); l.Run() }()
	defer func() { l.Stop(); <-done }()
	f.Fuzz(func(t *testing.T, data, pieces []byte) {
		if len(data) == 0 {
			return
		}
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		var consumed int
		closed := make(chan struct{})
		h := &funcs{
			data: func(c *Conn, b []byte) int {
				k := 1 + int(b[len(b)-1])%len(b)
				for at := 0; at < k; {
					n := 1 + int(b[at])%5
					n = min(n, k-at)
					c.Write(b[at : at+n])
					at += n
				}
				consumed += k
				return k
			},
			closed: func(c *Conn, err error) { close(closed) },
		}
		if err := l.Execute(func() {
			if _, err := l.Attach(fds[0], h, Limits{}); err != nil {
				t.Error(err)
				unix.Close(fds[0])
				close(closed)
			}
		}); err != nil {
			t.Fatal(err)
		}
		peer := os.NewFile(uintptr(fds[1]), "peer")
		defer peer.Close()
		go func() {
			rest := data
			for i := 0; len(rest) > 0; i++ {
				n := len(rest)
				if i < len(pieces) && pieces[i] > 0 {
					n = min(n, int(pieces[i]))
				}
				if _, err := peer.Write(rest[:n]); err != nil {
					return
				}
				rest = rest[n:]
			}
			unix.Shutdown(fds[1], unix.SHUT_WR)
		}()
		peer.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(peer)
		if err != nil {
			t.Fatal(err)
		}
		<-closed
		if !bytes.Equal(got, data[:len(got)]) {
			t.Fatalf("echo %q is not a prefix of %q", got, data)
		}
		if len(got) != consumed {
			t.Fatalf("echoed %d bytes, consumed %d", len(got), consumed)
		}
	})
}

// A released Conn carries on as a net.Conn on a goroutine, with the input
// the loop had buffered.
func TestRelease(t *testing.T) {
	type released struct {
		fd  int
		buf []byte
		err error
	}
	rel := make(chan released, 1)
	h := &funcs{data: func(c *Conn, b []byte) int {
		// Answer the first line, then hand the rest over.
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return 0
		}
		c.Write(b[:i+1])
		if _, _, err := c.Release(); err == nil {
			t.Error("Release with output pending succeeded")
		}
		return i + 1
	}}
	s := startServer(t, Config{}, h, Limits{})
	nc := s.dial(t)
	nc.Write([]byte("first\nsecond"))
	r := bufio.NewReader(nc)
	if line, err := r.ReadString('\n'); err != nil || line != "first\n" {
		t.Fatalf("got %q, %v", line, err)
	}
	c := <-s.conns
	s.on(t, func() {
		fd, buf, err := c.Release()
		rel <- released{fd, append([]byte(nil), buf...), err}
	})
	got := <-rel
	if got.err != nil {
		t.Fatal(got.err)
	}
	if string(got.buf) != "second" {
		t.Fatalf("buffered %q, want \"second\"", got.buf)
	}
	f := os.NewFile(uintptr(got.fd), "released")
	gc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	nc.Write([]byte(" third"))
	gc.SetDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 6)
	if _, err := io.ReadFull(gc, b); err != nil || string(b) != " third" {
		t.Fatalf("the goroutine read %q, %v", b, err)
	}
	gc.Write([]byte("from the goroutine\n"))
	if line, err := r.ReadString('\n'); err != nil || line != "from the goroutine\n" {
		t.Fatalf("got %q, %v", line, err)
	}
	s.on(t, func() {
		if n := s.l.Open(); n != 0 {
			t.Errorf("%d conns still open on the loop", n)
		}
	})
}

// Timers run on the loop in order of their times; a stopped one never
// runs.
func TestTimers(t *testing.T) {
	s := startServer(t, Config{}, echo(), Limits{})
	fired := make(chan int, 4)
	s.on(t, func() {
		s.l.After(30*time.Millisecond, func() { fired <- 2 })
		s.l.After(10*time.Millisecond, func() { fired <- 1 })
		stop := s.l.After(20*time.Millisecond, func() { fired <- 99 })
		if !s.l.StopTimer(stop) || s.l.StopTimer(stop) {
			t.Error("StopTimer: want true once, then false")
		}
	})
	for want := 1; want <= 2; want++ {
		select {
		case got := <-fired:
			if got != want {
				t.Fatalf("timer %d fired, want %d", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("timer did not fire")
		}
	}
	select {
	case got := <-fired:
		t.Fatalf("timer %d fired after being stopped", got)
	case <-time.After(50 * time.Millisecond):
	}
}

// Input a busy handler left unconsumed survives the peer's EOF, and
// Redeliver hands it over; the replies still reach the half-closed peer.
func TestEOFKeepsInput(t *testing.T) {
	busy := true
	h := &funcs{
		data: func(c *Conn, b []byte) int {
			if busy {
				return 0
			}
			c.Write(b)
			if c.EOF() {
				c.Close()
			}
			return len(b)
		},
		eof: func(c *Conn) {
			busy = false
			c.Redeliver()
		},
	}
	s := startServer(t, Config{}, h, Limits{})
	nc := s.dial(t)
	nc.Write([]byte("pending"))
	time.Sleep(20 * time.Millisecond)
	nc.CloseWrite()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(nc)
	if err != nil || string(got) != "pending" {
		t.Fatalf("got %q, %v; want \"pending\" then EOF", got, err)
	}
}

// TakeOutput hands over pending output in order and leaves none.
func TestTakeOutput(t *testing.T) {
	var got []byte
	h := &funcs{data: func(c *Conn, b []byte) int {
		c.Write([]byte("one,"))
		c.Write(bytes.Repeat([]byte("x"), chunkSize))
		c.Write([]byte("two"))
		got = c.TakeOutput(got[:0])
		if c.Pending() != 0 {
			t.Errorf("%d bytes still pending", c.Pending())
		}
		c.Write([]byte("!"))
		return len(b)
	}}
	s := startServer(t, Config{}, h, Limits{})
	nc := s.dial(t)
	nc.Write([]byte("go"))
	b := make([]byte, 1)
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(nc, b); err != nil || string(b) != "!" {
		t.Fatalf("got %q, %v", b, err)
	}
	s.on(t, func() {
		want := "one," + string(bytes.Repeat([]byte("x"), chunkSize)) + "two"
		if string(got) != want {
			t.Errorf("took %d bytes, want %d", len(got), len(want))
		}
	})
}
