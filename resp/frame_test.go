package resp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

var commandCases = []string{
	"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
	"*3\r\n$3\r\nSET\r\n$0\r\n\r\n$5\r\nhel\r\n\r\n",
	"*0\r\n",
	"*-1\r\n",
	"*1\r\n$4\r\nPING\r\n",
	"PING\r\n",
	"GET k\n",
	"\n",
	"\r\n",
}

// TestCommandLenSplits cuts commands at every offset: a prefix is
// incomplete, the whole (with or without what follows) is framed exactly.
func TestCommandLenSplits(t *testing.T) {
	for _, c := range commandCases {
		for i := 0; i < len(c); i++ {
			if n, err := CommandLen([]byte(c[:i]), Limits{}); err != ErrIncomplete {
				t.Errorf("%q cut at %d: %d, %v", c, i, n, err)
			}
		}
		for _, tail := range []string{"", "*1\r\n", "+junk"} {
			if n, err := CommandLen([]byte(c+tail), Limits{}); err != nil || n != len(c) {
				t.Errorf("%q: %d, %v", c+tail, n, err)
			}
		}
	}
	// Unterminated lines wait, however long: the caller bounds its buffer.
	if _, err := CommandLen([]byte(strings.Repeat("a", 200)), Limits{MaxInline: 100}); err != ErrIncomplete {
		t.Fatalf("open inline line: %v", err)
	}
}

// frameSplit runs a CommandFramer over in cut into the given pieces, as a
// caller that keeps the partial command's bytes does, and renders the
// commands (arguments and lengths).
func frameSplit(in []byte, lim Limits, cuts ...int) (string, error) {
	f := NewCommandFramer(lim)
	var out strings.Builder
	var held []byte
	prev := 0
	for _, cut := range append(cuts, len(in)) {
		held = append(held, in[prev:cut]...)
		prev = cut
		for len(held) > 0 {
			n, err := f.Next(held)
			if err == ErrIncomplete {
				break
			}
			if err != nil {
				return out.String(), err
			}
			fmt.Fprintf(&out, "%d%q ", n, f.Args(held[:n], nil))
			held = held[n:]
		}
	}
	if len(held) > 0 {
		return out.String(), ErrIncomplete
	}
	return out.String(), nil
}

func TestCommandFramerAnySplit(t *testing.T) {
	var in []byte
	for _, c := range commandCases {
		if c[0] == '*' {
			in = append(in, c...)
		}
	}
	in = AppendCommandString(in, "SET", "k", strings.Repeat("v", 300))
	want, err := frameSplit(in, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(want, `["GET" "k"]`) || !strings.Contains(want, `["SET" "" "hel\r\n"]`) || !strings.Contains(want, `4[] 5[]`) {
		t.Fatalf("framed %s", want)
	}
	for i := 0; i <= len(in); i++ {
		for _, j := range []int{i, (i + len(in)) / 2} {
			got, err := frameSplit(in, Limits{}, i, j)
			if err != nil || got != want {
				t.Fatalf("cut at %d/%d: %s %v", i, j, got, err)
			}
		}
	}
	cuts := make([]int, len(in))
	for i := range cuts {
		cuts[i] = i
	}
	if got, err := frameSplit(in, Limits{}, cuts...); err != nil || got != want {
		t.Fatalf("one byte at a time: %s %v", got, err)
	}
}

// A stream framer bounds what its caller holds.
func TestCommandFramerBounds(t *testing.T) {
	lim := Limits{MaxBulk: 10, MaxArray: 3, MaxInline: 16, MaxReply: 30}
	for name, in := range map[string]string{
		"bulk":      "*1\r\n$11\r\n",
		"array":     "*4\r\n",
		"open line": "*1\r\n$" + strings.Repeat("1", 20),
		"command":   "*3\r\n$10\r\n0123456789\r\n$10\r\n",
		"negative":  "*1\r\n$-1\r\n",
		"no CR":     "*1\n",
		"inline":    "PING\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NewCommandFramer(lim).Next([]byte(in))
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("got %v, want a protocol error", err)
			}
		})
	}
}

func TestCommandFramerNoAllocs(t *testing.T) {
	in := AppendCommandString(nil, "SET", "key", "value")
	f := NewCommandFramer(Limits{})
	var args [][]byte
	allocs := testing.AllocsPerRun(100, func() {
		n, err := f.Next(in)
		if err != nil || n != len(in) {
			t.Fatal(n, err)
		}
		args = f.Args(in, args[:0])
		if n, err := CommandLen(in, Limits{}); n != len(in) || err != nil {
			t.Fatal(n, err)
		}
	})
	if allocs != 0 || &args[2][0] != &in[len(in)-7] {
		t.Fatalf("%v allocations; args %q", allocs, args)
	}
}

