package replica

import (
	"bytes"

	"github.com/replicaof/replicaof/resp"
)

// streamState is where the stream parser is inside a command.
type streamState uint8

const (
	stCommand  streamState = iota // expecting "*<n>\r\n"
	stBulkLen                     // expecting "$<len>\r\n"
	stBulkData                    // inside "<bytes>\r\n"
)

func (s streamState) String() string {
	switch s {
	case stCommand:
		return "command"
	case stBulkLen:
		return "bulk-length"
	case stBulkData:
		return "bulk-data"
	}
	return "invalid"
}

// batch is what one parse call yields.
type batch struct {
	// Cmds are the complete commands to apply, PING and REPLCONF left out.
	// Their Args are views valid until the next parse.
	Cmds []Command
	// Offset is the stream offset after the last complete command parsed,
	// passed on or not.
	Offset int64
	// GetAck is set when a REPLCONF GETACK was among the commands.
	GetAck bool
}

// argRef locates one argument: in the caller's input (zero-copy) or, for a
// command straddling inputs, in the parser's own buf.
type argRef struct {
	inBuf      bool
	start, end int
}

// streamParser is the offset accountant of the command stream: a resumable
// parser of RESP arrays of bulk strings that counts every byte. It is pure:
// parse takes any split of the stream and gives the same commands and
// offsets. A command that lies wholly inside one input is returned without
// copying; one that straddles inputs is copied into buf, which is bounded by
// twice the largest command (resp.Limits.MaxReply).
type streamParser struct {
	lim    resp.Limits
	state  streamState
	offset int64 // after the last complete command
	read   int64 // every stream byte consumed, a partial command included

	cmdSize int64 // bytes of the current command so far
	nargs   int64
	refs    []argRef
	want    int64 // bulk bytes plus CRLF still expected
	started bool  // the current bulk has a ref in buf
	line    lineBuf
	buf     []byte

	cmds []Command
	argv [][]byte
}

func newStreamParser(offset int64, lim resp.Limits) *streamParser {
	lim = lim.WithDefaults()
	return &streamParser{lim: lim, offset: offset, read: offset, line: lineBuf{max: lim.MaxInline}}
}

// partial reports whether a command is incomplete.
func (s *streamParser) partial() bool { return s.state != stCommand || s.line.pending() }

// parse consumes all of p. The returned batch (and its Args) is valid until
// the next parse; p itself is not referenced after parse returns. After an
// error the parser must not be used again.
func (s *streamParser) parse(p []byte) (batch, error) {
	s.compact()
	s.cmds = s.cmds[:0]
	s.argv = s.argv[:0]
	getack := false
	i := 0
	for i < len(p) {
		switch s.state {
		case stCommand, stBulkLen:
			if !s.line.pending() {
				// Fast path: a whole well-formed header in p.
				if v, n := quickHeader(p[i:], s.state); n > 0 {
					i += n
					s.read += int64(n)
					s.cmdSize += int64(n)
					if err := s.header(v, p[i-n:]); err != nil {
						return batch{}, err
					}
					continue
				}
			}
			line, n, ok, err := s.line.take(p[i:])
			if err != nil {
				return batch{}, s.err(err.Error(), p[i:])
			}
			at := p[i:]
			i += n
			s.read += int64(n)
			s.cmdSize += int64(n)
			if !ok {
				continue
			}
			if len(line) < 2 || line[len(line)-2] != '\r' {
				return batch{}, s.err("line not terminated by CRLF", line)
			}
			line = line[:len(line)-2]
			want := byte(resp.TypeArray)
			if s.state == stBulkLen {
				want = resp.TypeBulk
			}
			if len(line) == 0 || line[0] != want {
				return batch{}, s.err("expected '"+string(want)+"'", at)
			}
			v, ok := resp.ParseInt(line[1:])
			if !ok {
				return batch{}, s.err("invalid length", at)
			}
			if err := s.header(v, at); err != nil {
				return batch{}, err
			}
		case stBulkData:
			rest := p[i:]
			if !s.started && int64(len(rest)) >= s.want {
				end := i + int(s.want) - 2
				if p[end] != '\r' || p[end+1] != '\n' {
					return batch{}, s.err("bulk not terminated by CRLF", p[end:])
				}
				s.refs = append(s.refs, argRef{start: i, end: end})
				i += int(s.want)
				s.read += s.want
				s.cmdSize += s.want
				if s.argDone() {
					getack = s.emit(p) || getack
				}
				continue
			}
			if !s.started {
				// This bulk straddles inputs: it grows at the tail of buf, so
				// the arguments before it move there first.
				s.detach(p)
				s.refs = append(s.refs, argRef{inBuf: true, start: len(s.buf)})
				s.started = true
			}
			take := min(int64(len(rest)), s.want)
			s.buf = append(s.buf, rest[:take]...)
			i += int(take)
			s.want -= take
			s.read += take
			s.cmdSize += take
			if s.want > 0 {
				continue
			}
			if !bytes.HasSuffix(s.buf, []byte("\r\n")) {
				return batch{}, s.err("bulk not terminated by CRLF", s.buf[max(0, len(s.buf)-2):])
			}
			s.buf = s.buf[:len(s.buf)-2]
			s.refs[len(s.refs)-1].end = len(s.buf)
			s.started = false
			if s.argDone() {
				getack = s.emit(p) || getack
			}
		}
	}
	if s.state != stCommand {
		s.detach(p)
	}
	return batch{Cmds: s.cmds, Offset: s.offset, GetAck: getack}, nil
}

