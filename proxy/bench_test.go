package proxy

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
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
