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
	c.Buf = append(c.Buf, line...)
	for _, f := range bytes.Fields(c.Buf) {
		if int64(len(c.Args)) >= lim.MaxArray {
			return protoErr("too many arguments", line)
		}
		c.Args = append(c.Args, f)
	}
	return nil
}
