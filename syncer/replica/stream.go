package replica

import (
	"bytes"
	"errors"

	"github.com/replicaof/replicaof/resp"
)

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

// streamParser is the offset accountant of the command stream: it frames
// the stream with a resp.CommandFramer and counts every byte. It is pure:
// parse takes any split of the stream and gives the same commands and
// offsets. A command that lies wholly inside one input is returned without
// copying; one that straddles inputs is copied into buf, no more of an
// input than the command holds, and the framer bounds it by
// resp.Limits.MaxReply.
type streamParser struct {
	fr     *resp.CommandFramer
	offset int64 // after the last complete command

	// buf[part:] holds the bytes of a command begun in an earlier input
	// (part < 0: none); buf[:part] those of the previous parse's last
	// straddling command, whose Args the caller may still hold.
	buf  []byte
	part int

	cmds []Command
	argv [][]byte
}

func newStreamParser(offset int64, lim resp.Limits) *streamParser {
	return &streamParser{fr: resp.NewCommandFramer(lim), offset: offset, part: -1}
}

// partial reports whether a command is incomplete.
func (s *streamParser) partial() bool { return s.part >= 0 }

// read is the offset of every stream byte consumed, those of an incomplete
// command included.
func (s *streamParser) read() int64 {
	if s.part < 0 {
		return s.offset
	}
	return s.offset + int64(len(s.buf)-s.part)
}

// parse consumes all of p. The returned batch (and its Args) is valid until
// the next parse; p itself is not referenced after parse returns. After an
// error the parser must not be used again.
func (s *streamParser) parse(p []byte) (batch, error) {
	s.cmds = s.cmds[:0]
	s.argv = s.argv[:0]
	getack := false
	i := 0
	if s.part >= 0 {
		// Finish the command begun before: move it to the front of buf,
		// then add p to it a token at a time (the rest of a payload, or up
		// to a line end), so no byte of p past the command is copied.
		s.buf = s.buf[:copy(s.buf, s.buf[s.part:])]
		s.part = 0
		for i < len(p) {
			k := len(p) - i
			if w := s.fr.Want(len(s.buf)); w > 0 {
				k = int(min(int64(k), w))
			} else if j := bytes.IndexByte(p[i:], '\n'); j >= 0 {
				k = j + 1
			}
			s.buf = append(s.buf, p[i:i+k]...)
			i += k
			n, err := s.fr.Next(s.buf)
			if err == resp.ErrIncomplete {
				continue
			}
			if err != nil {
				return batch{}, s.err(err)
			}
			getack = s.emit(s.buf[:n]) || getack
			s.part = -1
			break
		}
	} else {
		if cap(s.buf) > 1<<20 {
			s.buf = nil // do not keep a huge command's buffer around
		}
		s.buf = s.buf[:0]
	}
	for i < len(p) && s.part < 0 {
		n, err := s.fr.Next(p[i:])
		if err == resp.ErrIncomplete {
			// Keep the command's bytes after those of buf's command, whose
			// Args may be in this batch.
			s.part = len(s.buf)
			s.buf = append(s.buf, p[i:]...)
			break
		}
		if err != nil {
			return batch{}, s.err(err)
		}
		getack = s.emit(p[i:i+n]) || getack
		i += n
	}
	return batch{Cmds: s.cmds, Offset: s.offset, GetAck: getack}, nil
}

// emit takes the command cmd the framer just framed: PING and REPLCONF
// only advance the offset, anything else joins the batch. It reports a
// REPLCONF GETACK.
func (s *streamParser) emit(cmd []byte) (getack bool) {
	s.offset += int64(len(cmd))
	a := len(s.argv)
	s.argv = s.fr.Args(cmd, s.argv)
	args := s.argv[a:len(s.argv):len(s.argv)]
	if len(args) == 0 {
		return false // "*0", "*-1": nothing to apply, bytes still count
	}
	switch name := args[0]; {
	case len(name) == 4 && bytes.EqualFold(name, []byte("ping")):
	case len(name) == 8 && bytes.EqualFold(name, []byte("replconf")):
		getack = len(args) > 1 && bytes.EqualFold(args[1], []byte("getack"))
	default:
		s.cmds = append(s.cmds, Command{Args: args, Offset: s.offset})
	}
	return getack
}

// err turns the framer's error into a ParseError at the stream offset
// where framing stopped.
func (s *streamParser) err(err error) error {
	var pe *resp.ProtocolError
	if !errors.As(err, &pe) {
		return parseErr("stream", s.offset, err.Error(), nil)
	}
	return parseErr("stream", s.offset+int64(s.fr.Framed()), pe.Msg, []byte(pe.Snippet))
}
