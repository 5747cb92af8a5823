package replica

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replicaof/replicaof/internal/errclass"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/resp"
)

// recorder is an in-memory Handler that keeps copies of what it gets.
type recorder struct {
	mu     sync.Mutex
	events []string
	rdb    []byte
	cmds   []string
	offs   []int64
	// gate, when set, is received from before each Apply.
	gate chan struct{}
	// failApply makes Apply fail.
	failApply error
	// stopEarly makes FullSync return after reading n bytes.
	stopEarly int
}

func (r *recorder) FullSync(ctx context.Context, replID string, offset, size int64, rdb io.Reader) error {
	r.mu.Lock()
	r.events = append(r.events, fmt.Sprintf("fullsync %s %d %d", replID, offset, size))
	early := r.stopEarly
	r.mu.Unlock()
	var b []byte
	var err error
	if early > 0 {
		b = make([]byte, early)
		_, err = io.ReadFull(rdb, b)
	} else {
		b, err = io.ReadAll(rdb)
	}
	r.mu.Lock()
	r.rdb = append(r.rdb, b...)
	r.mu.Unlock()
	return err
}

func (r *recorder) Continue(ctx context.Context, replID string, offset int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf("continue %s %d", replID, offset))
	return nil
}

func (r *recorder) Apply(ctx context.Context, cmds []Command) error {
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failApply != nil {
		return r.failApply
	}
	for _, c := range cmds {
		parts := []string{strings.ToUpper(string(c.Args[0]))} // go-redis sends lower case
		for _, a := range c.Args[1:] {
			parts = append(parts, string(a))
		}
		r.cmds = append(r.cmds, strings.Join(parts, " "))
		r.offs = append(r.offs, c.Offset)
	}
	return nil
}

func (r *recorder) snapshot() (events []string, rdb []byte, cmds []string, offs []int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...), append([]byte(nil), r.rdb...),
		append([]string(nil), r.cmds...), append([]int64(nil), r.offs...)
}

func (r *recorder) ncmds() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.cmds)
}

// fakeMaster accepts links on a loopback port; the test plays the master.
type fakeMaster struct {
	t     *testing.T
	ln    net.Listener
	conns chan net.Conn
	done  chan struct{}
}

func newFakeMaster(t *testing.T) *fakeMaster {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &fakeMaster{t: t, ln: ln, conns: make(chan net.Conn, 4), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			m.conns <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-m.done
		close(m.conns)
		for c := range m.conns {
			c.Close()
		}
	})
	return m
}

// mconn is the master's side of one link connection.
type mconn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func (m *fakeMaster) accept() *mconn {
	m.t.Helper()
	select {
	case c := <-m.conns:
		m.t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		return &mconn{t: m.t, c: c, r: bufio.NewReader(c)}
	case <-time.After(10 * time.Second):
		m.t.Fatal("no connection from the link")
		return nil
	}
}

// next reads the next non-empty command the link sent.
func (c *mconn) next() string {
	c.t.Helper()
	var cmd resp.Command
	for {
		if err := resp.ReadCommand(c.r, &cmd, resp.Limits{}); err != nil {
			c.t.Fatalf("master: reading from link: %v", err)
		}
		if len(cmd.Args) == 0 {
			continue // newline keepalive
		}
		var parts []string
		for _, a := range cmd.Args {
			parts = append(parts, string(a))
		}
		return strings.Join(parts, " ")
	}
}

func (c *mconn) expect(want string) {
	c.t.Helper()
	if got := c.next(); got != want {
		c.t.Fatalf("master: got %q from the link, want %q", got, want)
	}
}

func (c *mconn) send(s string) {
	c.t.Helper()
	if _, err := c.c.Write([]byte(s)); err != nil {
		c.t.Fatalf("master: write: %v", err)
	}
}

// handshake answers PING and the REPLCONFs and returns the PSYNC line.
func (c *mconn) handshake() string {
	c.t.Helper()
	c.expect("PING")
	c.send("+PONG\r\n")
	if got := c.next(); !strings.HasPrefix(got, "REPLCONF listening-port ") {
		c.t.Fatalf("got %q", got)
	}
	c.send("+OK\r\n")
	c.expect("REPLCONF capa eof capa psync2")
	c.send("+OK\r\n")
	return c.next()
}

