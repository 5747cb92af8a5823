package replica

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/replicaof/replicaof/internal/errclass"
	"github.com/replicaof/replicaof/resp"
)

func parseChunks(t testing.TB, p *streamParser, chunks [][]byte) (cmds []string, offs []int64, last int64, getacks int, err error) {
	for _, c := range chunks {
		b, err := p.parse(c)
		if err != nil {
			return cmds, offs, last, getacks, err
		}
		for _, cmd := range b.Cmds {
			var parts []string
			for _, a := range cmd.Args {
				parts = append(parts, string(a))
			}
			cmds = append(cmds, strings.Join(parts, " "))
			offs = append(offs, cmd.Offset)
		}
		last = b.Offset
		if b.GetAck {
			getacks++
		}
	}
	return cmds, offs, last, getacks, nil
}

func TestStreamParserOffsets(t *testing.T) {
	var in []byte
	in = resp.AppendCommandString(in, "SELECT", "0")
	in = resp.AppendCommandString(in, "ping")
	in = resp.AppendCommandString(in, "MULTI")
	in = resp.AppendCommandString(in, "SET", "k", strings.Repeat("v", 5000))
	in = resp.AppendCommandString(in, "EXEC")
	in = append(in, "*0\r\n"...)
	in = resp.AppendCommandString(in, "REPLCONF", "GETACK", "*")
	in = resp.AppendCommandString(in, "SET", "", "\r\n")
	in = resp.AppendCommandString(in, "PING")
	const start = 1000
	want := []string{"SELECT 0", "MULTI", "SET k " + strings.Repeat("v", 5000), "EXEC", "SET  \r\n"}
	for i := 0; i <= len(in); i++ {
		for _, j := range []int{i, (i + len(in)) / 2, len(in)} {
			p := newStreamParser(start, resp.Limits{})
			cmds, offs, last, getacks, err := parseChunks(t, p, [][]byte{in[:i], in[i:j], in[j:]})
			if err != nil {
				t.Fatalf("split %d/%d: %v", i, j, err)
			}
			if fmt.Sprint(cmds) != fmt.Sprint(want) || getacks != 1 || last != start+int64(len(in)) || p.partial() {
				t.Fatalf("split %d/%d: %q getacks %d last %d", i, j, cmds, getacks, last)
			}
			if offs[0] != start+23 || offs[4] != start+int64(len(in))-14 {
				t.Fatalf("offsets %v", offs)
			}
		}
	}
	p := newStreamParser(0, resp.Limits{})
	cmds, _, last, _, err := parseChunks(t, p, splitEvery(in, 1))
	if err != nil || fmt.Sprint(cmds) != fmt.Sprint(want) || last != int64(len(in)) {
		t.Fatalf("one byte: %v %q %d", err, cmds, last)
	}
}

// Args of a command wholly inside one input alias it: no copy.
func TestStreamParserZeroCopy(t *testing.T) {
	in := resp.AppendCommandString(nil, "SET", "key", "value")
	p := newStreamParser(0, resp.Limits{})
	b, err := p.parse(in)
	if err != nil || len(b.Cmds) != 1 {
		t.Fatal(err)
	}
	if &b.Cmds[0].Args[2][0] != &in[bytes.Index(in, []byte("value"))] {
		t.Fatalf("argument was copied")
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := p.parse(in); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per parse", allocs)
	}
}

func TestStreamParserLimits(t *testing.T) {
	lim := resp.Limits{MaxBulk: 10, MaxArray: 3, MaxInline: 16, MaxReply: 30}
	cases := map[string]string{
		"bulk":     "*1\r\n$11\r\n",
		"array":    "*4\r\n",
		"line":     "*1\r\n$" + strings.Repeat("1", 20),
		"command":  "*3\r\n$10\r\n0123456789\r\n$10\r\n",
		"negative": "*1\r\n$-1\r\n",
		"noCR":     "*1\n",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := newStreamParser(0, lim).parse([]byte(in))
			if err == nil || errclass.Classify(err) != errclass.Retry {
				t.Fatalf("err %v", err)
			}
		})
	}
}
