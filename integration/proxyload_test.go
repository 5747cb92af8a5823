package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/proxy"
	"github.com/replicaof/replicaof/syncer"
)

// The load clients run in a child process (this test binary re-executed):
// 10,000 connections on each side would not fit one process's file limit.
const (
	loadChildEnv = "REPLICAOF_LOAD_CHILD" // "addr conns rounds" in the child
)

func init() {
	if spec := os.Getenv(loadChildEnv); spec != "" {
		os.Exit(loadChildMain(spec))
	}
}

// loadChildMain opens conns connections to addr, then each sends rounds
// pipelined batches of 3 GETs and checks every reply is a bulk string or
// nil. It prints "ok <replies>" or "error <what>" and exits.
func loadChildMain(spec string) int {
	var addr string
	var conns, rounds int
	if _, err := fmt.Sscan(spec, &addr, &conns, &rounds); err != nil {
		fmt.Println("error spec:", err)
		return 2
	}
	cs := make([]net.Conn, 0, conns)
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	for i := 0; i < conns; i++ {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			fmt.Println("error dial", i, err)
			return 1
		}
		cs = append(cs, c)
	}
	fmt.Println("connected", conns)
	var replies sync.Map
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	sem := make(chan struct{}, 256) // bounded concurrency; the rest stay idle-but-open
	for i, c := range cs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r := bufio.NewReader(c)
			n := 0
			for round := 0; round < rounds; round++ {
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				req := fmt.Sprintf("*2\r\n$3\r\nGET\r\n$%d\r\nw:%d:s\r\n", len(strconv.Itoa(i%200))+4, i%200) +
					"*2\r\n$3\r\nGET\r\n$9\r\ncounter:1\r\n*2\r\n$3\r\nGET\r\n$6\r\nnokey!\r\n"
				if _, err := io.WriteString(c, req); err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
				for k := 0; k < 3; k++ {
					line, err := r.ReadString('\n')
					if err == nil && !strings.HasPrefix(line, "$") {
						err = fmt.Errorf("reply %q", line)
					}
					if err == nil && line != "$-1\r\n" {
						var l int
						fmt.Sscanf(line, "$%d", &l)
						_, err = io.ReadFull(r, make([]byte, l+2))
					}
					if err != nil {
						select {
						case errs <- err:
						default:
						}
						return
					}
					n++
				}
			}
			replies.Store(i, n)
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		fmt.Println("error", err)
		return 1
	default:
	}
	total := 0
	replies.Range(func(_, v any) bool { total += v.(int); return true })
	fmt.Println("ok", total)
	return 0
}

// 10,000 client connections read through the proxy while the syncer
// applies a write-heavy stream: no errors, and the proxy's memory stays
// bounded (reported).
func TestFaultProxyManyClientsDuringSync(t *testing.T) {
	ctx := harness.Context(t, 4*time.Minute)
	src := harness.StartRedis(t)
	d := startDestination(t, 3)
	sup := runSupervisor(t, d, source(t, "src", src, ""))
	waitState(t, sup, syncer.StateSynced, time.Minute)

	p, err := proxy.New(proxy.Config{Listen: "127.0.0.1:0", Destination: d.dest, MaxClients: 20000})
	if err != nil {
		t.Fatal(err)
	}
	pctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- p.Serve(pctx) }()
	defer func() { stop(); <-served }()

	rssBefore := rssBytes()
	w := &harness.Workload{Seed: 21}
	wait := runWorkload(ctx, w, src.Client(), 20000)

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), loadChildEnv+"="+p.Addr().String()+" 10000 3")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok 90000") {
		t.Fatalf("load clients: %v\n%s", err, out)
	}
	rssPeak := rssBytes()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	t.Logf("10,000 proxy clients (3 pipelined GETs × 3 rounds each) during a 20,000-op write stream: RSS of the test process %d MB before, %d MB after",
		rssBefore>>20, rssPeak>>20)
	requireExact(t, ctx, []*redis.Client{src.Client()}, d, w)
	if sup.Status().Status != syncer.StateSynced {
		t.Fatalf("sync state %s", sup.Status().Status)
	}
}

// rssBytes is this process's resident set size.
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