type runResult struct {
	pos Position
	err error
}

// startLink runs link in the background; cleanup cancels and waits.
func startLink(t *testing.T, l *Link, resume Position) (<-chan runResult, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan runResult, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pos, err := l.Run(ctx, resume)
		ch <- runResult{pos, err}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("link did not stop")
		}
	})
	return ch, cancel
}

// streamAfterEmptySync starts l against m and plays the master through the
// handshake and a full sync of an empty RDB, up to the link's first ACK:
// the link is then streaming from offset 0.
func streamAfterEmptySync(t *testing.T, m *fakeMaster, l *Link) (*mconn, <-chan runResult, context.CancelFunc) {
	t.Helper()
	res, cancel := startLink(t, l, Position{})
	c := m.accept()
	c.handshake()
	c.send("+FULLRESYNC " + replA + " 0\r\n$0\r\n")
	c.expect("REPLCONF ACK 0")
	return c, res, cancel
}

// setStream returns n SETs of key:<i> to a 100-byte value, as a master
// streams them.
func setStream(n int) []byte {
	var stream []byte
	for i := range n {
		stream = resp.AppendCommandString(stream, "SET", "key:"+strconv.Itoa(i), strings.Repeat("v", 100))
	}
	return stream
}

// writeAsync writes b to the link from another goroutine (the link may not
// read it all until its handler moves) and returns the write's error.
func (c *mconn) writeAsync(b []byte) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := c.c.Write(b)
		done <- err
	}()
	return done
}

// requireSets checks that h got the n SETs of stream = setStream(n) in
// order, the last at the stream's end offset.
func requireSets(t *testing.T, h *recorder, stream []byte, n int) {
	t.Helper()
	_, _, cmds, offs := h.snapshot()
	if len(cmds) != n || cmds[n-1] != "SET key:"+strconv.Itoa(n-1)+" "+strings.Repeat("v", 100) || offs[n-1] != int64(len(stream)) {
		t.Fatalf("%d commands, last %q", len(cmds), cmds[len(cmds)-1])
	}
	for i := 0; i < n; i += 997 {
		if !strings.HasPrefix(cmds[i], "SET key:"+strconv.Itoa(i)+" ") {
			t.Fatalf("command %d is %q", i, cmds[i])
		}
	}
}

func wait(t *testing.T, ch <-chan runResult) runResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
		return runResult{}
	}
}

func testConfig(t *testing.T, addr string) Config {
	return Config{Addr: addr, AckInterval: time.Hour, ReadTimeout: 10 * time.Second,
		Logger: harness.Logger(t, slog.LevelDebug)}
}

const replA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
const replB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

