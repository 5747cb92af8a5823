package resp

import "bytes"

// The sans-I/O framers: they say where a command or a reply ends in bytes
// already received, without reading from anything and without copying.
// ReadCommand and ReadReply are their counterparts on a *bufio.Reader; the
// fuzz targets hold the two to the same answers.

// CommandLen frames the command b starts with, a multi-bulk array of bulk
// strings or an inline line, with the checks ReadCommand makes. It returns
// the command's length in bytes once b holds all of it, ErrIncomplete while
// it does not, or a *ProtocolError for input ReadCommand rejects at a line
// end (an unterminated line is incomplete however long: the caller bounds
// what it buffers, as a bufio.Reader does).
func CommandLen(b []byte, lim Limits) (int, error) {
	var f CommandFramer
	f.inline = true
	f.lim.set(&lim)
	return f.Next(b)
}

// A CommandFramer frames the commands of a stream whose bytes arrive in
// pieces of any size, such as a replication stream: arrays of bulk strings
// only (an inline line is a *ProtocolError). It holds no bytes: the caller
// keeps those of the command being framed and passes them again, grown;
// the framer resumes where it stopped, so each byte is looked at once.
//
// On top of ReadCommand's checks it bounds what a caller accumulates: an
// unterminated line longer than MaxInline, and a command whose lengths add
// up to more than MaxReply, are errors at once.
type CommandFramer struct {
	lim    Limits // with its defaults set
	inline bool   // CommandLen: inline lines are commands; args are not recorded

	state frameState
	off   int      // bytes of the current command framed so far
	scan  int      // bytes of the current line already searched for '\n'
	left  int64    // bulk strings still to frame
	want  int64    // bytes of the current payload, CRLF included
	spans [][2]int // each framed argument's payload, as offsets in the command
}

type frameState uint8

const (
	frameStart    frameState = iota // before the command's first byte
	frameInline                     // in an inline line
	frameArray                      // in the "*<n>" line
	frameBulkLine                   // expecting "$<len>"
	frameBulk                       // in a payload
)

// NewCommandFramer returns a framer for a command stream, checking lengths
// against lim.
func NewCommandFramer(lim Limits) *CommandFramer {
	f := &CommandFramer{}
	f.lim.set(&lim)
	return f
}

// Next frames on through b, which holds the bytes of the current command
// from its first byte: those passed before and maybe more. It returns the
// command's length once b holds all of it (the framer then starts on the
// next command, which begins at b[n:]), ErrIncomplete while b does not,
// or a *ProtocolError, after which the framer must not be used again.
// "*0" and "*-1" are commands of no arguments, as for ReadCommand.
func (f *CommandFramer) Next(b []byte) (int, error) {
	for {
		switch f.state {
		case frameStart:
			if len(b) == 0 {
				return 0, ErrIncomplete
			}
			f.spans = f.spans[:0]
			switch {
			case b[0] == TypeArray:
				f.state = frameArray
			case f.inline:
				f.state = frameInline
			default:
				return 0, protoErr("expected '*'", b)
			}
		case frameInline:
			i := bytes.IndexByte(b[f.off:], '\n')
			if i < 0 {
				f.off = len(b)
				return 0, ErrIncomplete
			}
			n := f.off + i + 1
			if n > f.lim.MaxInline+2 {
				return 0, protoErr("line too long", b)
			}
			f.reset()
			return n, nil
		case frameArray:
			v, err := f.line(b, TypeArray)
			if err != nil {
				return 0, err
			}
			if v > f.lim.MaxArray {
				return 0, protoErr("invalid multibulk length", b)
			}
			if v <= 0 {
				n := f.off
				f.reset()
				return n, nil
			}
			f.left = v
			f.state = frameBulkLine
		case frameBulkLine:
			// Fast path: whole arguments, framed in a tight loop; anything
			// else (split, malformed, over a limit) goes the general way.
			for off, left := f.off, f.left; f.scan == 0; {
				v, n := quickLen(b[off:], TypeBulk)
				end := off + n + int(v) + 2
				if n == 0 || n > f.lim.MaxInline+2 || v > f.lim.MaxBulk || int64(end) > int64(len(b)) ||
					!f.inline && int64(off+n)+v+2 > f.lim.MaxReply || b[end-2] != '\r' || b[end-1] != '\n' {
					f.off, f.left = off, left
					break
				}
				if !f.inline {
					f.spans = append(f.spans, [2]int{off + n, end - 2})
				}
				off = end
				if left--; left == 0 {
					f.reset()
					return end, nil
				}
			}
			at := f.off
			v, err := f.line(b, TypeBulk)
			if err != nil {
				return 0, err
			}
			if v < 0 || v > f.lim.MaxBulk {
				return 0, protoErr("invalid bulk length", b[at:])
			}
			if !f.inline && int64(f.off)+v+2 > f.lim.MaxReply {
				return 0, protoErr("command larger than the limit", b[at:])
			}
			f.want = v + 2
			f.state = frameBulk
		case frameBulk:
			if int64(len(b)-f.off) < f.want {
				return 0, ErrIncomplete
			}
			end := f.off + int(f.want)
			if b[end-2] != '\r' || b[end-1] != '\n' {
				return 0, protoErr("bulk not terminated by CRLF", b[end-2:])
			}
			if !f.inline {
				f.spans = append(f.spans, [2]int{f.off, end - 2})
			}
			f.off = end
			if f.left--; f.left == 0 {
				f.reset()
				return end, nil
			}
			f.state = frameBulkLine
		}
	}
}

