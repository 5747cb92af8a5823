package replica

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// chunk is a buffer the socket reader fills front to back; the segments
// published from it are views of disjoint parts. refs counts the reader's
// hold plus every segment not yet released; at zero the chunk is reused.
type chunk struct {
	buf  []byte
	refs atomic.Int32
}

// segment is one read from the source, or one read back from the spool.
type segment struct {
	c       *chunk
	data    []byte
	spooled bool // read back from the spool: not counted in queue.bytes
}

// queue carries bytes from the socket reader to the consumer, in order.
//
// Its memory part is bounded in bytes: the reader asks for room before
// each read (writable), so at most max bytes sit between the socket and
// the Handler (plus, in memory, the unused tails of at most two chunks and
// the one chunk read back from the spool that the consumer holds).
//
// With a spool, a reader that finds the memory part full goes on reading
// and appends to the spool instead, up to its size; only a full spool
// makes it wait. Spooled bytes are newer than every segment in memory:
// the reader publishes to memory only while the spool is empty, and the
// consumer reads the spool back once the memory part is drained. The
// memory path is zero-copy; the spool path copies twice (to disk, back).
type queue struct {
	max   int64
	spool *spool // nil: no spool

	mu    sync.Mutex
	segs  []segment
	head  int
	bytes int64
	err   error // the reader's last error, reported once segs are drained
	// Spool positions: [sr, sw) is written and not yet read back.
	sr, sw    int64
	peak      int64 // highest sw-sr
	paused    bool  // the reader waits for room
	everPause bool  // it did at least once

	data  chan struct{} // signalled when segs, sw or err change
	space chan struct{} // signalled when bytes drop or sr grows

	// onPause, when set, is called (by the reader, without locks) each
	// time it starts waiting for room; spooled is what the spool holds.
	onPause func(spooled int64)

	// The reader's state (the reader goroutine only).
	cur   *chunk
	start int // where the pending read starts in cur.buf

	free sync.Pool
}