func TestLinkDiskFullSync(t *testing.T) {
	m := newFakeMaster(t)
	h := &recorder{}
	cfg := testConfig(t, m.ln.Addr().String())
	cfg.ListeningPort = 7777
	l := New(cfg, h)
	res, cancel := startLink(t, l, Position{})
	c := m.accept()
	c.expect("PING")
	c.send("+PONG\r\n")
	c.expect("REPLCONF listening-port 7777")
	c.send("+OK\r\n")
	c.expect("REPLCONF capa eof capa psync2")
	c.send("+OK\r\n")
	c.expect("PSYNC ? -1")
	// Keepalives before the reply and before the payload header.
	c.send("\n\n+FULLRESYNC " + replA + " 42\r\n\n\n")
	harness.WaitFor(t, 5*time.Second, "transfer state", func() bool { return l.Stats().State == StateTransfer })
	select1 := string(resp.AppendCommandString(nil, "SELECT", "0"))
	set := string(resp.AppendCommandString(nil, "SET", "k", "v"))
	ping := string(resp.AppendCommandString(nil, "ping"))
	getack := string(resp.AppendCommandString(nil, "REPLCONF", "GETACK", "*"))
	c.send("$9\r\nREDIS0011" + select1 + set + ping)
	c.expect("REPLCONF ACK 42") // right after the snapshot
	harness.WaitFor(t, 5*time.Second, "applied", func() bool { return l.Stats().AppliedOffset == int64(42+len(select1+set+ping)) })
	c.send(getack)
	want := 42 + len(select1+set+ping+getack)
	c.expect("REPLCONF ACK " + strconv.Itoa(want))
	st := l.Stats()
	if st.State != StateStreaming || st.ReplID != replA || st.RDBSize != 9 || st.RDBTransferred != 9 || st.ReadOffset != int64(want) || st.LastCommand.IsZero() {
		t.Fatalf("stats %+v", st)
	}
	events, rdb, cmds, offs := h.snapshot()
	if fmt.Sprint(events) != "[fullsync "+replA+" 42 9]" || string(rdb) != "REDIS0011" ||
		fmt.Sprint(cmds) != "[SELECT 0 SET k v]" || fmt.Sprint(offs) != fmt.Sprint([]int64{42 + 23, int64(42 + len(select1+set))}) {
		t.Fatalf("handler saw %q %q %q %v", events, rdb, cmds, offs)
	}
	cancel()
	r := wait(t, res)
	if !errors.Is(r.err, context.Canceled) || r.pos != (Position{replA, int64(want)}) {
		t.Fatalf("Run returned %+v", r)
	}
	if l.Stats().State != StateIdle {
		t.Fatalf("state %v after Run", l.Stats().State)
	}
}

func TestLinkDisklessMarkStraddles(t *testing.T) {
	m := newFakeMaster(t)
	h := &recorder{}
	l := New(testConfig(t, m.ln.Addr().String()), h)
	res, _ := startLink(t, l, Position{})
	c := m.accept()
	if got := c.handshake(); got != "PSYNC ? -1" {
		t.Fatalf("psync %q", got)
	}
	mark := "0123456789abcdefghij0123456789abcdefghij"
	payload := strings.Repeat("R", 1000)
	c.send("+FULLRESYNC " + replA + " 0\r\n$EOF:" + mark + "\r\n" + payload + mark[:25])
	// Wait until the link has consumed what it can before the mark's end.
	harness.WaitFor(t, 5*time.Second, "payload read", func() bool {
		return l.Stats().RDBTransferred >= int64(len(payload)+25-39)
	})
	c.send(mark[25:])
	// The stream must not be needed to finish the snapshot: the link acks.
	c.expect("REPLCONF ACK 0")
	set := string(resp.AppendCommandString(nil, "SET", "k", "v"))
	c.send(set)
	harness.WaitFor(t, 5*time.Second, "command", func() bool { return h.ncmds() == 1 })
	_, rdb, _, _ := h.snapshot()
	if string(rdb) != payload {
		t.Fatalf("payload %d bytes: %q", len(rdb), rdb[max(0, len(rdb)-50):])
	}
	if st := l.Stats(); st.RDBSize != -1 || st.RDBTransferred != int64(len(payload)) || st.AppliedOffset != int64(len(set)) {
		t.Fatalf("stats %+v", st)
	}
	c.c.Close()
	r := wait(t, res)
	if errclass.Classify(r.err) != errclass.Retry || r.pos != (Position{replA, int64(len(set))}) {
		t.Fatalf("Run returned %+v (%v)", r, errclass.Classify(r.err))
	}
}