// line frames the "<typ><length>\r\n" line at b[f.off:] and returns the
// length; f.off moves past the line.
func (f *CommandFramer) line(b []byte, typ byte) (int64, error) {
	p := b[f.off:]
	if f.scan == 0 {
		if v, n := quickLen(p, typ); n > 0 && n <= f.lim.MaxInline+2 {
			f.off += n
			return v, nil
		}
	}
	i := bytes.IndexByte(p[f.scan:], '\n')
	if i < 0 {
		f.scan = len(p)
		if !f.inline && len(p) > f.lim.MaxInline+2 {
			return 0, protoErr("line too long", p)
		}
		return 0, ErrIncomplete
	}
	n := f.scan + i + 1
	f.scan = 0
	line := p[:n]
	switch {
	case n > f.lim.MaxInline+2:
		return 0, protoErr("line too long", line)
	case n < 2 || line[n-2] != '\r':
		return 0, protoErr("line not terminated by CRLF", line)
	case n == 2 || line[0] != typ:
		return 0, protoErr("expected '"+string(typ)+"'", line)
	}
	v, ok := ParseInt(line[1 : n-2])
	if !ok {
		if typ == TypeArray {
			return 0, protoErr("invalid multibulk length", line)
		}
		return 0, protoErr("invalid bulk length", line)
	}
	f.off += n
	return v, nil
}

// quickLen is the fast path of framing a "<typ><length>\r\n" line: one
// wholly in p, of 1 to 18 digits and no sign. It returns the length and
// the line's size, or n == 0 for anything else, which the general path
// then frames (or rejects).
func quickLen(p []byte, typ byte) (v int64, n int) {
	if len(p) < 4 || p[0] != typ {
		return 0, 0
	}
	i := 1
	for ; i < len(p) && i <= 18; i++ {
		c := p[i]
		if c < '0' || c > '9' {
			break
		}
		v = v*10 + int64(c-'0')
	}
	if i == 1 || i+1 >= len(p) || p[i] != '\r' || p[i+1] != '\n' {
		return 0, 0
	}
	return v, i + 2
}

func (f *CommandFramer) reset() {
	f.state, f.off, f.scan, f.left, f.want = frameStart, 0, 0, 0, 0
}

// Args appends the arguments of the command Next just framed in b (the
// same bytes), as views into b, to dst.
func (f *CommandFramer) Args(b []byte, dst [][]byte) [][]byte {
	for _, s := range f.spans {
		dst = append(dst, b[s[0]:s[1]:s[1]])
	}
	return dst
}

// Framed is how many bytes of the current command Next has framed: where
// it stopped, or the offending line's start after an error.
func (f *CommandFramer) Framed() int { return f.off }

// Want is how many more bytes the current command needs at least, given
// that have bytes of it are held: the rest of a payload, or 0 when Next
// waits for a line's end.
func (f *CommandFramer) Want(have int) int64 {
	if f.state != frameBulk {
		return 0
	}
	return max(int64(f.off)+f.want-int64(have), 0)
}

// AggregateHeader reads the header of the array, set or push reply b
// starts with: its element count and where its elements start (a nil
// aggregate has none). ok is false for any other reply. Frame the
// elements with ReplyLen.
func AggregateHeader(b []byte) (n, at int, ok bool) {
	if len(b) == 0 || (b[0] != TypeArray && b[0] != TypeSet && b[0] != TypePush) {
		return 0, 0, false
	}
	i := bytes.IndexByte(b, '\n')
	if i < 2 {
		return 0, 0, false
	}
	v, ok := ParseInt(b[1 : i-1])
	if !ok {
		return 0, 0, false
	}
	if v < 0 {
		return 0, i + 1, true
	}
	return int(v), i + 1, true
}

// BulkBody returns the payload of b, one whole bulk string reply as
// framed by ReadReply or ReplyLen, or nil when b is another reply (a nil
// bulk string included).
func BulkBody(b []byte) []byte {
	if len(b) == 0 || b[0] != TypeBulk {
		return nil
	}
	i := bytes.IndexByte(b, '\n')
	if i < 0 || len(b) < i+3 {
		return nil
	}
	return b[i+1 : len(b)-2]
}
