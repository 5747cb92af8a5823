package harness

import (
	"net"
	"sync"
	"testing"
	"time"
)

// FaultProxy is a TCP proxy on 127.0.0.1 between a client under test and
// a server, which can cut, pause, slow down or corrupt the traffic on
// command. Its goroutines stop when the test ends.
type FaultProxy struct {
	Addr string

	t  testing.TB
	ln net.Listener

	mu      sync.Mutex
	target  string
	conns   map[*faultConn]struct{}
	paused  bool
	resume  chan struct{} // closed when a pause ends
	latency time.Duration
	dropAt  int64 // drop one byte after this many more bytes server→client; 0 = off
	wg      sync.WaitGroup
	closed  bool
}

type faultConn struct{ client, server net.Conn }

// NewFaultProxy listens on a free loopback port and forwards to target.
func NewFaultProxy(t testing.TB, target string) *FaultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &FaultProxy{Addr: ln.Addr().String(), t: t, ln: ln, target: target,
		conns: map[*faultConn]struct{}{}, resume: make(chan struct{})}
	close(p.resume)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *FaultProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		target, closed := p.target, p.closed
		p.mu.Unlock()
		if closed {
			c.Close()
			return
		}
		s, err := net.DialTimeout("tcp", target, 2*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		fc := &faultConn{client: c, server: s}
		p.mu.Lock()
		p.conns[fc] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(fc, c, s, false)
		go p.pipe(fc, s, c, true)
	}
}

// pipe copies src to dst, applying the current faults; fromServer marks
// the server→client direction, the one drops apply to.
func (p *FaultProxy) pipe(fc *faultConn, src, dst net.Conn, fromServer bool) {
	defer p.wg.Done()
	defer p.drop(fc)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			resume, latency := p.resume, p.latency
			chunk := buf[:n]
			if fromServer && p.dropAt > 0 {
				if int64(n) > p.dropAt {
					at := p.dropAt
					chunk = append(append([]byte(nil), buf[:at]...), buf[at+1:n]...)
					p.dropAt = 0
				} else {
					p.dropAt -= int64(n)
				}
			}
			p.mu.Unlock()
			<-resume
			if latency > 0 {
				time.Sleep(latency)
			}
			if _, werr := dst.Write(chunk); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *FaultProxy) drop(fc *faultConn) {
	fc.client.Close()
	fc.server.Close()
	p.mu.Lock()
	delete(p.conns, fc)
	p.mu.Unlock()
}

// Cut closes every open connection (new ones are still accepted) and
// returns how many it closed.
func (p *FaultProxy) Cut() int {
	p.mu.Lock()
	conns := make([]*faultConn, 0, len(p.conns))
	for fc := range p.conns {
		conns = append(conns, fc)
	}
	p.mu.Unlock()
	for _, fc := range conns {
		fc.client.Close()
		fc.server.Close()
	}
	return len(conns)
}

// Conns is the number of open connections.
func (p *FaultProxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Pause stops forwarding in both directions until Resume.
func (p *FaultProxy) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.paused {
		p.paused = true
		p.resume = make(chan struct{})
	}
}

// Resume ends a Pause.
func (p *FaultProxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		p.paused = false
		close(p.resume)
	}
}

// SetLatency delays every forwarded chunk by d (0 turns it off).
func (p *FaultProxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	p.latency = d
	p.mu.Unlock()
}

// DropByteAfter drops one byte of server→client traffic after n more bytes.
func (p *FaultProxy) DropByteAfter(n int64) {
	p.mu.Lock()
	p.dropAt = max(n, 1)
	p.mu.Unlock()
}

// Retarget sends new connections to another server (a failover).
func (p *FaultProxy) Retarget(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
}

func (p *FaultProxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.Resume()
	p.ln.Close()
	p.Cut()
	p.wg.Wait()
}
