package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/resp"
)

// echoShard is a fake shard for the isolation property: EVAL_RO answers
// its script argument verbatim (the raw reply to send), GET k answers
// "v-k". Replies of a pipeline are written as one block.
func startEchoShard(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[nc] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				br, bw := bufio.NewReader(nc), bufio.NewWriter(nc)
				var cmd resp.Command
				for resp.ReadCommand(br, &cmd, resp.Limits{}) == nil {
					if len(cmd.Args) == 0 {
						continue
					}
					switch strings.ToLower(string(cmd.Args[0])) {
					case "eval_ro", "eval":
						bw.Write(cmd.Args[1])
					case "get":
						bw.Write(resp.AppendBulk(nil, append([]byte("v-"), cmd.Args[1]...)))
					default:
						bw.WriteString("+OK\r\n")
					}
					if br.Buffered() == 0 && bw.Flush() != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for nc := range conns {
			nc.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// shardLimits are deliberately small, so random replies cross them often.
var shardLimits = resp.Limits{MaxBulk: 64, MaxArray: 8, MaxDepth: 6, MaxInline: 64, MaxReply: 512}

// genReply builds one well-formed RESP reply from fuzz bytes: scalars,
// long lines, big bulks, wide and deep aggregates.
func genReply(data []byte) []byte {
	var out []byte
	budget := 400 // elements, bounds the size
	var gen func(depth int)
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	gen = func(depth int) {
		budget--
		b := next()
		if budget <= 0 || depth > 40 {
			b %= 4
		}
		switch b % 10 {
		case 0:
			out = append(out, "+OK\r\n"...)
		case 1:
			out = resp.AppendInt(out, int64(next())-100)
		case 2:
			out = append(out, "$-1\r\n"...)
		case 3:
			out = append(out, '-')
			out = append(out, bytes.Repeat([]byte{'e'}, int(next())+1)...)
			out = append(out, "\r\n"...)
		case 4:
			out = resp.AppendBulk(out, bytes.Repeat([]byte{'x'}, int(next())))
		case 5, 6:
			n := int(next() % 12)
			out = resp.AppendArray(out, n)
			for i := 0; i < n; i++ {
				gen(depth + 1)
			}
		case 7: // a chain of single-element arrays
			n := int(next() % 16)
			for i := 0; i < n; i++ {
				out = append(out, "*1\r\n"...)
			}
			gen(depth + n)
		case 8:
			n := int(next() % 6)
			out = append(out, '%')
			out = append(out, fmt.Sprint(n)...)
			out = append(out, "\r\n"...)
			for i := 0; i < 2*n; i++ {
				gen(depth + 1)
			}
		case 9:
			out = append(out, "+"...)
			out = append(out, bytes.Repeat([]byte{'s'}, int(next()))...)
			out = append(out, "\r\n"...)
		}
	}
	gen(0)
	return out
}

// FuzzIsolation: whatever one client's commands make its shard answer,
// another client pipelining GETs over the same shared shard connections
// gets exactly its answers, and the first client gets either the reply
// verbatim or, for a reply over the proxy's limits, an error of its own.
func FuzzIsolation(f *testing.F) {
	f.Add([]byte{5, 3, 7, 15, 0}, uint8(4))
	f.Add([]byte{7, 15, 7, 15, 1, 9}, uint8(2))
	f.Add([]byte{4, 200}, uint8(1))
	f.Add([]byte{3, 250}, uint8(3))
	f.Add([]byte{9, 100, 5, 11, 4, 1, 4, 2, 4, 3, 4, 4, 4, 5, 4, 6, 4, 7, 4, 8, 4, 9, 4, 10, 4, 11}, uint8(5))
	f.Add([]byte{8, 5, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1}, uint8(1))
	var addrs []string
	for i := 0; i < 3; i++ {
		addrs = append(addrs, startEchoShard(f))
	}
	srv := startFakeProxy(f, func(cfg *Config) {
		cfg.Destination = harness.Destination(f, addrs...)
		cfg.Backend.Limits = shardLimits
	})
	addr := srv.Addr().String()
	f.Fuzz(func(t *testing.T, data []byte, reps uint8) {
		reply := genReply(data)
		want := string(reply)
		_, err := resp.ReadReply(bufio.NewReader(bytes.NewReader(reply)), nil, shardLimits)
		over := err != nil
		if _, ok := err.(*resp.LimitError); err != nil && !ok {
			t.Fatalf("generated reply is malformed: %v", err)
		}
		n := int(reps%8) + 1
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		wg.Add(2)
		go func() { // the victim: pipelined GETs on every shard
			defer wg.Done()
			errs <- pipelineGets(ctx, addr, 40, n)
		}()
		go func() { // the culprit
			defer wg.Done()
			errs <- evalReplies(ctx, addr, reply, want, over, n)
		}()
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	})
}

func pipelineGets(ctx context.Context, addr string, per, rounds int) error {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	dl, _ := ctx.Deadline()
	_ = nc.SetDeadline(dl)
	br := bufio.NewReader(nc)
	for r := 0; r < rounds; r++ {
		var req []byte
		for i := 0; i < per; i++ {
			req = resp.AppendCommandString(req, "GET", fmt.Sprintf("k%d", i))
		}
		if _, err := nc.Write(req); err != nil {
			return err
		}
		for i := 0; i < per; i++ {
			got, err := resp.ReadReply(br, nil, resp.Limits{})
			if err != nil {
				return err
			}
			if w := string(resp.AppendBulkString(nil, fmt.Sprintf("v-k%d", i))); string(got) != w {
				return fmt.Errorf("GET k%d answered %q, want %q", i, got, w)
			}
		}
	}
	return nil
}

func evalReplies(ctx context.Context, addr string, reply []byte, want string, over bool, rounds int) error {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	dl, _ := ctx.Deadline()
	_ = nc.SetDeadline(dl)
	br := bufio.NewReader(nc)
	var req []byte
	for i := 0; i < rounds; i++ {
		req = resp.AppendCommand(req, []byte("EVAL"), reply, []byte("1"), []byte(fmt.Sprintf("key%d", i)))
	}
	if _, err := nc.Write(req); err != nil {
		return err
	}
	for i := 0; i < rounds; i++ {
		got, err := resp.ReadReply(br, nil, resp.Limits{MaxDepth: 1 << 20})
		if err != nil {
			return err
		}
		switch {
		case over && !strings.HasPrefix(string(got), "-ERR shard "):
			return fmt.Errorf("reply over the limits relayed as %q", got)
		case over && !strings.Contains(string(got), "too large for the proxy"):
			return fmt.Errorf("unclear error %q", got)
		case !over && string(got) != want:
			return fmt.Errorf("reply changed: got %q, want %q", got, want)
		}
	}
	return nil
}

// nestScript returns a Lua table nested depth levels deep.
func nestScript(depth int) string {
	return fmt.Sprintf("local t={} local c=t for i=1,%d do c[1]={} c=c[1] end return t", depth)
}

// TestNestedReplyIsolation is the scenario of a deeply nested script reply
// on real shards: replies as deep as Redis makes them relay verbatim, one
// over a (lowered) limit fails that EVAL alone, and other clients'
// pipelined GETs on every shard see no error meanwhile.
func TestNestedReplyIsolation(t *testing.T) {
	c := newCluster(t, func(cfg *Config) {
		cfg.Backend.Limits.MaxDepth = 1000
	})
	ctx := harness.Context(t, 2*time.Minute)
	per, keys := c.putOnEveryShard(ctx, "iso:", 20)
	// Relayed byte for byte: compare with the shard's own reply.
	direct := harness.DialRaw(t, c.shards[0].Addr)
	via := harness.DialRaw(t, c.addr)
	for _, depth := range []int{200, 999} {
		req := string(resp.AppendCommandString(nil, "EVAL", nestScript(depth), "0"))
		direct.Send(req)
		via.Send(req)
		want, err1 := resp.ReadReply(direct.Reader, nil, resp.Limits{})
		got, err2 := resp.ReadReply(via.Reader, nil, resp.Limits{})
		if err1 != nil || err2 != nil || string(got) != string(want) {
			t.Fatalf("depth %d: proxy %d bytes (%v), shard %d bytes (%v)", depth, len(got), err2, len(want), err1)
		}
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	failures := make(chan string, 100)
	var done [4]int
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			cl := c.client(nil)
			for round := 0; round < 2000; round++ {
				select {
				case <-stop:
					return
				default:
				}
				pipe := cl.Pipeline()
				cmds := make([]*redis.StringCmd, len(keys))
				for i, k := range keys {
					cmds[i] = pipe.Get(ctx, k)
				}
				_, _ = pipe.Exec(ctx)
				for i, cmd := range cmds {
					if v, err := cmd.Result(); err != nil || v != "v-"+keys[i] {
						select {
						case failures <- fmt.Sprintf("GET %s = %q, %v", keys[i], v, err):
						default:
						}
					}
				}
				done[g]++
			}
		}(g)
	}
	// The culprit: deep replies, over the limit and under it, on every shard.
	culprit := c.client(nil)
	for i := 0; i < 60; i++ {
		key := per[i%3][0]
		depth := []int{200, 5000}[i%2]
		v, err := culprit.Eval(ctx, nestScript(depth), []string{key}).Result()
		if depth == 200 && (err != nil || v == nil) {
			t.Errorf("depth 200: %v %v", v, err)
		}
		if depth == 5000 && (err == nil || !strings.Contains(err.Error(), "nested more than 1000 levels")) {
			t.Errorf("depth 5000 over the limit: %v", err)
		}
	}
	close(stop)
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Error(f)
	}
	t.Logf("pipelined GET rounds per client: %v", done)
	// The shard connections stayed up: plain commands still work.
	if v, err := culprit.Get(ctx, keys[0]).Result(); err != nil || v != "v-"+keys[0] {
		t.Fatalf("after: %q %v", v, err)
	}
}

// TestNestedReplyDefaultLimits: with the default limits, a reply as deep
// as a Lua table can make (5,000 levels) relays.
func TestNestedReplyDefaultLimits(t *testing.T) {
	c := newCluster(t, nil)
	direct := harness.DialRaw(t, c.shards[0].Addr)
	via := harness.DialRaw(t, c.addr)
	req := string(resp.AppendCommandString(nil, "EVAL", nestScript(5000), "0"))
	direct.Send(req)
	via.Send(req)
	lim := resp.Limits{MaxDepth: 1 << 20}
	want, err1 := resp.ReadReply(direct.Reader, nil, lim)
	got, err2 := resp.ReadReply(via.Reader, nil, lim)
	if err1 != nil || err2 != nil || string(got) != string(want) || want[0] != '*' {
		t.Fatalf("proxy %d bytes (%v), shard %d bytes (%v)", len(got), err2, len(want), err1)
	}
}
