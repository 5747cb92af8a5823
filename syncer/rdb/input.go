package rdb

import (
	"errors"
	"io"
	"slices"
)

// bufSize is the size of the read buffer, and the largest n readN accepts.
const bufSize = 64 << 10

// growStep bounds how far ahead of the received data a buffer is grown.
const growStep = 1 << 20

// errCaptureFull aborts a walk whose raw capture passed its limit. It never
// leaves the package: Key.Raw turns it into ErrRawTooLarge.
var errCaptureFull = errors.New("rdb: capture limit reached")

// input is the buffered byte source of a Parser. It tracks the stream
// offset, folds consumed bytes into the running CRC64 lazily (in blocks, at
// refill time) and can capture consumed bytes for raw payloads.
//
// Invariants: buf[:mark] is already folded into crc and buf[mark:r] is
// consumed but not folded yet; buf[r:w] is unread. After replay, mark may
// exceed r: the replayed bytes were folded the first time round. While
// capturing, buf[cmark:r] is consumed but not yet captured.
type input struct {
	rd    io.Reader
	home  []byte // the regular buffer, bufSize long
	buf   []byte // home, or a larger replay buffer after an overflowing capture
	r, w  int
	mark  int
	cmark int   // buf[:cmark] is already in capture (while capturing)
	base  int64 // stream offset of buf[0]
	crc   uint64
	err   error // sticky read error from rd

	capturing bool
	capture   []byte
	capLimit  int
}

func newInput(rd io.Reader) *input {
	b := make([]byte, bufSize)
	return &input{rd: rd, home: b, buf: b}
}

// reset starts over on rd, keeping the buffers.
func (in *input) reset(rd io.Reader) {
	capture := in.capture[:0]
	*in = input{rd: rd, home: in.home, buf: in.home, capture: capture}
}

func (in *input) offset() int64 { return in.base + int64(in.r) }

// fold adds consumed bytes to the CRC and to the capture.
func (in *input) fold() {
	if in.capturing && in.r > in.cmark {
		in.capture = append(in.capture, in.buf[in.cmark:in.r]...)
		in.cmark = in.r
	}
	if in.r > in.mark {
		in.crc = CRC64(in.crc, in.buf[in.mark:in.r])
		in.mark = in.r
	}
}

// fill makes at least n (<= bufSize) bytes available in buf[r:w].
func (in *input) fill(n int) error {
	in.fold()
	if in.capturing && len(in.capture) > in.capLimit {
		return errCaptureFull
	}
	// Compact, returning to the home buffer once a replay buffer is drained
	// far enough.
	rest := in.w - in.r
	dst := in.buf
	if len(in.buf) != len(in.home) && rest <= len(in.home) {
		dst = in.home
	}
	if in.r > 0 || &dst[0] != &in.buf[0] {
		copy(dst, in.buf[in.r:in.w])
		in.base += int64(in.r)
		in.buf = dst
		in.w = rest
		in.mark -= in.r // stays > 0 while replayed bytes are unread
		in.cmark = 0
		in.r = 0
	}
	empty := 0
	for in.w-in.r < n {
		if in.err != nil {
			if in.err == io.EOF {
				return in.errAt(ErrTruncated, "")
			}
			return in.err
		}
		m, err := in.rd.Read(in.buf[in.w:])
		in.w += m
		if err != nil {
			in.err = err
		} else if m == 0 {
			if empty++; empty > 100 {
				in.err = io.ErrNoProgress
			}
		}
	}
	return nil
}

func (in *input) errAt(cause error, detail string) error {
	return &ParseError{Offset: in.offset(), Snippet: quote(in.buf[in.r:in.w]), Err: cause, Detail: detail}
}

func (in *input) readByte() (byte, error) {
	if in.r == in.w {
		if err := in.fill(1); err != nil {
			return 0, err
		}
	}
	c := in.buf[in.r]
	in.r++
	return c, nil
}

// readN returns the next n (<= bufSize) bytes as a view valid until the next
// read.
func (in *input) readN(n int) ([]byte, error) {
	if in.w-in.r < n {
		if err := in.fill(n); err != nil {
			return nil, err
		}
	}
	b := in.buf[in.r : in.r+n]
	in.r += n
	return b, nil
}

// readAppend appends the next n bytes to dst. Memory grows with the bytes
// actually received, so a hostile length cannot force a large allocation
// before the data is there.
func (in *input) readAppend(dst []byte, n int) ([]byte, error) {
	if cap(dst)-len(dst) < n {
		// Grow ahead by at most growStep: enough to avoid repeated
		// copying, too little for a lying length to matter.
		dst = slices.Grow(dst, min(n, growStep))
	}
	for n > 0 {
		if in.r == in.w {
			if err := in.fill(1); err != nil {
				return dst, err
			}
		}
		m := min(n, in.w-in.r)
		dst = append(dst, in.buf[in.r:in.r+m]...)
		in.r += m
		n -= m
	}
	return dst, nil
}

// discard skips n bytes.
func (in *input) discard(n uint64) error {
	for n > 0 {
		if in.r == in.w {
			if err := in.fill(1); err != nil {
				return err
			}
		}
		m := uint64(in.w - in.r)
		if m > n {
			m = n
		}
		in.r += int(m)
		n -= m
	}
	return nil
}

// startCapture begins recording consumed bytes, after prefix.
func (in *input) startCapture(prefix byte, limit int) {
	in.fold()
	in.cmark = in.r
	in.capture = append(in.capture[:0], prefix)
	in.capLimit = limit + 1
	in.capturing = true
}

// endCapture stops recording and returns the captured bytes (owned by input,
// valid until the next capture), or errCaptureFull.
func (in *input) endCapture() ([]byte, error) {
	in.fold()
	in.capturing = false
	if len(in.capture) > in.capLimit {
		return in.capture, errCaptureFull
	}
	return in.capture, nil
}

// replay pushes back the captured bytes of an aborted capture so that they
// are read again, starting at stream offset start. The bytes are not folded
// into the CRC a second time.
func (in *input) replay(start int64) {
	in.fold()
	in.capturing = false
	c := in.capture[1:] // drop the type byte prefix
	nb := make([]byte, 0, len(c)+in.w-in.r+bufSize)
	nb = append(nb, c...)
	nb = append(nb, in.buf[in.r:in.w]...)
	nb = nb[:cap(nb)]
	in.w = len(c) + in.w - in.r
	in.r = 0
	in.mark = len(c)
	in.buf = nb
	in.base = start
	in.capture = in.capture[:0]
}
