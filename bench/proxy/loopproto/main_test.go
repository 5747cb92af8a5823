//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/internal/harness"
)

// startProto runs the prototype over 3 shards with loops loops until the
// test ends.
func startProto(t *testing.T, loops int) string {
	addr, _ := startProtoShards(t, loops)
	return addr
}

func startProtoShards(t *testing.T, loops int) (string, []*harness.Redis) {
	t.Helper()
	var addrs []string
	shards := harness.StartServers(t, 3)
	for _, r := range shards {
		addrs = append(addrs, r.Addr)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, ln, addrs, loops) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return ln.Addr().String(), shards
}

// Pipelined GETs over keys of every shard come back in request order.
func TestForwardsInOrder(t *testing.T) {
	for _, loops := range []int{1, 2} {
		t.Run(fmt.Sprint("loops=", loops), func(t *testing.T) {
			addr := startProto(t, loops)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for c := 0; c < 4; c++ {
				rc := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true})
				defer rc.Close()
				const n = 500
				pipe := rc.Pipeline()
				for i := 0; i < n; i++ {
					pipe.Set(ctx, fmt.Sprintf("k:%d:%d", c, i), fmt.Sprint(i), 0)
				}
				if _, err := pipe.Exec(ctx); err != nil {
					t.Fatal(err)
				}
				var gets []*redis.StringCmd
				for i := 0; i < n; i++ {
					gets = append(gets, pipe.Get(ctx, fmt.Sprintf("k:%d:%d", c, i)))
				}
				if _, err := pipe.Exec(ctx); err != nil {
					t.Fatal(err)
				}
				for i, g := range gets {
					if g.Val() != fmt.Sprint(i) {
						t.Fatalf("GET k:%d:%d = %q, want %d", c, i, g.Val(), i)
					}
				}
			}
		})
	}
}

// A client that sends its commands and shuts down its writing side (nc,
// piped input) still gets every reply.
func TestHalfClosedClientGetsReplies(t *testing.T) {
	addr := startProto(t, 1)
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	nc.Write([]byte("*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$1\r\n2\r\n" +
		"*2\r\n$3\r\nGET\r\n$1\r\nb\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n*1\r\n$4\r\nPING\r\n"))
	nc.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(nc)
	if err != nil {
		t.Fatal(err)
	}
	if want := "+OK\r\n+OK\r\n$1\r\n2\r\n$1\r\n1\r\n+PONG\r\n"; string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// A client pipelining more requests than maxInflight to a stalled shard
// is paused (the loop stops reading it), and once the shard resumes it
// gets every reply, in order.
func TestDeepPipelineStalledShard(t *testing.T) {
	addr, shards := startProtoShards(t, 1)
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(60 * time.Second))
	// Every key is in the slot of "{a}", shard 2's.
	stalled := shards[2]
	if err := stalled.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer stalled.Signal(syscall.SIGCONT)
	const n = 3 * maxInflight
	var req []byte
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("{a}:%d", i)
		req = fmt.Appendf(req, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", len(key), key)
	}
	go nc.Write(req)
	time.Sleep(500 * time.Millisecond)
	if err := stalled.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	want := []byte("$-1\r\n")
	got := make([]byte, n*len(want))
	if _, err := io.ReadFull(nc, got); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if string(got[i*len(want):(i+1)*len(want)]) != string(want) {
			t.Fatalf("reply %d is %q", i, got[i*len(want):(i+1)*len(want)])
		}
	}
}
