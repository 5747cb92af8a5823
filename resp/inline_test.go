package resp

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"
)

// Cases checked against redis-server 7.0: each line sent inline as the
// arguments of RPUSH, the list read back with LRANGE.
var inlineCases = []struct {
	line string
	args []string // nil: unbalanced quotes
}{
	{`EVAL "return 1" 0`, []string{"EVAL", "return 1", "0"}},
	{`set k "a\x41\x4a\n\r\t\b\a\"\\\q"`, []string{"set", "k", "aAJ\n\r\t\b\a\"\\q"}},
	{`set k 'it\'s "x" \n'`, []string{"set", "k", `it's "x" \n`}},
	{`a"b c"d`, nil},                    // a closing quote must end the argument
	{`a"b c" d`, []string{"ab c", "d"}}, // a quote may open mid-argument
	{`x'y z'`, []string{"xy z"}},
	{`"" ''`, []string{"", ""}},
	{`"\x4"`, []string{"x4"}},
	{`"\xZZ"`, []string{"xZZ"}},
	{`"unterminated`, nil},
	{`'unterminated`, nil},
	{`"ends with backslash\`, nil},
	{`'a'b`, nil},
	{"  \t spaced \v\f  out\t", []string{"spaced", "out"}},
	{"nul\x00inside \"q\x00\"", []string{"nul\x00inside", "q\x00"}}, // Redis cannot take these at all
	{`GET k`, []string{"GET", "k"}},
	{``, []string{}},
	{`   `, []string{}},
}

func TestSplitArgs(t *testing.T) {
	for _, c := range inlineCases {
		t.Run(c.line, func(t *testing.T) {
			r := bufio.NewReader(strings.NewReader(c.line + "\r\nPING\r\n"))
			var cmd Command
			err := ReadCommand(r, &cmd, Limits{})
			if c.args == nil {
				var pe *ProtocolError
				if !errors.As(err, &pe) || pe.Msg != "unbalanced quotes in request" {
					t.Fatalf("want unbalanced quotes, got %q %v", cmd.Args, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(cmd.Args) != len(c.args) {
				t.Fatalf("got %q, want %q", cmd.Args, c.args)
			}
			for i := range c.args {
				if string(cmd.Args[i]) != c.args[i] {
					t.Fatalf("got %q, want %q", cmd.Args, c.args)
				}
			}
			if cmd.Size != len(c.line)+2 {
				t.Fatalf("size %d", cmd.Size)
			}
			if err := ReadCommand(r, &cmd, Limits{}); err != nil || string(cmd.Args[0]) != "PING" {
				t.Fatalf("next command: %q %v", cmd.Args, err)
			}
		})
	}
}

// quoteArg quotes an argument so splitArgs gives it back.
func quoteArg(a []byte) []byte {
	out := []byte{'"'}
	for _, ch := range a {
		switch {
		case ch == '"' || ch == '\\':
			out = append(out, '\\', ch)
		case ch < ' ' || ch > '~':
			out = append(out, '\\', 'x', "0123456789abcdef"[ch>>4], "0123456789abcdef"[ch&15])
		default:
			out = append(out, ch)
		}
	}
	return append(out, '"')
}

// FuzzSplitArgs: any line splits without panicking into arguments no
// longer than the line, and the arguments, quoted back, split the same.
func FuzzSplitArgs(f *testing.F) {
	for _, c := range inlineCases {
		f.Add([]byte(c.line))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		buf := make([]byte, 0, len(line))
		_, args, err := splitArgs(buf, nil, line, 1<<10)
		if err != nil {
			return
		}
		total := 0
		for _, a := range args {
			total += len(a)
		}
		if total > len(line) {
			t.Fatalf("%d argument bytes from a %d-byte line", total, len(line))
		}
		var quoted []byte
		for i, a := range args {
			if i > 0 {
				quoted = append(quoted, ' ')
			}
			quoted = append(quoted, quoteArg(a)...)
		}
		_, again, err := splitArgs(make([]byte, 0, len(quoted)), nil, quoted, 1<<10)
		if err != nil || len(again) != len(args) {
			t.Fatalf("re-quoted %q: %q %v", quoted, again, err)
		}
		for i := range args {
			if !bytes.Equal(args[i], again[i]) {
				t.Fatalf("re-quoted arg %d: %q vs %q", i, again[i], args[i])
			}
		}
	})
}
