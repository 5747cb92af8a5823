package main

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestBucket(t *testing.T) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	b := newBucket(1000, 100, c.now) // 1000 B/s, 100 saved
	steps := []struct {
		advance time.Duration
		take    int
		wait    time.Duration
	}{
		{0, 100, 0},                     // the burst
		{0, 50, 50 * time.Millisecond},  // debt
		{0, 50, 100 * time.Millisecond}, // behind the first debt
		{100 * time.Millisecond, 10, 10 * time.Millisecond},
		{time.Hour, 100, 0}, // refilled to the burst only
		{0, 1, time.Millisecond},
		{-time.Second, 1, 2 * time.Millisecond}, // a clock going back adds nothing
	}
	for i, s := range steps {
		c.advance(s.advance)
		if got := b.take(s.take); got != s.wait {
			t.Fatalf("step %d: take(%d) = %v, want %v", i, s.take, got, s.wait)
		}
	}
}

// A sender that waits what take says sends at the rate: N bytes take
// (N - burst) / rate, whatever the sizes of the takes.
func TestBucketRate(t *testing.T) {
	c := &fakeClock{t: time.Unix(0, 0)}
	const rate, burst = 25_000_000, 256 << 10
	b := newBucket(rate, burst, c.now)
	r := rand.New(rand.NewPCG(1, 2))
	start := c.t
	var sent int64
	for sent < 100<<20 {
		n := 1 + r.IntN(chunkSize)
		c.advance(b.take(n))
		sent += int64(n)
	}
	want := time.Duration(float64(sent-burst) / rate * float64(time.Second))
	if got := c.t.Sub(start); got < want-time.Millisecond || got > want+time.Millisecond {
		t.Errorf("%d bytes took %v, want %v", sent, got, want)
	}
}

// echoServer echoes every connection until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { _, _ = io.Copy(c, c); c.Close() })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func TestThrottleRelays(t *testing.T) {
	th, err := startThrottle(echoServer(t), 8e9) // 1 GB/s: the test checks bytes, not time
	if err != nil {
		t.Fatal(err)
	}
	defer th.Close()
	for i := range 3 {
		c, err := net.Dial("tcp", th.Addr())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(time.Minute))
		payload := make([]byte, 1<<20+i)
		for j := range payload {
			payload[j] = byte(j*7 + i)
		}
		errc := make(chan error, 1)
		go func() { _, err := c.Write(payload); errc <- err }()
		got := make([]byte, len(payload))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, payload) {
			t.Fatalf("connection %d: echo through the throttle differs", i)
		}
		c.Close()
	}
	if want := int64(3<<20 + 3); th.DownBytes() != want {
		t.Errorf("DownBytes %d, want %d", th.DownBytes(), want)
	}
}

// Close ends open connections and returns once every goroutine of the
// relay has.
func TestThrottleClose(t *testing.T) {
	th, err := startThrottle(echoServer(t), 8e6)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", th.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo: %q, %v", buf, err)
	}
	if err := th.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(buf); err == nil {
		t.Fatal("connection still open after Close")
	}
	if _, err := net.Dial("tcp", th.Addr()); err == nil {
		t.Fatal("still accepting after Close")
	}
}

func TestThrottleRefusesTinyRate(t *testing.T) {
	if _, err := startThrottle("127.0.0.1:1", 7); err == nil {
		t.Fatal("accepted 7 bit/s")
	}
}
