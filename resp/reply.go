package resp

import (
	"bufio"
	"bytes"
	"io"
)

// LimitError reports a well-formed reply that is over one of the Limits
// (too deep, too long a line, a bulk or aggregate too large, the whole
// reply too large). ReadReply returns it only after reading the rest of
// the reply and dropping it, so the stream is still in sync: a proxy fails
// the one call that asked for the reply, not the connection it shares.
type LimitError struct {
	Msg string
}

func (e *LimitError) Error() string { return "reply too large for the proxy: " + e.Msg }

// Hard bounds while a reply over a limit is being skipped: a real server
// never comes near them, so input past them is garbage (a ProtocolError).
const (
	skipMaxDepth = 1 << 20 // 8 MB of nesting counters
	skipMaxCount = 1 << 40 // elements of one aggregate
	skipMaxBulk  = 1 << 40 // bytes of one bulk or line
)

// ReadReply reads one complete reply of any RESP2 or RESP3 type from r and
// appends its raw bytes, exactly as received, to dst. Aggregates are framed
// element by element without decoding scalars; bulk payloads are copied, not
// parsed, and nesting costs 8 bytes per level (no recursion), so replies as
// deep as a Lua script can make them (thousands of levels) are framed.
//
// A reply over a limit is read to its end without being stored and
// reported as a *LimitError, with dst[:len(dst)] as given: the stream
// stays in sync. Any other error (a *ProtocolError for malformed input, an
// I/O error) leaves the stream out of sync; the returned slice then holds
// what was read so far.
func ReadReply(r *bufio.Reader, dst []byte, lim Limits) ([]byte, error) {
	lim = lim.WithDefaults()
	start := len(dst)
	var over *LimitError // set once a limit is passed: skip from then on
	// pending counts the elements still to read at each open nesting level;
	// a flat counter suffices because an aggregate's elements are read
	// before the elements that follow it.
	var pending int64 = 1
	depth := 0
	var levels []int64 // remaining element counts per open aggregate
	for pending > 0 {
		line, long, err := replyLine(r, lim.MaxInline)
		if err != nil {
			return dst, err
		}
		if len(line) == 0 {
			return dst, protoErr("empty reply line", nil)
		}
		typ := line[0]
		if long {
			switch typ {
			case TypeSimple, TypeError, TypeDouble, TypeBigNumber:
			default:
				return dst, protoErr("line too long", line)
			}
			if over == nil {
				over = &LimitError{Msg: "a line longer than " + itoa(int64(lim.MaxInline)) + " bytes"}
			}
		}
		if over == nil {
			dst = append(dst, line...)
			dst = append(dst, '\r', '\n')
		}
		pending--
		switch typ {
		case TypeSimple, TypeError, TypeInteger, TypeNull, TypeBool, TypeDouble, TypeBigNumber:
			// complete on one line
		case TypeBulk, TypeVerbatim, TypeBlobError:
			n, ok := ParseInt(line[1:])
			if !ok || n < -1 || n > skipMaxBulk {
				return dst, protoErr("invalid bulk length", line)
			}
			if over == nil && n > lim.MaxBulk {
				over = &LimitError{Msg: "a string of " + itoa(n) + " bytes, over " + itoa(lim.MaxBulk)}
			}
			if over == nil && n >= 0 && int64(len(dst)-start)+n+2 > lim.MaxReply {
				over = &LimitError{Msg: "over " + itoa(lim.MaxReply) + " bytes"}
			}
			if n < 0 {
				break
			}
			if over != nil {
				if err := skipN(r, n); err != nil {
					return dst[:start], err
				}
				break
			}
			dst, err = readN(r, dst, int(n)+2)
			if err != nil {
				return dst, err
			}
			if dst[len(dst)-2] != '\r' || dst[len(dst)-1] != '\n' {
				return dst, protoErr("bulk not terminated by CRLF", nil)
			}
		case TypeArray, TypeMap, TypeSet, TypeAttribute, TypePush:
			n, ok := ParseInt(line[1:])
			if !ok || n < -1 || n > skipMaxCount {
				return dst, protoErr("invalid aggregate length", line)
			}
			if over == nil && n > lim.MaxArray {
				over = &LimitError{Msg: "an aggregate of " + itoa(n) + " elements, over " + itoa(lim.MaxArray)}
			}
			if n <= 0 {
				break
			}
			if typ == TypeMap || typ == TypeAttribute {
				n *= 2
			}
			if typ == TypeAttribute {
				n++ // the attribute is followed by the reply it annotates
			}
			depth++
			if over == nil && depth > lim.MaxDepth {
				over = &LimitError{Msg: "nested more than " + itoa(int64(lim.MaxDepth)) + " levels deep"}
			}
			if depth > skipMaxDepth {
				return dst, protoErr("replies nested too deeply", line)
			}
			levels = append(levels, n)
			pending += n
			continue
		default:
			return dst, protoErr("unknown reply type", line)
		}
		// One element finished: close every aggregate it completes.
		for len(levels) > 0 {
			levels[len(levels)-1]--
			if levels[len(levels)-1] > 0 {
				break
			}
			levels = levels[:len(levels)-1]
			depth--
		}
	}
	if over != nil {
		return dst[:start], over
	}
	return dst, nil
}

