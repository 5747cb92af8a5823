package resp

import (
	"bufio"
	"io"
)

// ReadReply reads one complete reply of any RESP2 or RESP3 type from r and
// appends its raw bytes, exactly as received, to dst. Aggregates are framed
// element by element without decoding scalars; bulk payloads are copied, not
// parsed. On error the returned slice holds what was read so far and the
// stream is no longer in sync.
func ReadReply(r *bufio.Reader, dst []byte, lim Limits) ([]byte, error) {
	lim = lim.WithDefaults()
	start := len(dst)
	// pending counts the elements still to read at each open nesting level;
	// a flat counter suffices because an aggregate's elements are read
	// before the elements that follow it.
	var pending int64 = 1
	depth := 0
	var levels []int64 // remaining element counts per open aggregate
	for pending > 0 {
		line, err := readLine(r, lim.MaxInline)
		if err != nil {
			return dst, err
		}
		if len(line) == 0 {
			return dst, protoErr("empty reply line", nil)
		}
		dst = append(dst, line...)
		dst = append(dst, '\r', '\n')
		pending--
		typ := line[0]
		switch typ {
		case TypeSimple, TypeError, TypeInteger, TypeNull, TypeBool, TypeDouble, TypeBigNumber:
			// complete on one line
		case TypeBulk, TypeVerbatim, TypeBlobError:
			n, ok := ParseInt(line[1:])
			if !ok || n < -1 {
				return dst, protoErr("invalid bulk length", line)
			}
			if n > lim.MaxBulk {
				return dst, &ProtocolError{Msg: "bulk length over limit", Snippet: string(line)}
			}
			if n >= 0 {
				if int64(len(dst)-start)+n+2 > lim.MaxReply {
					return dst, &ProtocolError{Msg: "reply over limit", Snippet: string(line)}
				}
				dst, err = readN(r, dst, int(n)+2)
				if err != nil {
					return dst, err
				}
				if dst[len(dst)-2] != '\r' || dst[len(dst)-1] != '\n' {
					return dst, protoErr("bulk not terminated by CRLF", nil)
				}
			}
		case TypeArray, TypeMap, TypeSet, TypeAttribute, TypePush:
			n, ok := ParseInt(line[1:])
			if !ok || n < -1 {
				return dst, protoErr("invalid aggregate length", line)
			}
			if n > lim.MaxArray {
				return dst, &ProtocolError{Msg: "aggregate length over limit", Snippet: string(line)}
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
			if depth > lim.MaxDepth {
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
	return dst, nil
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
