package proxy

import (
	"bufio"
	"context"
	"net"
	"testing"
	"time"

	"github.com/replicaof/replicaof/internal/harness"
)

// IdleTimeout closes clients that send nothing, keeps busy and subscribed
// ones, and costs nothing when zero.
func TestIdleTimeout(t *testing.T) {
	shard := harness.StartRedis(t)
	s, err := New(Config{Listen: "127.0.0.1:0", Destination: harness.Destination(t, shard.Addr),
		IdleTimeout: 300 * time.Millisecond, Loops: *testLoops})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() { cancel(); <-done }()

	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.DialTimeout("tcp", s.Addr().String(), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	ask := func(c net.Conn, r *bufio.Reader, cmd, want string) {
		t.Helper()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte(cmd)); err != nil {
			t.Fatal(err)
		}
		line, err := r.ReadString('\n')
		if err != nil || line != want {
			t.Fatalf("%q: %q %v, want %q", cmd, line, err, want)
		}
	}
	idle, ir := dial()
	busy, br := dial()
	sub, sr := dial()
	ask(idle, ir, "PING\r\n", "+PONG\r\n")
	ask(sub, sr, "*2\r\n$9\r\nSUBSCRIBE\r\n$2\r\nch\r\n", "*3\r\n")
	for i := 0; i < 8; i++ { // 800 ms of activity on one client
		ask(busy, br, "PING\r\n", "+PONG\r\n")
		time.Sleep(100 * time.Millisecond) // the scenario is time passing
	}
	_ = idle.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := ir.ReadByte(); err == nil {
		t.Fatal("the idle client was not closed")
	}
	ask(busy, br, "PING\r\n", "+PONG\r\n")
	// The subscriber is still connected: PING in subscribed mode answers.
	_ = sub.SetDeadline(time.Now().Add(2 * time.Second))
	for _, want := range []string{"$9\r\n", "subscribe\r\n", "$2\r\n", "ch\r\n", ":1\r\n"} {
		if line, err := sr.ReadString('\n'); err != nil || line != want {
			t.Fatalf("subscribe reply: %q %v", line, err)
		}
	}
	if _, err := sub.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := sr.ReadString('\n'); err != nil || line != "*2\r\n" {
		t.Fatalf("subscriber after the idle timeout: %q %v", line, err)
	}
}
