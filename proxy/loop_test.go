//go:build linux

package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/resp"
)

// The event-loop driver serves plain clients by default: these tests
// check what is its own (the rest of the suite runs on it too).

func TestLoopsServePlainClients(t *testing.T) {
	c := newCluster(t, func(cfg *Config) { cfg.Loops = 2 })
	if c.srv.loops == nil || len(c.srv.loops.all) != 2 {
		t.Fatal("want 2 event loops serving plain clients")
	}
	ctx := harness.Context(t, time.Minute)
	p := c.client(nil)
	if err := p.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	g := newClusterOn(t, c, func(cfg *Config) { cfg.Loops = 0 })
	if err := g.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
}

// A stalled shard (SIGSTOP) fails its own commands within the timeout,
// while the loop goes on serving the other shards meanwhile.
func TestLoopStalledShard(t *testing.T) {
	c := newCluster(t, func(cfg *Config) { cfg.Timeout = time.Second })
	ctx := harness.Context(t, time.Minute)
	per := c.keysOnEveryShard("st:", 1)
	for _, ks := range per {
		c.put(ctx, ks[0], "v")
	}
	p := c.client(nil)
	if err := p.Get(ctx, per[1][0]).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.shards[1].Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = c.shards[1].Signal(syscall.SIGCONT)
		}
	}
	defer resume()
	stalled := make(chan error, 1)
	start := time.Now()
	go func() { stalled <- p.Get(ctx, per[1][0]).Err() }()
	// Other shards answer while shard 1's command waits, on another
	// client of the same loop.
	q := c.client(nil)
	for i := 0; i < 20; i++ {
		for _, s := range []int{0, 2} {
			if v, err := q.Get(ctx, per[s][0]).Result(); err != nil || v != "v" {
				t.Fatalf("shard %d while shard 1 is stalled: %q %v", s, v, err)
			}
		}
	}
	err := <-stalled
	wantErr(t, err, "ERR shard 1 unavailable")
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the stalled shard's command failed after %v (timeout 1s)", d)
	}
	resume()
	harness.WaitFor(t, 10*time.Second, "shard 1 serves again", func() bool {
		v, _ := p.Get(ctx, per[1][0]).Result()
		return v == "v"
	})
}

