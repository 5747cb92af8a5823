//go:build redconbench

package proxy

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/tidwall/redcon"

	"github.com/replicaof/replicaof/resp"
)

// BenchmarkParse compares resp.ReadCommand, which the proxy uses, with
// redcon's reader on the same pipelined input (doc.go says why the proxy
// does not use redcon's parser). Needs `-tags redconbench` and
// github.com/tidwall/redcon in go.mod.
func BenchmarkParse(b *testing.B) {
	var in strings.Builder
	for i := 0; i < 16; i++ {
		in.WriteString("*2\r\n$3\r\nGET\r\n$10\r\nkey:000001\r\n")
	}
	data := []byte(in.String())
	b.Run("resp", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		r := bytes.NewReader(data)
		br := bufio.NewReaderSize(r, 16<<10)
		var cmd resp.Command
		for i := 0; i < b.N; i++ {
			r.Reset(data)
			br.Reset(r)
			for j := 0; j < 16; j++ {
				if err := resp.ReadCommand(br, &cmd, resp.Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("redcon", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		rd := redcon.NewReader(&repeatReader{data: data})
		for i := 0; i < b.N; i++ {
			for n := 0; n < 16; {
				cmds, err := rd.ReadCommands()
				if err != nil {
					b.Fatal(err)
				}
				n += len(cmds)
			}
		}
	})
}

// repeatReader yields data over and over, one copy per Read.
type repeatReader struct{ data []byte }

func (r *repeatReader) Read(p []byte) (int, error) { return copy(p, r.data), nil }
