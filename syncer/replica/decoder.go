package replica

import (
	"bytes"
	"strconv"

	"github.com/replicaof/replicaof/resp"
)

// decState is where the decoder is in what the source sends after PSYNC.
type decState uint8

const (
	dsReply  decState = iota // keepalive newlines, then +FULLRESYNC / +CONTINUE / -ERR
	dsHeader                 // keepalive newlines, then $<len> or $EOF:<mark>
	dsBulk                   // inside a $<len> payload
	dsMark                   // inside a $EOF: payload
	dsRDBEnd                 // payload over: report it
	dsStream                 // the command stream
	dsFailed                 // a sticky error
)

func (s decState) String() string {
	switch s {
	case dsReply:
		return "psync-reply"
	case dsHeader:
		return "rdb-header"
	case dsBulk:
		return "rdb-bulk"
	case dsMark:
		return "rdb-eof-mark"
	case dsRDBEnd:
		return "rdb-end"
	case dsStream:
		return "stream"
	case dsFailed:
		return "failed"
	}
	return "invalid"
}

// eventKind says what decode found.
type eventKind uint8

const (
	evNone       eventKind = iota // all input consumed, need more
	evFullResync                  // +FULLRESYNC: decoder.replID, decoder.start
	evContinue                    // +CONTINUE: decoder.replID (maybe new), decoder.start
	evRDBStart                    // payload header: decoder.size (-1 for $EOF:)
	evRDBData                     // event.data is payload
	evRDBEnd                      // the payload is complete; the stream follows
	evCommands                    // event.batch
)

func (k eventKind) String() string {
	return [...]string{"none", "fullresync", "continue", "rdb-start", "rdb-data", "rdb-end", "commands"}[k]
}

type event struct {
	kind  eventKind
	data  []byte // evRDBData, valid until the next decode
	batch batch  // evCommands, valid until the next decode
}

// decoder is the sans-I/O core of a link: it consumes every byte the source
// sends after our PSYNC, in any split, and yields events in order. It owns
// no socket and no goroutine.
type decoder struct {
	state decState
	lim   resp.Limits
	line  lineBuf
	pos   int64 // bytes consumed since PSYNC, for error positions

	replID    string
	start     int64 // offset the stream starts at
	size      int64 // payload size, -1 for $EOF:
	remaining int64 // of a $<len> payload
	mark      markScanner
	stream    *streamParser
	err       error
}

// newDecoder returns a decoder for the reply to PSYNC; resume is the
// position asked for (used by a bare +CONTINUE).
func newDecoder(resume Position, lim resp.Limits) *decoder {
	lim = lim.WithDefaults()
	return &decoder{lim: lim, line: lineBuf{max: lim.MaxInline}, replID: resume.ReplID, start: resume.Offset}
}

// decode consumes n bytes of p and returns at most one event. It returns
// evNone only after consuming all of p; otherwise call it again with
// p[n:] (possibly empty: evRDBEnd needs no input). Views in the event stay
// valid until the next call; p is not referenced afterwards.
func (d *decoder) decode(p []byte) (n int, ev event, err error) {
	if d.err != nil {
		return 0, event{}, d.err
	}
	n, ev, err = d.step(p)
	d.pos += int64(n)
	if err != nil {
		d.err = err
		d.state = dsFailed
	}
	return n, ev, err
}

func (d *decoder) step(p []byte) (int, event, error) {
	switch d.state {
	case dsReply, dsHeader:
		n := 0
		for n < len(p) {
			line, k, ok, err := d.line.take(p[n:])
			if err != nil {
				return n, event{}, d.fail(err.Error(), p[n:])
			}
			n += k
			if !ok {
				break
			}
			line = bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'})
			if len(line) == 0 {
				continue // keepalive
			}
			if d.state == dsReply {
				ev, err := d.reply(line)
				return n, ev, err
			}
			ev, err := d.header(line)
			return n, ev, err
		}
		return n, event{}, nil
	case dsBulk:
		if len(p) == 0 {
			return 0, event{}, nil
		}
		k := int(min(int64(len(p)), d.remaining))
		d.remaining -= int64(k)
		if d.remaining == 0 {
			d.state = dsRDBEnd
		}
		return k, event{kind: evRDBData, data: p[:k]}, nil
	case dsMark:
		n := 0
		for {
			k, out, done := d.mark.step(p[n:])
			n += k
			switch {
			case len(out) > 0:
				if done {
					d.state = dsRDBEnd
				}
				return n, event{kind: evRDBData, data: out}, nil
			case done:
				return n, d.rdbEnd(), nil
			case n == len(p):
				return n, event{}, nil
			}
		}
	case dsRDBEnd:
		return 0, d.rdbEnd(), nil
	case dsStream:
		if len(p) == 0 {
			return 0, event{}, nil
		}
		b, err := d.stream.parse(p)
		if err != nil {
			return len(p), event{}, err
		}
		return len(p), event{kind: evCommands, batch: b}, nil
	}
	return 0, event{}, d.err
}

func (d *decoder) rdbEnd() event {
	d.state = dsStream
	d.stream = newStreamParser(d.start, d.lim)
	return event{kind: evRDBEnd}
}

// reply handles the answer to PSYNC.
func (d *decoder) reply(line []byte) (event, error) {
	if line[0] == resp.TypeError {
		return event{}, sourceReply("PSYNC", resp.Error(line[1:]))
	}
	f := bytes.Fields(line)
	switch {
	case len(f) == 3 && string(f[0]) == "+FULLRESYNC":
		off, ok := resp.ParseInt(f[2])
		if !ok || off < 0 || !validReplID(f[1]) {
			return event{}, d.fail("bad +FULLRESYNC", line)
		}
		d.replID, d.start = string(f[1]), off
		d.state = dsHeader
		return event{kind: evFullResync}, nil
	case (len(f) == 1 || len(f) == 2) && string(f[0]) == "+CONTINUE":
		if len(f) == 2 {
			if !validReplID(f[1]) {
				return event{}, d.fail("bad +CONTINUE", line)
			}
			d.replID = string(f[1])
		}
		d.state = dsStream
		d.stream = newStreamParser(d.start, d.lim)
		return event{kind: evContinue}, nil
	}
	return event{}, d.fail("unexpected reply to PSYNC", line)
}

// header handles the line that opens the snapshot payload.
func (d *decoder) header(line []byte) (event, error) {
	switch {
	case line[0] == resp.TypeError:
		return event{}, sourceReply("PSYNC", resp.Error(line[1:]))
	case bytes.HasPrefix(line, []byte("$EOF:")):
		if len(line) != 5+markLen {
			return event{}, d.fail("bad $EOF: mark", line)
		}
		d.mark.reset(line[5:])
		d.size = -1
		d.state = dsMark
	case line[0] == resp.TypeBulk:
		v, err := strconv.ParseInt(string(line[1:]), 10, 64)
		if err != nil || v < 0 {
			return event{}, d.fail("bad payload length", line)
		}
		d.size, d.remaining = v, v
		d.state = dsBulk
		if v == 0 {
			d.state = dsRDBEnd
		}
	default:
		return event{}, d.fail("expected '$' payload header", line)
	}
	return event{kind: evRDBStart}, nil
}

func (d *decoder) fail(msg string, snippet []byte) error {
	return parseErr(d.state.String(), d.pos, msg, snippet)
}

// validReplID accepts what servers send: 40 hex characters. Anything
// printable without spaces up to 64 bytes is tolerated.
func validReplID(b []byte) bool {
	if len(b) == 0 || len(b) > 64 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
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
