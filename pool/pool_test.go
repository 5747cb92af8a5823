package pool_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/resp"
)

func cmd(args ...string) []byte { return resp.AppendCommandString(nil, args...) }

func TestBackendPipelineOrder(t *testing.T) {
	srv := harness.StartRedis(t)
	b := pool.NewBackend(pool.Config{Addr: srv.Addr, Conns: 3})
	defer b.Close()
	ctx := harness.Context(t, time.Minute)

	// Many goroutines, each pipelining batches whose replies differ in
	// type and size: every reply must land on its own call.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for round := 0; round < 50; round++ {
				var calls []*pool.Call
				for i := 0; i < 20; i++ {
					key := fmt.Sprintf("g%d:r%d:%d", g, round, i)
					calls = append(calls,
						&pool.Call{Req: cmd("SET", key, key)},
						&pool.Call{Req: cmd("GET", key)},
						&pool.Call{Req: cmd("STRLEN", key)},
						&pool.Call{Req: cmd("NOSUCHCOMMAND")})
				}
				b.Pipeline(ctx, calls)
				for i := 0; i < len(calls); i += 4 {
					key := fmt.Sprintf("g%d:r%d:%d", g, round, i/4)
					want := []string{"+OK\r\n", fmt.Sprintf("$%d\r\n%s\r\n", len(key), key), fmt.Sprintf(":%d\r\n", len(key))}
					for j, w := range want {
						if c := calls[i+j]; c.Err != nil || string(c.Reply) != w {
							errs <- fmt.Errorf("call %d: %q %v, want %q", i+j, c.Reply, c.Err, w)
							return
						}
					}
					if r := calls[i+3].Reply; len(r) == 0 || r[0] != '-' {
						errs <- fmt.Errorf("error reply lost: %q", r)
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestBackendInitCommands(t *testing.T) {
	srv := harness.StartRedis(t, "--requirepass", "s3cret")
	ctx := harness.Context(t, time.Minute)
	init := append(cmd("AUTH", "s3cret"), cmd("SELECT", "2")...)
	b := pool.NewBackend(pool.Config{Addr: srv.Addr, Init: init})
	defer b.Close()
	if r, err := b.Do(ctx, cmd("SET", "k", "v"), nil); err != nil || string(r) != "+OK\r\n" {
		t.Fatalf("SET: %q %v", r, err)
	}
	c := srv.ClientDB(2)
	c.Options().Password = "s3cret"
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("key not in db 2: %q %v", v, err)
	}
	bad := pool.NewBackend(pool.Config{Addr: srv.Addr, Init: cmd("AUTH", "wrong")})
	defer bad.Close()
	if _, err := bad.Do(ctx, cmd("PING"), nil); err == nil || !errors.Is(err, pool.ErrShardDown) {
		t.Fatalf("wrong password: %v", err)
	}
}

func TestBackendDeadShardFailsFastAndReconnects(t *testing.T) {
	srv := harness.StartRedis(t)
	ctx := harness.Context(t, time.Minute)
	b := pool.NewBackend(pool.Config{Addr: srv.Addr, Conns: 1, RetryBackoff: 50 * time.Millisecond})
	defer b.Close()
	if _, err := b.Do(ctx, cmd("PING"), nil); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	// The open connection breaks; later calls fail at once while down.
	harness.WaitFor(t, 5*time.Second, "calls fail once the shard is gone", func() bool {
		_, err := b.Do(ctx, cmd("PING"), nil)
		return errors.Is(err, pool.ErrShardDown)
	})
	start := time.Now()
	for i := 0; i < 100; i++ {
		if _, err := b.Do(ctx, cmd("PING"), nil); !errors.Is(err, pool.ErrShardDown) {
			t.Fatalf("call %d while down: %v", i, err)
		}
	}
	if d := time.Since(start); d > 2*time.Second { // 100 dials at the dial timeout would take 200s
		t.Fatalf("calls to a dead shard did not fail fast: %v", d)
	}
	srv.Restart()
	harness.WaitFor(t, 10*time.Second, "backend reconnects", func() bool {
		r, err := b.Do(ctx, cmd("PING"), nil)
		return err == nil && string(r) == "+PONG\r\n"
	})
}

func TestBackendReadTimeout(t *testing.T) {
	// A server that accepts and never answers.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { <-done; c.Close() }()
		}
	}()
	b := pool.NewBackend(pool.Config{Addr: l.Addr().String(), ReadTimeout: 200 * time.Millisecond})
	defer b.Close()
	start := time.Now()
	_, err = b.Do(context.Background(), cmd("PING"), nil)
	if !errors.Is(err, pool.ErrShardDown) {
		t.Fatalf("got %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("timeout not applied")
	}
}

func TestBackendClose(t *testing.T) {
	srv := harness.StartRedis(t)
	b := pool.NewBackend(pool.Config{Addr: srv.Addr})
	if _, err := b.Do(context.Background(), cmd("PING"), nil); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := b.Do(context.Background(), cmd("PING"), nil); !errors.Is(err, pool.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// Each Pipeline reaches the wire as one block: MULTI…EXEC from concurrent
// callers on a shared connection never interleave, even for blocks larger
// than MaxInflight.
func TestBackendPipelineBlocksDoNotInterleave(t *testing.T) {
	srv := harness.StartRedis(t)
	b := pool.NewBackend(pool.Config{Addr: srv.Addr, Conns: 1, MaxInflight: 16})
	defer b.Close()
	ctx := harness.Context(t, time.Minute)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for round := 0; round < 30; round++ {
				n := 1 + (g*7+round)%40 // some blocks exceed MaxInflight
				calls := []*pool.Call{{Req: cmd("MULTI")}}
				for i := 0; i < n; i++ {
					calls = append(calls, &pool.Call{Req: cmd("INCR", fmt.Sprintf("c%d", g))})
				}
				calls = append(calls, &pool.Call{Req: cmd("EXEC")})
				b.Pipeline(ctx, calls)
				exec := calls[len(calls)-1]
				if exec.Err != nil || !strings.HasPrefix(string(exec.Reply), fmt.Sprintf("*%d\r\n", n)) {
					errs <- fmt.Errorf("goroutine %d round %d: EXEC answered %q %v", g, round, exec.Reply, exec.Err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// One reusable Batch carries blocks to several backends at once, from
// many goroutines sharing the backends, round after round.
func TestBatchAcrossBackends(t *testing.T) {
	srvs := []*harness.Redis{harness.StartRedis(t), harness.StartRedis(t)}
	var bks []*pool.Backend
	for _, s := range srvs {
		b := pool.NewBackend(pool.Config{Addr: s.Addr, Conns: 1, MaxInflight: 8})
		defer b.Close()
		bks = append(bks, b)
	}
	ctx := harness.Context(t, time.Minute)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			var bt pool.Batch
			for round := 0; round < 50; round++ {
				n := 1 + (g+round)%12 // some blocks exceed MaxInflight
				var all [][]*pool.Call
				for range bks {
					var calls []*pool.Call
					for i := 0; i < n; i++ {
						calls = append(calls, &pool.Call{Req: cmd("INCR", fmt.Sprintf("g%d", g))})
					}
					all = append(all, calls)
				}
				for i, b := range bks {
					bt.Add(ctx, b, all[i])
				}
				bt.Wait()
				for i := range bks {
					for j, c := range all[i] {
						if c.Err != nil || len(c.Reply) == 0 || c.Reply[0] != ':' {
							errs <- fmt.Errorf("goroutine %d round %d backend %d call %d: %q %v", g, round, i, j, c.Reply, c.Err)
							return
						}
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Every INCR ran once on each server.
	for i, s := range srvs {
		for g := 0; g < 8; g++ {
			want := 0
			for round := 0; round < 50; round++ {
				want += 1 + (g+round)%12
			}
			got, err := s.Client().Get(ctx, fmt.Sprintf("g%d", g)).Int()
			if err != nil || got != want {
				t.Fatalf("server %d key g%d = %d %v, want %d", i, g, got, err, want)
			}
		}
	}
}

// A connection left idle for longer than ReadTimeout is still usable:
// the read deadline only runs while calls are in flight.
func TestBackendIdleLongerThanReadTimeout(t *testing.T) {
	srv := harness.StartRedis(t)
	b := pool.NewBackend(pool.Config{Addr: srv.Addr, Conns: 1, ReadTimeout: 100 * time.Millisecond})
	defer b.Close()
	ctx := harness.Context(t, time.Minute)
	cl := srv.Client()
	conns := func() string {
		info, err := cl.Info(ctx, "stats").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(l, "total_connections_received:"); ok {
				return v
			}
		}
		t.Fatalf("no total_connections_received in %q", info)
		return ""
	}
	if reply, err := b.Do(ctx, cmd("PING"), nil); err != nil || string(reply) != "+PONG\r\n" {
		t.Fatalf("%q %v", reply, err)
	}
	before := conns()
	for i := 0; i < 3; i++ {
		last := time.Now()
		harness.WaitFor(t, 5*time.Second, "idle past the read timeout", func() bool {
			return time.Since(last) > 300*time.Millisecond
		})
		if reply, err := b.Do(ctx, cmd("PING"), nil); err != nil || string(reply) != "+PONG\r\n" {
			t.Fatalf("round %d: %q %v", i, reply, err)
		}
	}
	if after := conns(); after != before {
		t.Fatalf("the idle connection was replaced: %s connections before, %s after", before, after)
	}
}