// ReplyLen frames the reply b starts with, of any type and nesting, with
// the checks ReadReply makes. It returns the reply's length once b holds
// all of it, ErrIncomplete while it does not (an unterminated line is
// incomplete however long: the caller bounds what it buffers), or a
// *ProtocolError. A reply over lim is framed to its end all the same: its
// length comes with a *LimitError.
func ReplyLen(b []byte, lim Limits) (int, error) {
	var f replyFrame
	f.lim.set(&lim)
	// Fast path: a bulk string within the limits, the usual element.
	if v, n := quickLen(b, TypeBulk); n > 0 && n <= f.lim.MaxInline+2 && v <= f.lim.MaxBulk &&
		int64(n)+v+2 <= min(f.lim.MaxReply, int64(len(b))) {
		if end := n + int(v) + 2; b[end-2] == '\r' && b[end-1] == '\n' {
			return end, nil
		}
	}
	f.pending = 1
	var levels []int64
	p := 0
	for f.pending > 0 {
		i := bytes.IndexByte(b[p:], '\n')
		if i < 0 {
			return 0, ErrIncomplete
		}
		line := b[p : p+i+1]
		p += i + 1
		// As replyLine: a line over MaxInline is long, whatever its end.
		long := len(line) > f.lim.MaxInline+2
		switch {
		case long:
			line = line[:min(len(line), 32)]
		case i == 0 || line[i-1] != '\r':
			return 0, protoErr("line not terminated by CRLF", line)
		default:
			line = line[:i-1]
		}
		var body int64
		var err error
		levels, body, err = f.line(levels, line, long)
		if err != nil {
			return 0, err
		}
		if body < 0 {
			continue
		}
		if int64(len(b)-p) < body {
			return 0, ErrIncomplete
		}
		p += int(body)
		if b[p-2] != '\r' || b[p-1] != '\n' {
			return 0, protoErr("bulk not terminated by CRLF", nil)
		}
	}
	if f.over != nil {
		return p, f.over
	}
	return p, nil
}

// replyFrame is ReplyLen's state, line by line: ReadReply's checks in
// the same order (FuzzReplyLen holds the two to the same answers; the
// reader keeps its own loop, which a shared one made a quarter slower).
// Nesting costs 8 bytes per level, no recursion.
type replyFrame struct {
	lim Limits // with its defaults set
	// pending counts the elements still to frame at every open level; a
	// flat counter suffices because an aggregate's elements come before
	// the elements that follow it.
	pending int64
	depth   int
	size    int64       // bytes of the reply so far, while under the limits
	over    *LimitError // set once a limit is passed: skip from then on
}

