package replica

import (
	"bufio"
	"bytes"
	"io"
	"math/rand"
	"strconv"
	"testing"
	"time"

	"github.com/replicaof/replicaof/resp"
)

// benchStream is 8 MiB of a typical replication stream: SETs with values
// of 16 to 512 bytes, some MULTI/EXEC, a ping now and then.
func benchStream() []byte {
	rng := rand.New(rand.NewSource(1))
	var b []byte
	val := bytes.Repeat([]byte("v"), 512)
	for i := 0; len(b) < 8<<20; i++ {
		switch {
		case i%1000 == 0:
			b = resp.AppendCommandString(b, "ping")
		case i%50 == 0:
			b = resp.AppendCommandString(b, "MULTI")
			b = resp.AppendCommandString(b, "INCR", "counter:"+strconv.Itoa(i))
			b = resp.AppendCommandString(b, "EXEC")
		default:
			b = resp.AppendCommand(b, []byte("SET"), []byte("key:"+strconv.Itoa(i)), val[:16+rng.Intn(497)])
		}
	}
	return b
}

// BenchmarkStream measures the stream parser fed in 64 KiB chunks (what
// the socket reader hands it) against the reference of reading the same
// bytes through a bufio.Reader and nothing else, and against
// resp.ReadCommand. It logs the ratios.
func BenchmarkStream(b *testing.B) {
	data := benchStream()
	per := map[string]time.Duration{}
	record := func(name string, b *testing.B) { per[name] = b.Elapsed() / time.Duration(b.N) }

	b.Run("bufio-reference", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		buf := make([]byte, chunkSize)
		r := bufio.NewReaderSize(nil, chunkSize)
		for b.Loop() {
			r.Reset(bytes.NewReader(data))
			for {
				if _, err := r.Read(buf); err == io.EOF {
					break
				}
			}
		}
		record("bufio", b)
	})
	b.Run("parser", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		buf := make([]byte, chunkSize)
		r := bufio.NewReaderSize(nil, chunkSize)
		p := newStreamParser(0, resp.Limits{})
		n := 0
		for b.Loop() {
			r.Reset(bytes.NewReader(data))
			for {
				k, err := r.Read(buf)
				if err == io.EOF {
					break
				}
				bt, err := p.parse(buf[:k])
				if err != nil {
					b.Fatal(err)
				}
				n += len(bt.Cmds)
			}
		}
		record("parser", b)
	})
	b.Run("resp.ReadCommand", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		r := bufio.NewReaderSize(nil, chunkSize)
		var c resp.Command
		for b.Loop() {
			r.Reset(bytes.NewReader(data))
			for {
				if err := resp.ReadCommand(r, &c, resp.Limits{}); err == io.EOF {
					break
				} else if err != nil {
					b.Fatal(err)
				}
			}
		}
		record("readcommand", b)
	})
	if per["bufio"] > 0 && per["parser"] > 0 {
		mbs := func(d time.Duration) float64 { return float64(len(data)) / d.Seconds() / 1e6 }
		b.Logf("parser %.0f MB/s, bufio alone %.0f MB/s, resp.ReadCommand %.0f MB/s: parser/bufio time ratio %.2f, parser/ReadCommand %.2f",
			mbs(per["parser"]), mbs(per["bufio"]), mbs(per["readcommand"]),
			float64(per["parser"])/float64(per["bufio"]), float64(per["parser"])/float64(per["readcommand"]))
	}
}
