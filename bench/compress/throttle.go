package main

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// A throttle is a TCP relay standing for a WAN link between deployment
// B and A's proxy: what A sends to B (snapshot and stream) is held to a
// rate by a token bucket shared by every connection, as if they shared
// one link; what B sends to A (handshake, ACKs) passes unthrottled. It
// adds no latency of its own beyond the rate.

// Relay sizes: one read is at most chunkSize bytes (so a connection
// never takes more than that from the bucket at once); the bucket holds
// up to burstSize, which absorbs timer oversleep without losing rate.
const (
	chunkSize   = 32 << 10
	burstSize   = 256 << 10
	relayDial   = 5 * time.Second
	relayIdle   = 5 * time.Minute // A's shards PING every 10s, B ACKs every second
	maxRelayed  = 256             // connections at once
	maxAcceptEr = 100             // accept errors in a row before giving up
)

// bucket is a token bucket: rate bytes per second, at most burst saved.
// Takes that exceed the tokens at hand go into debt, which the caller
// waits out; later takes wait behind it, so connections share the rate.
type bucket struct {
	mu     sync.Mutex
	rate   float64 // bytes per second
	burst  float64
	tokens float64
	last   time.Time
	now    func() time.Time
}

func newBucket(bytesPerSec int64, burst int, now func() time.Time) *bucket {
	t := now()
	return &bucket{rate: float64(bytesPerSec), burst: float64(burst), tokens: float64(burst), last: t, now: now}
}

// take removes n tokens and returns how long to wait before sending n
// bytes.
func (b *bucket) take(n int) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(b.burst, b.tokens+el.Seconds()*b.rate)
		b.last = now
	}
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}

// throttle is a running relay; Close stops it and every connection.
type throttle struct {
	ln        net.Listener
	target    string
	down      *bucket
	downBytes atomic.Int64 // relayed target→client, as TCP payload

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	err   error // why the accept loop ended early
}

// startThrottle listens on a free 127.0.0.1 port and relays every
// connection to target, target→client limited to bitsPerSec.
func startThrottle(target string, bitsPerSec int64) (*throttle, error) {
	if bitsPerSec < 8 {
		return nil, errors.New("throttle: rate below 8 bit/s")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &throttle{
		ln: ln, target: target, down: newBucket(bitsPerSec/8, burstSize, time.Now),
		ctx: ctx, cancel: cancel, conns: make(map[net.Conn]struct{}),
	}
	t.wg.Go(t.accept)
	return t, nil
}

// DownBytes is how many bytes the relay passed from the target to its
// clients: the TCP payload, TLS records included.
func (t *throttle) DownBytes() int64 { return t.downBytes.Load() }

// Addr is where clients connect.
func (t *throttle) Addr() string { return t.ln.Addr().String() }

// Close stops accepting, closes every relayed connection and waits for
// every goroutine of the relay. It returns why accepting stopped early,
// if it did.
func (t *throttle) Close() error {
	t.cancel()
	t.ln.Close()
	t.mu.Lock()
	for c := range t.conns {
		c.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// track registers c for Close; false when the relay is closing or full.
func (t *throttle) track(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ctx.Err() != nil || len(t.conns) >= maxRelayed {
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *throttle) untrack(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
	c.Close()
}

func (t *throttle) accept() {
	fails := 0
	for {
		c, err := t.ln.Accept()
		if err != nil {
			if t.ctx.Err() != nil {
				return
			}
			if fails++; fails > maxAcceptEr {
				t.mu.Lock()
				t.err = err
				t.mu.Unlock()
				return
			}
			continue
		}
		fails = 0
		if !t.track(c) {
			c.Close()
			continue
		}
		t.wg.Go(func() { t.relay(c) })
	}
}

// relay connects c to the target and copies both ways until either side
// ends or the relay closes.
func (t *throttle) relay(c net.Conn) {
	defer t.untrack(c)
	ctx, cancel := context.WithTimeout(t.ctx, relayDial)
	var d net.Dialer
	up, err := d.DialContext(ctx, "tcp", t.target)
	cancel()
	if err != nil {
		return
	}
	if !t.track(up) {
		up.Close()
		return
	}
	defer t.untrack(up)
	done := make(chan struct{}, 1)
	go func() { // owned: relay waits for it below
		defer func() { done <- struct{}{} }()
		pipeConn(t.ctx, up, c, nil, nil)
		up.Close()
		c.Close()
	}()
	pipeConn(t.ctx, c, up, t.down, &t.downBytes)
	c.Close()
	up.Close()
	<-done
}

// pipeConn copies src to dst in reads of at most chunkSize, each paid
// for from b first when b is set and counted in count when set, until
// either side fails, src is idle for relayIdle, or ctx ends (the owner
// closes both then).
func pipeConn(ctx context.Context, dst, src net.Conn, b *bucket, count *atomic.Int64) {
	buf := make([]byte, chunkSize)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		_ = src.SetReadDeadline(time.Now().Add(relayIdle))
		n, err := src.Read(buf)
		if n > 0 {
			if b != nil {
				if wait := b.take(n); wait > 0 {
					if timer == nil {
						timer = time.NewTimer(wait)
					} else {
						timer.Reset(wait)
					}
					select {
					case <-timer.C:
					case <-ctx.Done():
						return
					}
				}
			}
			_ = dst.SetWriteDeadline(time.Now().Add(relayIdle))
			w, werr := dst.Write(buf[:n])
			if count != nil {
				count.Add(int64(w))
			}
			if werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
