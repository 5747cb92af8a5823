package proxy

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/resp"
)

// recObserver records what the proxy reports.
type recObserver struct {
	opened, closed atomic.Int64

	mu   sync.Mutex
	cmds []string // "name ok" or "name error", in report order
	maxD time.Duration
}

func (o *recObserver) ConnOpened() { o.opened.Add(1) }
func (o *recObserver) ConnClosed() { o.closed.Add(1) }

func (o *recObserver) Command(name string, d time.Duration, failed bool) {
	res := " ok"
	if failed {
		res = " error"
	}
	o.mu.Lock()
	o.cmds = append(o.cmds, name+res)
	o.maxD = max(o.maxD, d)
	o.mu.Unlock()
}

func (o *recObserver) reported() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.cmds...)
}

func TestObserver(t *testing.T) {
	obs := &recObserver{}
	srv := startFakeProxy(t, func(cfg *Config) { cfg.Observer = obs })
	nc, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(nc)
	// One pipelined batch: local, forwarded, split, unknown, bad arity,
	// then a command that flushes the batch itself, then MULTI.
	in := "PING\r\nget k\r\nMGET a b c\r\nNOSUCH x\r\nECHO\r\nSUBSCRIBE ch\r\nUNSUBSCRIBE\r\n" +
		"MULTI\r\nGET k\r\nEXEC\r\n"
	if _, err := io.WriteString(nc, in); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := resp.ReadReply(br, nil, resp.Limits{}); err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
	}
	want := []string{"ping ok", "get ok", "mget ok", "other error", "echo error", "subscribe ok",
		"unsubscribe ok", "multi ok", "get ok", "exec ok"}
	harness.WaitFor(t, 5*time.Second, "every command reported", func() bool {
		return len(obs.reported()) == len(want)
	})
	if got := obs.reported(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("reported %q\nwant     %q", got, want)
	}
	if obs.maxD <= 0 {
		t.Errorf("durations not measured: max %v", obs.maxD)
	}
	if obs.opened.Load() != 1 || obs.closed.Load() != 0 {
		t.Errorf("opened %d closed %d, want 1 and 0", obs.opened.Load(), obs.closed.Load())
	}
	nc.Close()
	harness.WaitFor(t, 5*time.Second, "close reported", func() bool { return obs.closed.Load() == 1 })
}

// nopObserver counts without allocating, like metrics' observer.
type nopObserver struct{ n atomic.Int64 }

func (o *nopObserver) ConnOpened()                         {}
func (o *nopObserver) ConnClosed()                         {}
func (o *nopObserver) Command(string, time.Duration, bool) { o.n.Add(1) }

// TestObserverAllocs checks that the hook adds no allocation per command:
// the whole process's allocations per pipelined round trip (client, proxy
// and fake shards) are compared with and without an observer.
func TestObserverAllocs(t *testing.T) {
	measure := func(o Observer) float64 {
		srv := startFakeProxy(t, func(cfg *Config) {
			if o != nil {
				cfg.Observer = o
			}
		})
		nc, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(time.Minute))
		req := []byte("*2\r\n$3\r\nGET\r\n$1\r\na\r\n*2\r\n$3\r\nGET\r\n$1\r\nb\r\nPING\r\n*3\r\n$4\r\nMGET\r\n$1\r\na\r\n$1\r\nb\r\n")
		br := bufio.NewReader(nc)
		buf := make([]byte, 0, 4096)
		rt := func() {
			if _, err := nc.Write(req); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 4; i++ {
				if buf, err = resp.ReadReply(br, buf[:0], resp.Limits{}); err != nil {
					t.Fatal(err)
				}
			}
		}
		for i := 0; i < 200; i++ {
			rt()
		}
		return testing.AllocsPerRun(1000, rt)
	}
	without := measure(nil)
	obs := &nopObserver{}
	with := measure(obs)
	t.Logf("allocs per 4-command round trip: %.2f with an observer, %.2f without", with, without)
	if obs.n.Load() == 0 {
		t.Fatal("observer not called")
	}
	// Background noise (timers, the race detector) is the same in both;
	// a per-command allocation would add at least 4.
	if with > without+0.5 {
		t.Errorf("the observer adds %.2f allocations per round trip", with-without)
	}
}