// header acts on the length of a "*<n>" or "$<len>" line.
func (s *streamParser) header(v int64, at []byte) error {
	if s.state == stCommand {
		if v > s.lim.MaxArray {
			return s.err("invalid multibulk length", at)
		}
		if v <= 0 { // "*0", "*-1": nothing to apply, bytes still count
			s.endCommand()
			return nil
		}
		s.nargs = v
		s.refs = s.refs[:0]
		s.state = stBulkLen
		return nil
	}
	if v < 0 || v > s.lim.MaxBulk {
		return s.err("invalid bulk length", at)
	}
	if s.cmdSize+v+2 > s.lim.MaxReply {
		return s.err("command larger than the limit", at)
	}
	s.want = v + 2
	s.started = false
	s.state = stBulkData
	return nil
}

// quickHeader parses a "*<digits>\r\n" or "$<digits>\r\n" header wholly
// inside p, with 1 to 18 digits and no sign. It returns n == 0 for
// anything else, which the general path then handles (or rejects).
func quickHeader(p []byte, st streamState) (v int64, n int) {
	want := byte(resp.TypeArray)
	if st == stBulkLen {
		want = resp.TypeBulk
	}
	if len(p) < 4 || p[0] != want {
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

// argDone records the end of one bulk; it reports whether the command is
// complete.
func (s *streamParser) argDone() bool {
	if int64(len(s.refs)) < s.nargs {
		s.state = stBulkLen
		return false
	}
	return true
}

// emit finishes the current command: PING and REPLCONF only advance the
// offset, anything else joins the batch. It reports a REPLCONF GETACK.
func (s *streamParser) emit(p []byte) (getack bool) {
	a := len(s.argv)
	for _, r := range s.refs {
		if r.inBuf {
			s.argv = append(s.argv, s.buf[r.start:r.end:r.end])
		} else {
			s.argv = append(s.argv, p[r.start:r.end:r.end])
		}
	}
	args := s.argv[a:len(s.argv):len(s.argv)]
	s.endCommand()
	switch name := args[0]; {
	case len(name) == 4 && bytes.EqualFold(name, []byte("ping")):
	case len(name) == 8 && bytes.EqualFold(name, []byte("replconf")):
		getack = len(args) > 1 && bytes.EqualFold(args[1], []byte("getack"))
	default:
		s.cmds = append(s.cmds, Command{Args: args, Offset: s.offset})
	}
	return getack
}

func (s *streamParser) endCommand() {
	s.offset = s.read
	s.cmdSize = 0
	s.nargs = 0
	s.refs = s.refs[:0]
	s.state = stCommand
}

// detach copies the arguments of the partial command that still point into
// the caller's input into buf.
func (s *streamParser) detach(p []byte) {
	for k, r := range s.refs {
		if r.inBuf {
			continue
		}
		start := len(s.buf)
		s.buf = append(s.buf, p[r.start:r.end]...)
		s.refs[k] = argRef{inBuf: true, start: start, end: len(s.buf)}
	}
}

// compact drops from buf what the previous batch used, keeping the partial
// command's bytes.
func (s *streamParser) compact() {
	if len(s.refs) == 0 && !s.started {
		if cap(s.buf) > 1<<20 {
			s.buf = nil // do not keep a huge command's buffer around
		}
		s.buf = s.buf[:0]
		return
	}
	base := len(s.buf)
	for _, r := range s.refs {
		base = min(base, r.start)
	}
	if base == 0 {
		return
	}
	n := copy(s.buf, s.buf[base:])
	s.buf = s.buf[:n]
	for k := range s.refs {
		s.refs[k].start -= base
		s.refs[k].end -= base
	}
}

func (s *streamParser) err(msg string, snippet []byte) error {
	return parseErr("stream", s.read, msg+" (state "+s.state.String()+")", snippet)
}

// lineBuf finds line ends across inputs. A line that fits in one input is
// returned as a view of it; one that straddles is copied, up to max+2 bytes.
type lineBuf struct {
	b   []byte
	max int
}

func (l *lineBuf) pending() bool { return len(l.b) > 0 }

// take scans p for '\n'. It returns the n bytes consumed and, when ok, the
// whole line including its '\n' (valid until the next take or until p
// changes).
func (l *lineBuf) take(p []byte) (line []byte, n int, ok bool, err error) {
	idx := bytes.IndexByte(p, '\n')
	if idx < 0 {
		if len(l.b)+len(p) > l.max+2 {
			return nil, 0, false, errLineTooLong
		}
		l.b = append(l.b, p...)
		return nil, len(p), false, nil
	}
	if len(l.b)+idx+1 > l.max+2 {
		return nil, 0, false, errLineTooLong
	}
	if len(l.b) == 0 {
		return p[:idx+1], idx + 1, true, nil
	}
	l.b = append(l.b, p[:idx+1]...)
	line = l.b
	l.b = l.b[:0]
	return line, idx + 1, true, nil
}

type lineError string

func (e lineError) Error() string { return string(e) }

const errLineTooLong = lineError("line too long")