// newQueue returns a queue holding max bytes in memory, overflowing to sp
// when it is not nil.
func newQueue(max int64, sp *spool) *queue {
	return &queue{max: max, spool: sp, data: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// newChunk returns an empty chunk held once.
func (q *queue) newChunk() *chunk {
	c, _ := q.free.Get().(*chunk)
	if c == nil {
		c = &chunk{buf: make([]byte, 0, chunkSize)}
	}
	c.buf = c.buf[:0]
	c.refs.Store(1)
	return c
}

func (q *queue) unref(c *chunk) {
	if c.refs.Add(-1) == 0 {
		q.free.Put(c)
	}
}

// room reports how many bytes the reader may read now: into memory while
// the spool is empty and memory has room, else into the spool while it has
// room, else none. Call with mu held.
func (q *queue) room() int64 {
	spooled := q.sw - q.sr
	if spooled == 0 && q.bytes < q.max {
		return q.max - q.bytes
	}
	if q.spool != nil && spooled < q.spool.size {
		return q.spool.size - spooled
	}
	return 0
}

// writable waits until the reader may read and returns the buffer to read
// into (at least one byte). Pass what was read to commit. Reader only.
func (q *queue) writable(ctx context.Context) ([]byte, error) {
	for {
		q.mu.Lock()
		r := q.room()
		first := r == 0 && !q.paused
		q.paused = r == 0
		q.everPause = q.everPause || q.paused
		spooled := q.sw - q.sr
		q.mu.Unlock()
		if r > 0 {
			if q.cur == nil || len(q.cur.buf) == cap(q.cur.buf) {
				if q.cur != nil {
					q.unref(q.cur)
				}
				q.cur = q.newChunk()
			}
			q.start = len(q.cur.buf)
			p := q.cur.buf[q.start:cap(q.cur.buf)]
			if int64(len(p)) > r {
				p = p[:r]
			}
			return p, nil
		}
		if first && q.onPause != nil {
			q.onPause(spooled)
		}
		select {
		case <-q.space:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// commit publishes the first n bytes of the buffer writable returned: as
// a segment in memory if the spool is empty and they fit, else appended to
// the spool (and the chunk space is reused). Reader only.
func (q *queue) commit(n int) error {
	if n <= 0 {
		return nil
	}
	c := q.cur
	data := c.buf[q.start : q.start+n : q.start+n]
	q.mu.Lock()
	if q.sw == q.sr && q.bytes+int64(n) <= q.max {
		c.buf = c.buf[:q.start+n]
		c.refs.Add(1)
		if q.head > 0 && q.head >= len(q.segs)/2 {
			k := copy(q.segs, q.segs[q.head:])
			clear(q.segs[k:])
			q.segs, q.head = q.segs[:k], 0
		}
		q.segs = append(q.segs, segment{c: c, data: data})
		q.bytes += int64(n)
		q.mu.Unlock()
		signal(q.data)
		return nil
	}
	pos := q.sw // only this goroutine moves sw
	q.mu.Unlock()
	// writable bounded n by the spool's free space, which only grows.
	if err := q.spool.writeAt(data, pos); err != nil {
		return fmt.Errorf("%w: write: %w", ErrSpool, err)
	}
	q.mu.Lock()
	q.sw += int64(n)
	q.peak = max(q.peak, q.sw-q.sr)
	q.mu.Unlock()
	signal(q.data)
	return nil
}

// closeWriter drops the reader's hold on its chunk. Reader only, last.
func (q *queue) closeWriter() {
	if q.cur != nil {
		q.unref(q.cur)
		q.cur = nil
	}
}

// close records the reader's final error; pop returns it after the last
// byte queued.
func (q *queue) close(err error) {
	q.mu.Lock()
	if q.err == nil {
		q.err = err
	}
	q.mu.Unlock()
	signal(q.data)
}

// pop returns the oldest segment, waiting for one: memory first, then the
// spool. Consumer only.
func (q *queue) pop(ctx context.Context) (segment, error) {
	for {
		q.mu.Lock()
		if q.head < len(q.segs) {
			s := q.segs[q.head]
			q.segs[q.head] = segment{}
			q.head++
			if q.head == len(q.segs) {
				q.segs, q.head = q.segs[:0], 0
			}
			q.mu.Unlock()
			return s, nil
		}
		if avail := q.sw - q.sr; avail > 0 {
			pos := q.sr // only this goroutine moves sr
			q.mu.Unlock()
			return q.readSpool(pos, avail)
		}
		err := q.err
		q.mu.Unlock()
		if err != nil {
			return segment{}, err
		}
		select {
		case <-q.data:
		case <-ctx.Done():
			return segment{}, ctx.Err()
		}
	}
}

// readSpool reads up to a chunk of the avail bytes at pos back from the
// spool. The reader publishes nothing to memory meanwhile: the spool is
// not empty until sr moves.
func (q *queue) readSpool(pos, avail int64) (segment, error) {
	c := q.newChunk()
	n := int(min(avail, int64(cap(c.buf))))
	c.buf = c.buf[:n]
	if err := q.spool.readAt(c.buf, pos); err != nil {
		q.unref(c)
		return segment{}, fmt.Errorf("%w: read: %w", ErrSpool, err)
	}
	q.mu.Lock()
	q.sr += int64(n)
	q.mu.Unlock()
	signal(q.space)
	return segment{c: c, data: c.buf, spooled: true}, nil
}

// release gives back a popped segment once nothing refers to its bytes.
func (q *queue) release(s segment) {
	if !s.spooled {
		q.mu.Lock()
		q.bytes -= int64(len(s.data))
		q.mu.Unlock()
		signal(q.space)
	}
	q.unref(s.c)
}

// queueStats is what Stats shows of a queue.
type queueStats struct {
	queued, spooled, peak int64
	paused, everPaused    bool
}

func (q *queue) stats() queueStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return queueStats{queued: q.bytes, spooled: q.sw - q.sr, peak: q.peak, paused: q.paused, everPaused: q.everPause}
}

// pending returns the bytes read but not yet consumed, in memory and
// spooled.
func (q *queue) pending() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes + q.sw - q.sr
}