// A client that half-closes (nc, piped input) still gets every reply.
func TestLoopHalfClosedClient(t *testing.T) {
	c := newCluster(t, nil)
	ctx := harness.Context(t, time.Minute)
	per := c.keysOnEveryShard("hc:", 1)
	var in bytes.Buffer
	var want bytes.Buffer
	for s, ks := range per {
		c.put(ctx, ks[0], fmt.Sprint("v", s))
		fmt.Fprintf(&in, "GET %s\r\n", ks[0])
		want.Write(resp.AppendBulkString(nil, fmt.Sprint("v", s)))
	}
	in.WriteString("PING\r\n")
	want.WriteString("+PONG\r\n")
	nc, err := net.Dial("tcp", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write(in.Bytes()); err != nil {
		t.Fatal(err)
	}
	nc.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(nc)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want.String() {
		t.Fatalf("got %q, want %q", got, want.String())
	}
}

// A client that stops reading its replies is no longer read past
// MaxPending: it is not closed, no reply is lost, and the loop keeps
// serving other clients meanwhile.
func TestLoopSlowReader(t *testing.T) {
	c := newCluster(t, func(cfg *Config) { cfg.MaxPending = 256 << 10; cfg.Loops = 1 })
	ctx := harness.Context(t, time.Minute)
	val := strings.Repeat("x", 10<<10)
	c.put(ctx, "big", val)
	const n = 2000 // 20 MB of replies: 80 times the bound
	nc, err := net.Dial("tcp", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	sent := make(chan error, 1)
	go func() {
		var err error
		for i := 0; i < n && err == nil; i++ {
			_, err = nc.Write([]byte("GET big\r\n"))
		}
		sent <- err
	}()
	time.Sleep(300 * time.Millisecond)
	// Meanwhile another client is served.
	if err := c.client(nil).Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReaderSize(nc, 64<<10)
	for i := 0; i < n; i++ {
		reply, err := resp.ReadReply(br, nil, resp.Limits{})
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if !bytes.Equal(reply, resp.AppendBulkString(nil, val)) {
			t.Fatalf("reply %d: %.40q…", i, reply)
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
}

// A command that needs a connection of its own hands the client over to
// a goroutine with the replies before it and the input after it, in
// order.
func TestLoopHandOver(t *testing.T) {
	c := newCluster(t, nil)
	ctx := harness.Context(t, time.Minute)
	c.put(ctx, "h", "v")
	nc, err := net.Dial("tcp", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	// One write: a read, the subscription, then commands the goroutine
	// must find buffered.
	if _, err := nc.Write([]byte("GET h\r\nSUBSCRIBE ch\r\nPING\r\nUNSUBSCRIBE ch\r\nGET h\r\n")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	var got []string
	for range 5 {
		reply, err := resp.ReadReply(br, nil, resp.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(reply))
	}
	want := []string{"$1\r\nv\r\n", "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n", "*2\r\n$4\r\npong\r\n$0\r\n\r\n",
		"*3\r\n$11\r\nunsubscribe\r\n$2\r\nch\r\n:0\r\n", "$1\r\nv\r\n"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	// The handed-over client is still counted, and closes cleanly.
	if n := c.srv.clientCount(); n != 1 {
		t.Fatalf("%d clients, want 1", n)
	}
}

// CLIENT KILL-like closing of an admin from another goroutine reaches a
// loop client (DropAdmin).
func TestLoopDropAdmin(t *testing.T) {
	c := newCluster(t, func(cfg *Config) { cfg.AdminPassword = func() string { return "pw" } })
	ctx := harness.Context(t, time.Minute)
	p := c.client(&redis.Options{Username: "admin", Password: "pw"})
	if err := p.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if n := c.srv.DropAdmin(); n != 1 {
		t.Fatalf("DropAdmin closed %d, want 1", n)
	}
	harness.WaitFor(t, 5*time.Second, "the admin's connection closed", func() bool {
		return c.srv.clientCount() == 0
	})
}

// A client that takes none of its replies for Timeout is closed, as on
// the goroutine driver; until then it is only paused.
func TestLoopStalledReaderClosed(t *testing.T) {
	c := newCluster(t, func(cfg *Config) { cfg.MaxPending = 256 << 10; cfg.Loops = 1; cfg.Timeout = time.Second })
	ctx := harness.Context(t, time.Minute)
	c.put(ctx, "big", strings.Repeat("x", 10<<10))
	nc, err := net.Dial("tcp", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	go func() {
		for i := 0; i < 20000; i++ {
			if _, err := nc.Write([]byte("GET big\r\n")); err != nil {
				return
			}
		}
	}()
	harness.WaitFor(t, 10*time.Second, "the client admitted", func() bool { return c.srv.clientCount() == 1 })
	harness.WaitFor(t, 10*time.Second, "the stalled reader closed", func() bool { return c.srv.clientCount() == 0 })
	// The connection is reset: what the proxy had written is dropped.
	if _, err := io.Copy(io.Discard, nc); err != nil && !isReset(err) {
		t.Fatalf("after the close: %v", err)
	}
}

// A half-closed client whose last command needs the goroutine driver
// (here SUBSCRIBE) still gets its replies.
func TestLoopHalfClosedHandOver(t *testing.T) {
	c := newCluster(t, nil)
	ctx := harness.Context(t, time.Minute)
	c.put(ctx, "hl", "v")
	nc, err := net.Dial("tcp", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write([]byte("GET hl\r\nSUBSCRIBE ch\r\n")); err != nil {
		t.Fatal(err)
	}
	nc.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(nc)
	if err != nil && !isReset(err) {
		t.Fatal(err)
	}
	want := "$1\r\nv\r\n*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
	if string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
