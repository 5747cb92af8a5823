package replica

import (
	"context"
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

// segment is one read from the source.
type segment struct {
	c    *chunk
	data []byte
}

// queue carries bytes from the socket reader to the consumer. It is bounded
// in bytes: the reader asks for room before each read, so at most max bytes
// sit between the socket and the Handler (plus, in memory, the unused
// tails of at most two chunks).
type queue struct {
	max int64

	mu    sync.Mutex
	segs  []segment
	head  int
	bytes int64
	err   error // the reader's last error, reported once segs are drained

	data  chan struct{} // signalled when segs or err change
	space chan struct{} // signalled when bytes drop

	free sync.Pool
}

func newQueue(max int64) *queue {
	return &queue{max: max, data: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// newChunk returns an empty chunk held once (by the reader).
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

// room waits until fewer than max bytes are queued and returns how many
// more may be read.
func (q *queue) room(ctx context.Context) (int64, error) {
	for {
		q.mu.Lock()
		r := q.max - q.bytes
		q.mu.Unlock()
		if r > 0 {
			return r, nil
		}
		select {
		case <-q.space:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// push publishes data, a part of c the reader will not write again.
func (q *queue) push(c *chunk, data []byte) {
	c.refs.Add(1)
	q.mu.Lock()
	if q.head > 0 && q.head >= len(q.segs)/2 {
		n := copy(q.segs, q.segs[q.head:])
		clear(q.segs[n:])
		q.segs, q.head = q.segs[:n], 0
	}
	q.segs = append(q.segs, segment{c: c, data: data})
	q.bytes += int64(len(data))
	q.mu.Unlock()
	signal(q.data)
}

// close records the reader's final error; pop returns it after the last
// segment.
func (q *queue) close(err error) {
	q.mu.Lock()
	if q.err == nil {
		q.err = err
	}
	q.mu.Unlock()
	signal(q.data)
}

// pop returns the oldest segment, waiting for one.
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

// release gives back a popped segment once nothing refers to its bytes.
func (q *queue) release(s segment) {
	q.mu.Lock()
	q.bytes -= int64(len(s.data))
	q.mu.Unlock()
	q.unref(s.c)
	signal(q.space)
}

// queued returns the bytes read but not yet released.
func (q *queue) queued() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}