// line takes the reply's next line, without its CRLF (long: it was over
// MaxInline, and is only its start). levels holds the remaining element
// counts of the open aggregates (the caller's, so they can live on its
// stack); line returns it updated, with the bytes of the payload that
// follows the line, CRLF included, or -1 for none.
func (f *replyFrame) line(levels []int64, line []byte, long bool) ([]int64, int64, error) {
	if len(line) == 0 {
		return levels, -1, protoErr("empty reply line", nil)
	}
	typ := line[0]
	if long {
		switch typ {
		case TypeSimple, TypeError, TypeDouble, TypeBigNumber:
		default:
			return levels, -1, protoErr("line too long", line)
		}
		if f.over == nil {
			f.over = &LimitError{Msg: "a line longer than " + itoa(int64(f.lim.MaxInline)) + " bytes"}
		}
	}
	if f.over == nil {
		f.size += int64(len(line)) + 2
	}
	f.pending--
	body := int64(-1)
	switch typ {
	case TypeSimple, TypeError, TypeInteger, TypeNull, TypeBool, TypeDouble, TypeBigNumber:
		// complete on one line
	case TypeBulk, TypeVerbatim, TypeBlobError:
		n, ok := ParseInt(line[1:])
		if !ok || n < -1 || n > skipMaxBulk {
			return levels, -1, protoErr("invalid bulk length", line)
		}
		if f.over == nil && n > f.lim.MaxBulk {
			f.over = &LimitError{Msg: "a string of " + itoa(n) + " bytes, over " + itoa(f.lim.MaxBulk)}
		}
		if f.over == nil && n >= 0 && f.size+n+2 > f.lim.MaxReply {
			f.over = &LimitError{Msg: "over " + itoa(f.lim.MaxReply) + " bytes"}
		}
		if n >= 0 {
			body = n + 2
			f.size += body
		}
	case TypeArray, TypeMap, TypeSet, TypeAttribute, TypePush:
		n, ok := ParseInt(line[1:])
		if !ok || n < -1 || n > skipMaxCount {
			return levels, -1, protoErr("invalid aggregate length", line)
		}
		if f.over == nil && n > f.lim.MaxArray {
			f.over = &LimitError{Msg: "an aggregate of " + itoa(n) + " elements, over " + itoa(f.lim.MaxArray)}
		}
		if n <= 0 {
			break
		}
		if typ == TypeMap || typ == TypeAttribute {
			n *= 2
		}
		if typ == TypeAttribute {
			n++ // the attribute is followed by the reply it annotates
		}
		f.depth++
		if f.over == nil && f.depth > f.lim.MaxDepth {
			f.over = &LimitError{Msg: "nested more than " + itoa(int64(f.lim.MaxDepth)) + " levels deep"}
		}
		if f.depth > skipMaxDepth {
			return levels, -1, protoErr("replies nested too deeply", line)
		}
		levels = append(levels, n)
		f.pending += n
		return levels, -1, nil
	default:
		return levels, -1, protoErr("unknown reply type", line)
	}
	// One element finished (its payload is the caller's to take): close
	// every aggregate it completes.
	for len(levels) > 0 {
		levels[len(levels)-1]--
		if levels[len(levels)-1] > 0 {
			break
		}
		levels = levels[:len(levels)-1]
		f.depth--
	}
	return levels, body, nil
}

// replyLine is readLine for replies: a line longer than max is read to its
// end (up to skipMaxBulk bytes) and reported long, with only its start
// returned, so an over-long simple string or error can be skipped.
func replyLine(r *bufio.Reader, max int) (line []byte, long bool, err error) {
	line, err = r.ReadSlice('\n')
	if err == bufio.ErrBufferFull || (err == nil && len(line) > max+2) {
		// Longer than the buffer or than max: keep up to max+2 bytes of it.
		acc := append([]byte(nil), line...)
		total := int64(len(line))
		for err == bufio.ErrBufferFull && total <= skipMaxBulk {
			line, err = r.ReadSlice('\n')
			total += int64(len(line))
			if total <= int64(max)+2 {
				acc = append(acc, line...)
			}
		}
		if err == bufio.ErrBufferFull {
			return nil, false, protoErr("line too long", acc)
		}
		if err == nil && total > int64(max)+2 {
			return acc[:min(len(acc), 32)], true, nil
		}
		line = acc
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, false, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, false, protoErr("line not terminated by CRLF", line)
	}
	return line[:len(line)-2], false, nil
}

// skipN drops a bulk payload of n bytes and its CRLF.
func skipN(r *bufio.Reader, n int64) error {
	for n > 0 {
		step := min(n, 1<<30)
		k, err := r.Discard(int(step))
		n -= int64(k)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	crlf, err := r.Peek(2)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if !bytes.Equal(crlf, []byte("\r\n")) {
		return protoErr("bulk not terminated by CRLF", nil)
	}
	_, _ = r.Discard(2)
	return nil
}

// readN appends exactly n bytes from r to dst, growing dst in steps so a
// lying length cannot make it allocate more than was actually received plus
// one step.
func readN(r *bufio.Reader, dst []byte, n int) ([]byte, error) {
	const step = 1 << 20
	for n > 0 {
		chunk := n
		if chunk > step {
			chunk = step
		}
		l := len(dst)
		if cap(dst)-l < chunk {
			grown := make([]byte, l, l+chunk+l/4)
			copy(grown, dst)
			dst = grown
		}
		dst = dst[:l+chunk]
		if _, err := io.ReadFull(r, dst[l:]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return dst[:l], err
		}
		n -= chunk
	}
	return dst, nil
}

func itoa(n int64) string { return string(appendInt(nil, n)) }
