package proxy

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/replicaof/replicaof/resp"
)

// BenchmarkPipelinedGet sends batches of 16 GETs through the proxy to
// fake shards, and the same batches straight to one fake shard as the
// reference; it reports the proxy's time per request as a ratio.
func BenchmarkPipelinedGet(b *testing.B) {
	srv := startFakeProxy(b, nil)
	shard := srv.cfg.Destination.Addr(0)
	var batch strings.Builder
	for i := 0; i < 16; i++ {
		batch.WriteString("*2\r\n$3\r\nGET\r\n$5\r\nkey:" + string(rune('a'+i)) + "\r\n")
	}
	req := []byte(batch.String())
	reply := len("$-1\r\n") * 16
	run := func(b *testing.B, addr string) time.Duration {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		br := bufio.NewReader(nc)
		buf := make([]byte, reply)
		start := time.Now()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := nc.Write(req); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(br, buf); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	var direct, proxied time.Duration
	b.Run("direct", func(b *testing.B) { direct = run(b, shard) / time.Duration(b.N) })
	b.Run("proxy", func(b *testing.B) { proxied = run(b, srv.Addr().String()) / time.Duration(b.N) })
	if direct > 0 {
		b.Logf("proxy/direct time per 16-GET batch: %.2fx (%v vs %v)", float64(proxied)/float64(direct), proxied, direct)
	}
}

// BenchmarkFrame measures the framing the proxy does on bytes it holds:
// whether a pipeline's next command is buffered whole (complete, per
// command of a batch), and splitting an MGET part's reply into elements.
func BenchmarkFrame(b *testing.B) {
	var in strings.Builder
	for i := 0; i < 16; i++ {
		in.WriteString("*2\r\n$3\r\nGET\r\n$10\r\nkey:000001\r\n")
	}
	cmds := []byte(in.String())
	reply := resp.AppendArray(nil, 16)
	for i := 0; i < 16; i++ {
		reply = resp.AppendBulkString(reply, "value:0000000001")
	}
	lim := resp.Limits{}.WithDefaults()
	b.Run("complete", func(b *testing.B) {
		b.SetBytes(int64(len(cmds)))
		for b.Loop() {
			for p := 0; p < len(cmds); p += len(cmds) / 16 {
				if !complete(cmds[p:], lim) {
					b.Fatal("incomplete")
				}
			}
		}
	})
	b.Run("replyLen", func(b *testing.B) {
		b.SetBytes(int64(len(reply)))
		for b.Loop() {
			n, p, _ := resp.AggregateHeader(reply)
			for j := 0; j < n; j++ {
				l, err := resp.ReplyLen(reply[p:], relayed)
				if err != nil {
					b.Fatal(err)
				}
				p += l
			}
		}
	})
}