func TestLinkContinueNewID(t *testing.T) {
	m := newFakeMaster(t)
	h := &recorder{}
	cfg := testConfig(t, m.ln.Addr().String())
	cfg.AckInterval = 10 * time.Millisecond
	l := New(cfg, h)
	res, _ := startLink(t, l, Position{ReplID: replA, Offset: 100})
	c := m.accept()
	if got := c.handshake(); got != "PSYNC "+replA+" 101" {
		t.Fatalf("psync %q", got)
	}
	set := string(resp.AppendCommandString(nil, "SET", "k", "v"))
	c.send("+CONTINUE " + replB + "\r\n" + set)
	// Periodic ACKs carry the applied offset.
	for c.next() != "REPLCONF ACK "+strconv.Itoa(100+len(set)) {
	}
	events, _, cmds, offs := h.snapshot()
	if fmt.Sprint(events) != "[continue "+replB+" 100]" || fmt.Sprint(cmds) != "[SET k v]" || offs[0] != int64(100+len(set)) {
		t.Fatalf("handler saw %q %q %v", events, cmds, offs)
	}
	c.c.Close()
	r := wait(t, res)
	if r.pos != (Position{replB, int64(100 + len(set))}) || errclass.Classify(r.err) != errclass.Retry {
		t.Fatalf("Run returned %+v", r)
	}
}

func TestLinkErrors(t *testing.T) {
	cases := []struct {
		name     string
		password string
		user     string
		resume   Position
		master   func(c *mconn)
		class    errclass.Class
		is       error
		pos      Position
	}{
		{name: "loading", resume: Position{replA, 5}, master: func(c *mconn) {
			c.handshake()
			c.send("\n-LOADING Redis is loading the dataset in memory\r\n")
		}, class: errclass.Retry, pos: Position{replA, 5}},
		{name: "nomasterlink", master: func(c *mconn) {
			c.handshake()
			c.send("-NOMASTERLINK Can't SYNC while not connected with my master\r\n")
		}, class: errclass.Retry},
		{name: "oom", master: func(c *mconn) {
			c.handshake()
			c.send("-OOM command not allowed when used memory > 'maxmemory'.\r\n")
		}, class: errclass.Fatal},
		{name: "wrong password", password: "bad", master: func(c *mconn) {
			c.expect("PING")
			c.send("-NOAUTH Authentication required.\r\n")
			c.expect("AUTH bad")
			c.send("-WRONGPASS invalid username-password pair or user is disabled.\r\n")
		}, class: errclass.Fatal, is: ErrAuth},
		{name: "acl user refused", user: "u", password: "p", master: func(c *mconn) {
			c.expect("PING")
			c.send("-NOPERM this user has no permissions\r\n")
			c.expect("AUTH u p")
			c.send("-WRONGPASS nope\r\n")
		}, class: errclass.Fatal, is: ErrAuth},
		{name: "no password given", master: func(c *mconn) {
			c.expect("PING")
			c.send("-NOAUTH Authentication required.\r\n")
			c.next()
			c.send("-NOAUTH Authentication required.\r\n")
		}, class: errclass.Fatal, is: ErrAuth},
		{name: "ping refused", master: func(c *mconn) {
			c.expect("PING")
			c.send("-ERR something else\r\n")
		}, class: errclass.Fatal},
		{name: "fullresync on resume", resume: Position{replA, 10}, master: func(c *mconn) {
			c.handshake()
			c.send("+FULLRESYNC " + replB + " 0\r\n")
		}, class: errclass.FullResync, is: ErrFullResync},
		{name: "cut during snapshot", master: func(c *mconn) {
			c.handshake()
			c.send("+FULLRESYNC " + replB + " 0\r\n$100\r\nREDIS")
			c.c.Close()
		}, class: errclass.FullResync, is: ErrFullResync},
		{name: "garbage stream", master: func(c *mconn) {
			c.handshake()
			c.send("+FULLRESYNC " + replB + " 0\r\n$1\r\nX" + "GET k\r\n")
		}, class: errclass.Retry, is: ErrProtocol, pos: Position{replB, 0}},
		{name: "closed before reply", resume: Position{replA, 7}, master: func(c *mconn) {
			c.handshake()
			c.c.Close()
		}, class: errclass.Retry, pos: Position{replA, 7}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := newFakeMaster(t)
			cfg := testConfig(t, m.ln.Addr().String())
			cfg.Username, cfg.Password = tc.user, tc.password
			l := New(cfg, &recorder{})
			res, _ := startLink(t, l, tc.resume)
			tc.master(m.accept())
			r := wait(t, res)
			if r.err == nil || errclass.Classify(r.err) != tc.class || (tc.is != nil && !errors.Is(r.err, tc.is)) || r.pos != tc.pos {
				t.Fatalf("Run returned %+v, class %v", r, errclass.Classify(r.err))
			}
			if tc.password != "" && strings.Contains(r.err.Error(), tc.password+" ") {
				t.Fatalf("password in error: %v", r.err)
			}
		})
	}
}

