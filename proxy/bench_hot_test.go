package proxy

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
)

// benchRoundTrips sends req to the proxy and reads a reply of replyLen
// bytes, b.N times over one connection.
func benchRoundTrips(b *testing.B, req []byte, replyLen int) {
	srv := startFakeProxy(b, nil)
	nc, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	buf := make([]byte, replyLen)
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
}

// BenchmarkGet is the unpipelined path: one GET, one reply, per round
// trip (fake shards, so the proxy's own cost dominates).
func BenchmarkGet(b *testing.B) {
	benchRoundTrips(b, []byte("*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"), len("$-1\r\n"))
}

// BenchmarkMGet is a 16-key MGET split over the 3 fake shards and merged.
func BenchmarkMGet(b *testing.B) {
	var req strings.Builder
	req.WriteString("*17\r\n$4\r\nMGET\r\n")
	for i := 0; i < 16; i++ {
		req.WriteString("$5\r\nkey:" + string(rune('a'+i)) + "\r\n")
	}
	benchRoundTrips(b, []byte(req.String()), len("*16\r\n")+16*len("$-1\r\n"))
}