func TestReplyLen(t *testing.T) {
	for _, c := range replyCases {
		for i := 0; i < len(c); i++ {
			if n, err := ReplyLen([]byte(c[:i]), Limits{}); err != ErrIncomplete {
				t.Errorf("%q cut at %d: %d, %v", c, i, n, err)
			}
		}
		if n, err := ReplyLen([]byte(c+"+NEXT\r\n"), Limits{}); err != nil || n != len(c) {
			t.Errorf("%q: %d, %v", c, n, err)
		}
	}
	deep := strings.Repeat("*1\r\n", 9000) + ":1\r\n"
	if n, err := ReplyLen([]byte(deep), Limits{}); n != len(deep) || err != nil {
		t.Fatalf("deep: %d, %v", n, err)
	}
	var le *LimitError
	if n, err := ReplyLen([]byte(deep), Limits{MaxDepth: 100}); n != len(deep) || !errors.As(err, &le) {
		t.Fatalf("too deep: %d, %v", n, err)
	}
	for _, bad := range []string{"?x\r\n", "$abc\r\n", "$1\r\nab\r\n", "*1\n:1\r\n", "\r\n"} {
		var pe *ProtocolError
		if _, err := ReplyLen([]byte(bad), Limits{}); !errors.As(err, &pe) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestBulkBody(t *testing.T) {
	for in, want := range map[string]string{"$3\r\nabc\r\n": "abc", "$0\r\n\r\n": "", "+OK\r\n": "<nil>", "$-1\r\n": "<nil>", "": "<nil>"} {
		got := "<nil>"
		if b := BulkBody([]byte(in)); b != nil {
			got = string(b)
		}
		if got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

func TestAggregateHeader(t *testing.T) {
	for in, want := range map[string]string{"*2\r\n:1\r\n:2\r\n": "2 4 true", "~0\r\n": "0 4 true", "*-1\r\n": "0 5 true", ">1\r\n": "1 4 true", "$1\r\n": "0 0 false", "*x\r\n": "0 0 false", "%1\r\n": "0 0 false"} {
		n, at, ok := AggregateHeader([]byte(in))
		if got := fmt.Sprint(n, at, ok); got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
	}
}

// FuzzCommandLen holds the sans-I/O command framers to ReadCommand's
// answers on the same bytes: the same length, incomplete exactly where
// ReadCommand runs out of input, malformed where it fails. The stream
// framer agrees in any split, and may only be stricter (its bounds).
func FuzzCommandLen(f *testing.F) {
	for _, c := range commandCases {
		f.Add([]byte(c), uint16(len(c)/2))
	}
	f.Add([]byte("*1\r\n$9223372036854775807\r\n"), uint16(3))
	f.Add([]byte("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING"), uint16(20))
	f.Add([]byte("*1\r\n$-5\r\n"), uint16(5))
	f.Add([]byte("SET 'a b' \"c\\x41\"\r\n"), uint16(4))
	f.Add([]byte("*1\r\n$3\r\nabcd\r\n"), uint16(7))
	f.Add([]byte("*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"), uint16(11))
	f.Add([]byte("*01\r\n$+1\r\na\r\n"), uint16(1))
	f.Fuzz(func(t *testing.T, in []byte, split uint16) {
		lim := Limits{MaxBulk: 1 << 12, MaxArray: 1 << 8, MaxInline: 1 << 8, MaxReply: 1 << 14}
		n, err := CommandLen(in, lim)
		r := bufio.NewReaderSize(bytes.NewReader(in), len(in)+16)
		var cmd Command
		rerr := ReadCommand(r, &cmd, lim)
		var pe *ProtocolError
		switch {
		case err == nil:
			if rerr == nil && cmd.Size != n {
				t.Fatalf("CommandLen %d, ReadCommand %d", n, cmd.Size)
			}
			if rerr != nil && !(cmd.Inline && errors.As(rerr, &pe)) { // quoting is ReadCommand's
				t.Fatalf("CommandLen %d, ReadCommand %v", n, rerr)
			}
		case err == ErrIncomplete:
			if rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
				t.Fatalf("CommandLen incomplete, ReadCommand %v (%d)", rerr, cmd.Size)
			}
		default:
			if !errors.As(err, &pe) || !errors.As(rerr, &pe) {
				t.Fatalf("CommandLen %v, ReadCommand %v", err, rerr)
			}
		}
		if len(in) == 0 || in[0] != TypeArray {
			return
		}
		whole, werr := frameSplit(in, lim)
		k := int(split) % (len(in) + 1)
		parts, perr := frameSplit(in, lim, k)
		if whole != parts || (werr == nil) != (perr == nil) {
			t.Fatalf("split at %d: %s %v, whole: %s %v", k, parts, perr, whole, werr)
		}
		f := NewCommandFramer(lim)
		sn, serr := f.Next(in)
		switch {
		case serr == nil:
			if err != nil || sn != n || fmt.Sprintf("%q", f.Args(in, nil)) != fmt.Sprintf("%q", cmd.Args) {
				t.Fatalf("stream framer %d %q, CommandLen %d %v, ReadCommand %q", sn, f.Args(in, nil), n, err, cmd.Args)
			}
		case serr == ErrIncomplete:
			if err != ErrIncomplete {
				t.Fatalf("stream framer incomplete, CommandLen %d %v", n, err)
			}
		default:
			if !errors.As(serr, &pe) {
				t.Fatalf("stream framer: %v", serr)
			}
		}
	})
}

// FuzzReplyLen holds ReplyLen to ReadReply's framing of the same bytes:
// the same length (also of a reply over the limits), incomplete exactly
// where ReadReply runs out of input, malformed where it fails.
func FuzzReplyLen(f *testing.F) {
	for _, c := range replyCases {
		f.Add([]byte(c))
	}
	f.Add([]byte(strings.Repeat("*1\r\n", 20) + ":1\r\n"))
	f.Add([]byte("*2\r\n-" + strings.Repeat("e", 300) + "\r\n:1\r\n"))
	f.Add([]byte("*2\r\n$5000\r\n" + strings.Repeat("x", 5000) + "\r\n:1\r\n"))
	f.Add([]byte("|1\r\n+a\r\n+b\r\n%1\r\n+k\r\n*2\r\n_\r\n#f\r\n"))
	f.Add([]byte("*3\r\n:1\r\n"))
	f.Add([]byte("$-2\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		lim := Limits{MaxBulk: 1 << 12, MaxArray: 1 << 8, MaxInline: 1 << 8, MaxDepth: 16, MaxReply: 1 << 14}
		n, err := ReplyLen(in, lim)
		cr := &countReader{r: bytes.NewReader(in)}
		r := bufio.NewReaderSize(cr, 16)
		got, rerr := ReadReply(r, nil, lim)
		var le *LimitError
		var pe *ProtocolError
		switch {
		case rerr == nil:
			if err != nil || n != len(got) {
				t.Fatalf("ReadReply %d bytes, ReplyLen %d %v", len(got), n, err)
			}
		case errors.As(rerr, &le):
			if read := int(cr.n) - r.Buffered(); !errors.As(err, &le) || n != read {
				t.Fatalf("ReadReply skipped %d bytes (%v), ReplyLen %d %v", read, rerr, n, err)
			}
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
			if err != ErrIncomplete {
				t.Fatalf("ReadReply %v, ReplyLen %d %v", rerr, n, err)
			}
		default:
			if !errors.As(rerr, &pe) || !errors.As(err, &pe) {
				t.Fatalf("ReadReply %v, ReplyLen %d %v", rerr, n, err)
			}
		}
	})
}

// BenchmarkFramers measures the sans-I/O framers on the shapes the proxy
// and the replication stream see most: a short command, and a bulk
// string element.
func BenchmarkFramers(b *testing.B) {
	cmd := AppendCommandString(nil, "GET", "key:000001")
	bulk := AppendBulkString(nil, "value:0000000001")
	lim := Limits{}.WithDefaults()
	b.Run("CommandLen", func(b *testing.B) {
		for b.Loop() {
			if n, err := CommandLen(cmd, lim); n != len(cmd) || err != nil {
				b.Fatal(n, err)
			}
		}
	})
	b.Run("CommandFramer", func(b *testing.B) {
		f := NewCommandFramer(lim)
		var args [][]byte
		for b.Loop() {
			if n, err := f.Next(cmd); n != len(cmd) || err != nil {
				b.Fatal(n, err)
			}
			args = f.Args(cmd, args[:0])
		}
	})
	b.Run("ReplyLen", func(b *testing.B) {
		for b.Loop() {
			if n, err := ReplyLen(bulk, lim); n != len(bulk) || err != nil {
				b.Fatal(n, err)
			}
		}
	})
}