func TestLinkHandlerErrors(t *testing.T) {
	m := newFakeMaster(t)
	boom := errors.New("destination rejected the payload")
	l := New(testConfig(t, m.ln.Addr().String()), &recorder{failApply: boom})
	res, _ := startLink(t, l, Position{replA, 0})
	c := m.accept()
	c.handshake()
	c.send("+CONTINUE\r\n" + string(resp.AppendCommandString(nil, "SET", "k", "v")))
	r := wait(t, res)
	if !errors.Is(r.err, boom) || !errors.Is(r.err, ErrHandler) || errclass.Classify(r.err) != errclass.Fatal || r.pos != (Position{replA, 0}) {
		t.Fatalf("Run returned %+v", r)
	}

	// A FullSync that stops reading early is a Handler bug.
	l = New(testConfig(t, m.ln.Addr().String()), &recorder{stopEarly: 2})
	res, _ = startLink(t, l, Position{})
	c = m.accept()
	c.handshake()
	c.send("+FULLRESYNC " + replA + " 0\r\n$4\r\nabcd")
	r = wait(t, res)
	if !errors.Is(r.err, ErrHandler) || r.pos != (Position{}) {
		t.Fatalf("Run returned %+v", r)
	}
}

// A slow Handler fills the queue up to MaxQueueBytes and no further; then
// everything is applied in order.
func TestLinkBackpressure(t *testing.T) {
	m := newFakeMaster(t)
	gate := make(chan struct{})
	h := &recorder{gate: gate}
	cfg := testConfig(t, m.ln.Addr().String())
	cfg.MaxQueueBytes = 256 << 10
	l := New(cfg, h)
	c, _, _ := streamAfterEmptySync(t, m, l)
	const n = 20000
	stream := setStream(n)
	writeDone := c.writeAsync(stream)
	harness.WaitFor(t, 5*time.Second, "queue full", func() bool {
		return l.Stats().QueuedBytes >= cfg.MaxQueueBytes-chunkSize
	})
	if q := l.Stats().QueuedBytes; q > cfg.MaxQueueBytes {
		t.Fatalf("queued %d > max %d", q, cfg.MaxQueueBytes)
	}
	close(gate) // let Apply run
	if err := <-writeDone; err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, 10*time.Second, "all applied", func() bool { return l.Stats().AppliedOffset == int64(len(stream)) })
	requireSets(t, h, stream, n)
}

func TestLinkReadTimeout(t *testing.T) {
	m := newFakeMaster(t)
	cfg := testConfig(t, m.ln.Addr().String())
	cfg.ReadTimeout = 200 * time.Millisecond
	l := New(cfg, &recorder{})
	res, _ := startLink(t, l, Position{})
	c := m.accept()
	c.handshake()
	c.send("+FULLRESYNC " + replA + " 0\r\n$0\r\n")
	r := wait(t, res) // the master says nothing more
	var ne net.Error
	if !errors.As(r.err, &ne) || !ne.Timeout() || errclass.Classify(r.err) != errclass.Retry || r.pos != (Position{replA, 0}) {
		t.Fatalf("Run returned %+v", r)
	}
}

func TestLinkRunTwice(t *testing.T) {
	m := newFakeMaster(t)
	l := New(testConfig(t, m.ln.Addr().String()), &recorder{})
	startLink(t, l, Position{})
	m.accept()
	harness.WaitFor(t, 5*time.Second, "running", func() bool { return l.running.Load() })
	if _, err := l.Run(context.Background(), Position{}); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Run: %v", err)
	}
	if _, err := New(Config{}, &recorder{}).Run(context.Background(), Position{}); err == nil {
		t.Fatal("empty Addr accepted")
	}
}
