package resp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

var replyCases = []string{
	"+OK\r\n",
	"-ERR unknown command 'foo'\r\n",
	":0\r\n",
	":-9223372036854775808\r\n",
	"$-1\r\n",
	"$0\r\n\r\n",
	"$5\r\nhello\r\n",
	"$4\r\na\r\nb\r\n",
	"*-1\r\n",
	"*0\r\n",
	"*2\r\n$3\r\nfoo\r\n:1\r\n",
	"*3\r\n*2\r\n:1\r\n*0\r\n$-1\r\n*1\r\n*1\r\n+x\r\n",
	"%2\r\n+a\r\n:1\r\n+b\r\n*1\r\n:2\r\n",
	"~2\r\n+a\r\n+b\r\n",
	">2\r\n+message\r\n$1\r\nx\r\n",
	"|1\r\n+ttl\r\n:3\r\n$1\r\nv\r\n",
	"_\r\n",
	"#t\r\n",
	",3.14\r\n",
	"(12345678901234567890\r\n",
	"=7\r\ntxt:abc\r\n",
	"!3\r\nerr\r\n",
}

// readers crosses every reply with readers that split the input.
var readers = map[string]func(io.Reader) io.Reader{
	"whole":   func(r io.Reader) io.Reader { return r },
	"onebyte": iotest.OneByteReader,
	"half":    iotest.HalfReader,
}

func TestReadReplyFramesExactly(t *testing.T) {
	for _, c := range replyCases {
		for name, wrap := range readers {
			t.Run(name+"/"+strings.ReplaceAll(c[:min(len(c), 12)], "\r\n", "."), func(t *testing.T) {
				// The reply followed by a marker: framing must stop exactly at its end.
				in := c + "+NEXT\r\n"
				r := bufio.NewReaderSize(wrap(strings.NewReader(in)), 16)
				got, err := ReadReply(r, nil, Limits{MaxInline: 64})
				if err != nil {
					// the small buffer is fine for every case's lines
					t.Fatalf("ReadReply: %v", err)
				}
				if string(got) != c {
					t.Fatalf("got %q, want %q", got, c)
				}
				next, err := ReadReply(r, nil, Limits{})
				if err != nil || string(next) != "+NEXT\r\n" {
					t.Fatalf("after reply: %q, %v", next, err)
				}
				v, rest, err := ParseValue([]byte(c), Limits{})
				if err != nil || len(rest) != 0 {
					t.Fatalf("ParseValue: %v rest=%q", err, rest)
				}
				_ = v
			})
		}
	}
}

func TestReadReplyErrors(t *testing.T) {
	cases := map[string]string{
		"unknown type":    "?x\r\n",
		"bad length":      "$abc\r\n",
		"negative length": "$-2\r\n",
		"bulk over limit": "$9223372036854775807\r\n",
		"array over":      "*9223372036854775807\r\n",
		"no crlf":         "$3\r\nabcde\r\n",
		"bare lf":         "+OK\n",
		"truncated":       "*2\r\n:1\r\n",
		"empty line":      "\r\n",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			r := bufio.NewReader(strings.NewReader(in))
			_, err := ReadReply(r, nil, Limits{MaxBulk: 1 << 20, MaxArray: 1 << 10})
			if err == nil {
				t.Fatalf("no error for %q", in)
			}
			var pe *ProtocolError
			if !errors.As(err, &pe) && !errors.Is(err, io.ErrUnexpectedEOF) && err != io.EOF {
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
		})
	}
}

func TestReadReplyDeep(t *testing.T) {
	// As deep as a Lua table Redis itself relays, framed exactly.
	in := strings.Repeat("*1\r\n", 8000) + "*0\r\n"
	r := bufio.NewReader(strings.NewReader(in + "+NEXT\r\n"))
	got, err := ReadReply(r, nil, Limits{})
	if err != nil || string(got) != in {
		t.Fatalf("deep reply: %d bytes, %v", len(got), err)
	}
	if next, err := ReadReply(r, nil, Limits{}); err != nil || string(next) != "+NEXT\r\n" {
		t.Fatalf("after deep reply: %q %v", next, err)
	}
}

