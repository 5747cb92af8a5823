package resp

import (
	"bufio"
	"bytes"
)

// Command is one parsed command. Args are views into Buf; both are reused by
// the next ReadCommand into the same Command, so copy what must outlive it.
type Command struct {
	Args [][]byte
	Buf  []byte
	// Size is the number of wire bytes the command took, CRLFs included:
	// what a replication offset advances by.
	Size int
	// Inline is true for a command sent as a plain text line.
	Inline bool
}

// Name returns the first argument, or nil for an empty command.
func (c *Command) Name() []byte {
	if len(c.Args) == 0 {
		return nil
	}
	return c.Args[0]
}

// ReadCommand reads one command into c: a multi-bulk array of bulk strings
// (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) or an inline line (`GET k\r\n`). An
// empty inline line (a bare "\n" or "\r\n", which masters send as keepalives
// and clients may send between commands) yields a command with no Args and
// its Size. Lengths are checked against lim before allocating.
func ReadCommand(r *bufio.Reader, c *Command, lim Limits) error {
	lim = lim.WithDefaults()
	c.Args = c.Args[:0]
	c.Buf = c.Buf[:0]
	c.Size = 0
	c.Inline = false
	b, err := r.Peek(1)
	if err != nil {
		return err
	}
	if b[0] != TypeArray {
		return readInline(r, c, lim)
	}
	line, err := readLine(r, lim.MaxInline)
	if err != nil {
		return err
	}
	c.Size += len(line) + 2
	n, ok := ParseInt(line[1:])
	if !ok {
		return protoErr("invalid multibulk length", line)
	}
	if n > lim.MaxArray {
		return protoErr("invalid multibulk length", line)
	}
	if n <= 0 {
		return nil // "*0" and "*-1" are empty commands, ignored like Redis does
	}
	// Record offsets first: Buf may move while it grows.
	var offs [16][2]int
	spans := offs[:0]
	for i := int64(0); i < n; i++ {
		line, err := readLine(r, lim.MaxInline)
		if err != nil {
			return err
		}
		c.Size += len(line) + 2
		if len(line) == 0 || line[0] != TypeBulk {
			return protoErr("expected '$'", line)
		}
		l, ok := ParseInt(line[1:])
		if !ok || l < 0 || l > lim.MaxBulk {
			return protoErr("invalid bulk length", line)
		}
		at := len(c.Buf)
		c.Buf, err = readN(r, c.Buf, int(l)+2)
		if err != nil {
			return err
		}
		if c.Buf[len(c.Buf)-2] != '\r' || c.Buf[len(c.Buf)-1] != '\n' {
			return protoErr("bulk not terminated by CRLF", nil)
		}
		c.Buf = c.Buf[:len(c.Buf)-2]
		c.Size += int(l) + 2
		spans = append(spans, [2]int{at, len(c.Buf)})
	}
	for _, s := range spans {
		c.Args = append(c.Args, c.Buf[s[0]:s[1]:s[1]])
	}
	return nil
}

func readInline(r *bufio.Reader, c *Command, lim Limits) error {
	c.Inline = true
	line, err := readRawLine(r, lim.MaxInline)
	if err != nil {
		return err
	}
	c.Size = len(line)
	line = bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'})
	// Unquoting never lengthens an argument: Buf gets room for the line
	// once, so it does not move while Args are cut from it.
	if cap(c.Buf) < len(line) {
		c.Buf = make([]byte, 0, len(line))
	}
	buf, args, err := splitArgs(c.Buf[:0], c.Args[:0], line, lim.MaxArray)
	c.Buf, c.Args = buf, args
	return err
}

// splitArgs splits an inline command line into arguments the way Redis
// does (sdssplitargs): arguments are separated by spaces; "double quotes"
// take the escapes \xHH, \n, \r, \t, \b, \a and \<any char>; 'single
// quotes' take only \'; a quote may start in the middle of an argument; a
// closing quote must be followed by a space or the end of the line.
// Unquoted arguments are appended to buf and sliced from it into args, so
// buf must have room for len(line) bytes or args alias a buffer that
// moved; readInline sees to that. A NUL byte is an ordinary byte (Redis
// cannot take an inline line holding one at all: it looks for the newline
// with strchr). Unbalanced quotes are a *ProtocolError
// worded like Redis' ("unbalanced quotes in request"); more than maxArgs
// arguments is one too.
func splitArgs(buf []byte, args [][]byte, line []byte, maxArgs int64) ([]byte, [][]byte, error) {
	p := 0
	n := len(line)
	unbalanced := func() ([]byte, [][]byte, error) {
		return buf, args, protoErr("unbalanced quotes in request", nil)
	}
	for {
		for p < n && isSpace(line[p]) {
			p++
		}
		if p >= n {
			return buf, args, nil
		}
		if int64(len(args)) >= maxArgs {
			return buf, args, protoErr("too many arguments", line)
		}
		start := len(buf)
		inq, insq, done := false, false, false
		for !done {
			if p >= n {
				if inq || insq {
					return unbalanced()
				}
				break
			}
			ch := line[p]
			switch {
			case inq:
				switch {
				case ch == '\\' && p+3 < n && line[p+1] == 'x' && isHex(line[p+2]) && isHex(line[p+3]):
					buf = append(buf, unhex(line[p+2])<<4|unhex(line[p+3]))
					p += 3
				case ch == '\\' && p+1 < n:
					p++
					switch c := line[p]; c {
					case 'n':
						buf = append(buf, '\n')
					case 'r':
						buf = append(buf, '\r')
					case 't':
						buf = append(buf, '\t')
					case 'b':
						buf = append(buf, '\b')
					case 'a':
						buf = append(buf, '\a')
					default:
						buf = append(buf, c)
					}
				case ch == '"':
					// The closing quote must end the argument.
					if p+1 < n && !isSpace(line[p+1]) {
						return unbalanced()
					}
					done = true
				default:
					buf = append(buf, ch)
				}
			case insq:
				switch {
				case ch == '\\' && p+1 < n && line[p+1] == '\'':
					p++
					buf = append(buf, '\'')
				case ch == '\'':
					if p+1 < n && !isSpace(line[p+1]) {
						return unbalanced()
					}
					done = true
				default:
					buf = append(buf, ch)
				}
			default:
				switch ch {
				case ' ', '\n', '\r', '\t':
					done = true
				case '"':
					inq = true
				case '\'':
					insq = true
				default:
					buf = append(buf, ch)
				}
			}
			if p < n {
				p++
			}
		}
		args = append(args, buf[start:len(buf):len(buf)])
	}
}

// isSpace is C's isspace in the "C" locale.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
