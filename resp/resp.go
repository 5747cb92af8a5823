package resp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// RESP type bytes, each commented with its wire form.
const (
	TypeSimple    = '+' // +<string>\r\n
	TypeError     = '-' // -<string>\r\n
	TypeInteger   = ':' // :<number>\r\n
	TypeBulk      = '$' // $<length>\r\n<bytes>\r\n  ($-1\r\n is nil)
	TypeArray     = '*' // *<count>\r\n<elements>   (*-1\r\n is nil)
	TypeNull      = '_' // _\r\n                    (RESP3)
	TypeBool      = '#' // #t\r\n                   (RESP3)
	TypeDouble    = ',' // ,<float>\r\n             (RESP3)
	TypeBigNumber = '(' // (<digits>\r\n            (RESP3)
	TypeVerbatim  = '=' // =<length>\r\n<fmt>:<bytes>\r\n (RESP3)
	TypeBlobError = '!' // !<length>\r\n<bytes>\r\n (RESP3)
	TypeMap       = '%' // %<pairs>\r\n<key><value>... (RESP3)
	TypeSet       = '~' // ~<count>\r\n<elements>   (RESP3)
	TypeAttribute = '|' // |<pairs>\r\n... then the reply it annotates (RESP3)
	TypePush      = '>' // ><count>\r\n<elements>   (RESP3)
)

// Limits bound what a reader accepts before it allocates. The zero value of
// a field means its DefaultLimits value.
type Limits struct {
	// MaxBulk is the largest bulk string, in bytes (Redis'
	// proto-max-bulk-len defaults to 512 MB).
	MaxBulk int64
	// MaxArray is the largest element count of one array or map.
	MaxArray int64
	// MaxInline is the longest line: a simple string, an error, a number or
	// an inline command.
	MaxInline int
	// MaxDepth is the deepest nesting of aggregates in a reply. Redis
	// relays Lua tables nested about 8,000 levels deep (Lua's C stack
	// ends there), so the default, 10,000, lets every reply Redis makes
	// through; ReadReply frames them without recursion.
	MaxDepth int
	// MaxReply is the largest whole reply ReadReply copies, in bytes.
	MaxReply int64
}

// DefaultLimits are the limits Redis itself applies to clients.
var DefaultLimits = Limits{
	MaxBulk:   512 << 20,
	MaxArray:  1 << 20,
	MaxInline: 64 << 10,
	MaxDepth:  10000,
	MaxReply:  1 << 30,
}

// WithDefaults returns l with every zero field set from DefaultLimits.
func (l Limits) WithDefaults() Limits {
	l.setDefaults()
	return l
}

// setDefaults is WithDefaults in place.
func (l *Limits) setDefaults() {
	if l.MaxBulk <= 0 {
		l.MaxBulk = DefaultLimits.MaxBulk
	}
	if l.MaxArray <= 0 {
		l.MaxArray = DefaultLimits.MaxArray
	}
	if l.MaxInline <= 0 {
		l.MaxInline = DefaultLimits.MaxInline
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultLimits.MaxDepth
	}
	if l.MaxReply <= 0 {
		l.MaxReply = DefaultLimits.MaxReply
	}
}

// set makes l src with its defaults, field by field: the framers' own
// copy. (A struct copy of src, whose fields were just stored, costs more
// than framing a short command.)
func (l *Limits) set(src *Limits) {
	l.MaxBulk, l.MaxArray, l.MaxInline, l.MaxDepth, l.MaxReply = src.MaxBulk, src.MaxArray, src.MaxInline, src.MaxDepth, src.MaxReply
	l.setDefaults()
}

// ProtocolError reports malformed or over-limit input. The connection it
// came from cannot be trusted to be in sync any more and should be closed
// after answering it.
type ProtocolError struct {
	Msg     string
	Snippet string // up to 32 bytes of the offending input, quoted by Error
}

func (e *ProtocolError) Error() string {
	if e.Snippet == "" {
		return "resp: protocol error: " + e.Msg
	}
	return fmt.Sprintf("resp: protocol error: %s near %q", e.Msg, e.Snippet)
}

func protoErr(msg string, snippet []byte) *ProtocolError {
	if len(snippet) > 32 {
		snippet = snippet[:32]
	}
	return &ProtocolError{Msg: msg, Snippet: string(snippet)}
}

// ErrTooLarge is wrapped by the ProtocolError for any length over a limit.
var ErrTooLarge = errors.New("resp: length over limit")

// readRawLine returns the next line with its '\n'. The slice is a view into
// r's buffer, valid until the next read, unless the line is longer than the
// buffer, in which case it is a copy. Lines longer than max+2 bytes are a
// protocol error.
func readRawLine(r *bufio.Reader, max int) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		long := append([]byte(nil), line...)
		for err == bufio.ErrBufferFull && len(long) <= max+2 {
			line, err = r.ReadSlice('\n')
			long = append(long, line...)
		}
		line = long
	}
	if err != nil {
		if err == bufio.ErrBufferFull {
			return nil, protoErr("line too long", line)
		}
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if len(line) > max+2 {
		return nil, protoErr("line too long", line)
	}
	return line, nil
}

// readLine returns the next CRLF-terminated line without its CRLF, with
// readRawLine's lifetime rules.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	line, err := readRawLine(r, max)
	if err != nil {
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, protoErr("line not terminated by CRLF", line)
	}
	return line[:len(line)-2], nil
}

// ParseInt parses a RESP length or integer: an optional '-' and 1 to 19
// decimal digits, nothing else (no '+', no spaces, no leading "0x").
func ParseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	neg := false
	if b[0] == '-' {
		neg = true
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	if len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if neg {
		if n > 1<<63 {
			return 0, false
		}
		return -int64(n), true
	}
	if n > 1<<63-1 {
		return 0, false
	}
	return int64(n), true
}

// AppendInt appends the decimal form of n.
func appendInt(dst []byte, n int64) []byte { return strconv.AppendInt(dst, n, 10) }