// A reply over a limit is skipped whole: the error names the limit and
// the next reply reads in sync.
func TestReadReplyOverLimitStaysInSync(t *testing.T) {
	lim := Limits{MaxBulk: 8, MaxArray: 4, MaxDepth: 3, MaxInline: 16, MaxReply: 40}
	cases := map[string]string{
		"deep":        strings.Repeat("*1\r\n", 4) + ":1\r\n",
		"deep mixed":  "*2\r\n" + strings.Repeat("*1\r\n", 5) + "$3\r\nabc\r\n+ok\r\n",
		"bulk":        "*2\r\n$9\r\n123456789\r\n:1\r\n",
		"array":       "*5\r\n:1\r\n:2\r\n:3\r\n:4\r\n:5\r\n",
		"map":         "%5\r\n+a\r\n:1\r\n+b\r\n:2\r\n+c\r\n:3\r\n+d\r\n:4\r\n+e\r\n:5\r\n",
		"long error":  "-ERR " + strings.Repeat("x", 5000) + "\r\n",
		"long simple": "*1\r\n+" + strings.Repeat("y", 100) + "\r\n",
		"reply size":  "*4\r\n$8\r\n12345678\r\n$8\r\n12345678\r\n$8\r\n12345678\r\n$8\r\n12345678\r\n",
	}
	for name, in := range cases {
		for rname, wrap := range readers {
			t.Run(name+"/"+rname, func(t *testing.T) {
				r := bufio.NewReaderSize(wrap(strings.NewReader(in+"+NEXT\r\n")), 16)
				got, err := ReadReply(r, []byte("keep"), lim)
				var le *LimitError
				if !errors.As(err, &le) {
					t.Fatalf("want a LimitError, got %v", err)
				}
				if string(got) != "keep" {
					t.Fatalf("dst changed: %q", got)
				}
				if next, err := ReadReply(r, nil, lim); err != nil || string(next) != "+NEXT\r\n" {
					t.Fatalf("after skipped reply: %q %v", next, err)
				}
			})
		}
	}
}

func TestReadReplyLyingLengthAllocatesLittle(t *testing.T) {
	// A 500 MB bulk header followed by 10 bytes must fail without
	// allocating anything near 500 MB.
	in := "$500000000\r\n0123456789"
	allocs := testing.AllocsPerRun(1, func() {
		r := bufio.NewReader(strings.NewReader(in))
		got, err := ReadReply(r, nil, Limits{})
		if err == nil || cap(got) > 4<<20 {
			t.Fatalf("err=%v cap=%d", err, cap(got))
		}
	})
	_ = allocs
}

func TestReadCommand(t *testing.T) {
	cases := []struct {
		in     string
		args   []string
		inline bool
	}{
		{"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", []string{"GET", "k"}, false},
		{"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n", []string{"SET", "k", "a\r\nb"}, false},
		{"*0\r\n", nil, false},
		{"PING\r\n", []string{"PING"}, true},
		{"SET  k   v\n", []string{"SET", "k", "v"}, true},
		{"\n", nil, true},
		{"\r\n", nil, true},
	}
	for _, c := range cases {
		for name, wrap := range readers {
			t.Run(name+"/"+strings.TrimSpace(c.in), func(t *testing.T) {
				r := bufio.NewReaderSize(wrap(strings.NewReader(c.in+"*1\r\n$4\r\nPING\r\n")), 16)
				var cmd Command
				if err := ReadCommand(r, &cmd, Limits{}); err != nil {
					t.Fatal(err)
				}
				if cmd.Size != len(c.in) {
					t.Fatalf("size %d, want %d", cmd.Size, len(c.in))
				}
				if cmd.Inline != c.inline || len(cmd.Args) != len(c.args) {
					t.Fatalf("got %q inline=%v", cmd.Args, cmd.Inline)
				}
				for i := range c.args {
					if string(cmd.Args[i]) != c.args[i] {
						t.Fatalf("arg %d: %q want %q", i, cmd.Args[i], c.args[i])
					}
				}
				if err := ReadCommand(r, &cmd, Limits{}); err != nil || string(cmd.Name()) != "PING" || cmd.Size != 14 {
					t.Fatalf("next command: %q %v", cmd.Args, err)
				}
			})
		}
	}
}

func TestReadCommandHostile(t *testing.T) {
	cases := map[string]string{
		"huge bulk":      "*1\r\n$9223372036854775807\r\n",
		"huge array":     "*9223372036854775807\r\n",
		"negative bulk":  "*1\r\n$-5\r\n",
		"non numeric":    "*x\r\n",
		"not bulk":       "*1\r\n:1\r\n",
		"long inline":    strings.Repeat("a", 200) + "\r\n",
		"long header":    "*1\r\n$" + strings.Repeat("1", 120) + "\r\n",
		"bad terminator": "*1\r\n$1\r\nab\r\n",
		"no CR":          "*1\n",
		"bulk no CR":     "*1\r\n$1\nx\r\n",
		"empty header":   "*1\r\n\r\n",
	}
	lim := Limits{MaxBulk: 1 << 20, MaxArray: 1 << 10, MaxInline: 100}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			r := bufio.NewReader(strings.NewReader(in))
			var cmd Command
			err := ReadCommand(r, &cmd, lim)
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("got %v, want a protocol error", err)
			}
			// The sans-I/O framer rejects the same bytes.
			if _, err := CommandLen([]byte(in), lim); !errors.As(err, &pe) {
				t.Fatalf("CommandLen: got %v, want a protocol error", err)
			}
		})
	}
}

func TestAppendRoundTrip(t *testing.T) {
	var cmd Command
	raw := AppendCommandString(nil, "SET", "key", "", "va\x00l")
	if err := ReadCommand(bufio.NewReader(bytes.NewReader(raw)), &cmd, Limits{}); err != nil {
		t.Fatal(err)
	}
	if len(cmd.Args) != 4 || string(cmd.Args[3]) != "va\x00l" || cmd.Size != len(raw) {
		t.Fatalf("round trip: %q", cmd.Args)
	}
	b := AppendInt(AppendSimple(AppendError(AppendNull(nil), "ERR x"), "OK"), -3)
	if string(b) != "$-1\r\n-ERR x\r\n+OK\r\n:-3\r\n" {
		t.Fatalf("append: %q", b)
	}
}

func TestValueErr(t *testing.T) {
	v, _, err := ParseValue([]byte("-READONLY You can't write\r\n"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var re Error
	if !errors.As(v.Err(), &re) || re.Code() != "READONLY" {
		t.Fatalf("got %v", v.Err())
	}
	if _, _, err := ParseValue([]byte("*2\r\n:1\r\n"), Limits{}); err != ErrIncomplete {
		t.Fatalf("want ErrIncomplete, got %v", err)
	}
}

func FuzzReadReply(f *testing.F) {
	for _, c := range replyCases {
		f.Add([]byte(c), 3)
	}
	f.Add([]byte(strings.Repeat("*1\r\n", 20)+":1\r\n"), 7)
	f.Add([]byte("*2\r\n-"+strings.Repeat("e", 200)+"\r\n:1\r\n"), 5)
	f.Fuzz(func(t *testing.T, in []byte, split int) {
		lim := Limits{MaxBulk: 1 << 16, MaxArray: 1 << 10, MaxDepth: 16, MaxReply: 1 << 20}
		// Fed in two halves, framing must agree with whole-buffer decoding.
		if split < 0 {
			split = -split
		}
		split %= len(in) + 1
		r := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(in[:split]), bytes.NewReader(in[split:])), 16)
		cr := &countReader{r: io.MultiReader(bytes.NewReader(in[:split]), bytes.NewReader(in[split:]))}
		r = bufio.NewReaderSize(cr, 16)
		got, err := ReadReply(r, nil, lim)
		var le *LimitError
		if errors.As(err, &le) {
			// Skipped whole: exactly the bytes the unlimited framing takes.
			all, err := ReadReply(bufio.NewReader(bytes.NewReader(in)), nil, Limits{MaxBulk: 1 << 30, MaxArray: 1 << 30, MaxDepth: 1 << 20, MaxInline: 1 << 20})
			if err != nil || int64(len(all)) != cr.n-int64(r.Buffered()) {
				t.Fatalf("skipped %d bytes, reply is %d (%v)", cr.n-int64(r.Buffered()), len(all), err)
			}
			if len(got) != 0 {
				t.Fatalf("skipped reply left %q", got)
			}
		}
		_, rest, perr := ParseValue(in, lim)
		// Whatever decodes fully must frame to exactly the same bytes (the
		// framer is allowed to be more lenient about scalar contents).
		if perr == nil {
			if err != nil {
				t.Fatalf("ParseValue decoded %q but ReadReply says %v", in[:len(in)-len(rest)], err)
			}
			if !bytes.Equal(got, in[:len(in)-len(rest)]) {
				t.Fatalf("framing differs: %q vs %q", got, in[:len(in)-len(rest)])
			}
		}
	})
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func FuzzReadCommand(f *testing.F) {
	f.Add([]byte("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"))
	f.Add([]byte("PING\r\n"))
	f.Add([]byte("*1\r\n$9223372036854775807\r\n"))
	f.Add([]byte("\n\n*1\r\n$4\r\nping\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(in), 16)
		var cmd Command
		total := 0
		for i := 0; i < 100; i++ {
			if err := ReadCommand(r, &cmd, Limits{MaxBulk: 1 << 16, MaxArray: 1 << 10, MaxInline: 1 << 10}); err != nil {
				break
			}
			total += cmd.Size
			if total > len(in) {
				t.Fatalf("consumed %d of %d bytes", total, len(in))
			}
			// What was read re-encodes to a command that parses the same.
			if !cmd.Inline {
				raw := AppendCommand(nil, cmd.Args...)
				var again Command
				if err := ReadCommand(bufio.NewReader(bytes.NewReader(raw)), &again, Limits{}); err != nil && len(cmd.Args) > 0 {
					t.Fatalf("re-encoded command does not parse: %v", err)
				}
			}
		}
	})
}

func BenchmarkReadReply(b *testing.B) {
	in := []byte(strings.Repeat("*3\r\n$3\r\nfoo\r\n:42\r\n$10\r\n0123456789\r\n", 1000))
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	var buf []byte
	for i := 0; i < b.N; i++ {
		r := bufio.NewReader(bytes.NewReader(in))
		for j := 0; j < 1000; j++ {
			var err error
			if buf, err = ReadReply(r, buf[:0], Limits{}); err != nil {
				b.Fatal(err)
			}
		}
	}
}
