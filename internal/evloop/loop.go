//go:build linux

package evloop

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Errors a Conn can be closed with.
var (
	// ErrClosed: the loop stopped (Stop), or Execute after it did.
	ErrClosed = errors.New("evloop: loop closed")
	// ErrInputTooLarge: the handler left more than Limits.MaxInput bytes
	// of input unconsumed.
	ErrInputTooLarge = errors.New("evloop: unconsumed input over the limit")
	// ErrOutputTooLarge: pending output passed Limits.MaxOutput.
	ErrOutputTooLarge = errors.New("evloop: pending output over the limit")
)

// A Handler receives a Conn's events, on the loop's goroutine.
type Handler interface {
	// Data is called after a read with the Conn's unconsumed input: what
	// Data left unconsumed before, followed by the bytes just read. b is
	// valid only during the call. It returns how many bytes of b it
	// consumed (0 to len(b)); the rest is passed again, grown, after the
	// next read, or at once after ResumeRead.
	Data(c *Conn, b []byte) int
	// EOF is called when the peer has shut down its writing side. The
	// Conn is no longer read but stays writable until Close or Abort;
	// input left unconsumed is kept, and Redeliver hands it to Data
	// again (a handler that was busy when the input came).
	EOF(c *Conn)
	// Closed is called once when the Conn is closed: by Close (err nil),
	// Abort (its error), a read or write error, a limit, or Stop
	// (ErrClosed). It runs later in the pass that closed the Conn, never
	// inside Close or Abort.
	Closed(c *Conn, err error)
}

// Limits bound one Conn's buffers. Zero fields take the Config's
// defaults; a negative PauseOutput never pauses.
type Limits struct {
	// MaxInput bounds the input the handler leaves unconsumed.
	MaxInput int
	// PauseOutput is the pending output at which the Conn stops being
	// read; reading resumes when a flush takes it below half.
	PauseOutput int
	// MaxOutput is the pending output at which the Conn is closed with
	// ErrOutputTooLarge.
	MaxOutput int
}

// Config configures a Loop.
type Config struct {
	// ReadSize is the most one read takes (default 64 KiB).
	ReadSize int
	// Limits are the defaults of every Conn's limits (defaults: MaxInput
	// 64 MiB, PauseOutput 64 MiB, MaxOutput 256 MiB).
	Limits Limits
	// Pass, if set, runs at the end of every pass, after the pass's events
	// and before its output is flushed.
	Pass func()
}

const (
	defaultReadSize = 64 << 10
	chunkSize       = 16 << 10 // output is kept in chunks of this size
	maxFreeChunks   = 256      // chunks a loop keeps for reuse
	maxIovecs       = 64       // chunks one writev takes
	maxEvents       = 256
)

// A Loop is one event loop. Create it with New, run it with Run on a
// goroutine of its own, end it with Stop.
type Loop struct {
	cfg    Config
	epfd   int
	evfd   int
	events []unix.EpollEvent
	rbuf   []byte
	conns  []*Conn // by descriptor
	open   int

	dirty   []*Conn // written to in this pass
	redo    []*Conn // resumed with input pending
	closing []*Conn // closed in this pass: Closed and close(2) pending
	free    [][]byte
	iov     []unix.Iovec // writev's scratch

	now    time.Time // when the current pass began
	timers timerHeap

	mu      sync.Mutex
	queue   []func()
	stopped bool // under mu: Execute refuses
	woken   atomic.Bool
	stop    atomic.Bool
	running atomic.Bool
}

// New creates a loop: its epoll instance and its eventfd.
func New(cfg Config) (*Loop, error) {
	if cfg.ReadSize <= 0 {
		cfg.ReadSize = defaultReadSize
	}
	cfg.Limits = cfg.Limits.with(Limits{MaxInput: 64 << 20, PauseOutput: 64 << 20, MaxOutput: 256 << 20})
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("evloop: epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("evloop: eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}); err != nil {
		unix.Close(evfd)
		unix.Close(epfd)
		return nil, fmt.Errorf("evloop: epoll_ctl eventfd: %w", err)
	}
	return &Loop{
		cfg:    cfg,
		epfd:   epfd,
		evfd:   evfd,
		events: make([]unix.EpollEvent, maxEvents),
		rbuf:   make([]byte, cfg.ReadSize),
		iov:    make([]unix.Iovec, 0, maxIovecs),
	}, nil
}

func (l Limits) with(d Limits) Limits {
	if l.MaxInput <= 0 {
		l.MaxInput = d.MaxInput
	}
	if l.PauseOutput == 0 {
		l.PauseOutput = d.PauseOutput
	}
	if l.MaxOutput <= 0 {
		l.MaxOutput = d.MaxOutput
	}
	return l
}

// Execute runs f on the loop's goroutine, in the loop's next pass; it is
// safe from any goroutine. After Stop it returns ErrClosed and f never
// runs.
func (l *Loop) Execute(f func()) error {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return ErrClosed
	}
	l.queue = append(l.queue, f)
	l.mu.Unlock()
	l.wake()
	return nil
}

func (l *Loop) wake() {
	if l.woken.CompareAndSwap(false, true) {
		var one = [8]byte{1}
		// EAGAIN means the counter is already non-zero: awake anyway.
		_, _ = unix.Write(l.evfd, one[:])
	}
}

// Stop ends Run after its current pass; safe from any goroutine, and more
// than once.
func (l *Loop) Stop() {
	l.stop.Store(true)
	l.wake()
}

// Run runs the loop on the calling goroutine until Stop. Every Conn still
// open is then closed (its handler's Closed gets ErrClosed), functions
// queued with Execute before Stop have run, and the loop's descriptors
// are closed. Run may be called once.
func (l *Loop) Run() error {
	if !l.running.CompareAndSwap(false, true) {
		return errors.New("evloop: Run called twice")
	}
	defer l.shutdown()
	l.now = time.Now()
	for !l.stop.Load() {
		n, err := unix.EpollWait(l.epfd, l.events, l.waitMillis())
		l.now = time.Now()
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return fmt.Errorf("evloop: epoll_wait: %w", err)
		}
		for i := 0; i < n; i++ {
			ev := &l.events[i]
			fd := int(ev.Fd)
			if fd == l.evfd {
				l.runQueue()
				continue
			}
			if fd < len(l.conns) {
				if c := l.conns[fd]; c != nil {
					c.ready(ev.Events)
				}
			}
		}
		l.runTimers()
		l.endPass()
	}
	return nil
}

func (l *Loop) runQueue() {
	var b [8]byte
	_, _ = unix.Read(l.evfd, b[:])
	l.woken.Store(false)
	l.mu.Lock()
	q := l.queue
	l.queue = nil
	l.mu.Unlock()
	for _, f := range q {
		f()
	}
}

// endPass redelivers resumed input, runs Config.Pass, then flushes and
// finishes closes until nothing is left to do, so the loop never waits
// with output it could write or input it could deliver.
func (l *Loop) endPass() {
	ranPass := false
	for {
		for len(l.redo) > 0 {
			redo := l.redo
			l.redo = nil
			for _, c := range redo {
				c.redo = false
				if c.deliverable() && len(c.in) > 0 {
					c.deliver(c.in)
				}
			}
		}
		if !ranPass && l.cfg.Pass != nil {
			l.cfg.Pass()
		}
		ranPass = true
		if len(l.dirty) == 0 && len(l.closing) == 0 {
			if len(l.redo) == 0 {
				return
			}
			continue
		}
		dirty := l.dirty
		l.dirty = nil
		for i, c := range dirty {
			dirty[i] = nil
			c.dirty = false
			if !c.closed && !c.blocked {
				c.flush()
			}
		}
		if l.dirty == nil {
			l.dirty = dirty[:0]
		}
		closing := l.closing
		l.closing = nil
		for i, c := range closing {
			closing[i] = nil
			unix.Close(c.fd)
			c.h.Closed(c, c.err)
		}
		if l.closing == nil {
			l.closing = closing[:0]
		}
	}
}

func (l *Loop) shutdown() {
	l.mu.Lock()
	l.stopped = true
	q := l.queue
	l.queue = nil
	l.mu.Unlock()
	for _, f := range q {
		f()
	}
	for _, c := range l.conns {
		if c != nil {
			c.Abort(ErrClosed)
		}
	}
	l.dirty = nil
	closing := l.closing
	l.closing = nil
	for _, c := range closing {
		unix.Close(c.fd)
		c.h.Closed(c, c.err)
	}
	unix.Close(l.evfd)
	unix.Close(l.epfd)
}

// Now is when the current pass began (a clock for handlers that need no
// finer one: one time.Now per pass).
func (l *Loop) Now() time.Time { return l.now }

// A Timer is a function After runs on the loop.
type Timer struct {
	when time.Time
	f    func()
	i    int // index in the heap, -1 when not in it
}

// After runs f on the loop's goroutine once d has passed (in the first
// pass at or after that time; timers are as precise as the clock and
// epoll_wait's milliseconds). Call it on the loop's goroutine.
func (l *Loop) After(d time.Duration, f func()) *Timer {
	now := l.now
	if now.IsZero() {
		now = time.Now()
	}
	t := &Timer{when: now.Add(d), f: f}
	l.timers.push(t)
	return t
}

// StopTimer cancels t; it reports whether t was pending. Call it on the
// loop's goroutine.
func (l *Loop) StopTimer(t *Timer) bool {
	if t == nil || t.i < 0 {
		return false
	}
	l.timers.remove(t.i)
	return true
}

// waitMillis is epoll_wait's timeout: until the next timer, -1 for none.
func (l *Loop) waitMillis() int {
	if len(l.timers) == 0 {
		return -1
	}
	d := l.timers[0].when.Sub(time.Now())
	if d <= 0 {
		return 0
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	return int(min(ms, 1<<30))
}

// runTimers runs the timers that are due; timers they set run in a later
// pass.
func (l *Loop) runTimers() {
	var due []*Timer
	for len(l.timers) > 0 && !l.timers[0].when.After(l.now) {
		t := l.timers[0]
		l.timers.remove(0)
		due = append(due, t)
	}
	for _, t := range due {
		t.f()
	}
}

// timerHeap is a binary min-heap of timers by when.
type timerHeap []*Timer

func (h *timerHeap) push(t *Timer) {
	t.i = len(*h)
	*h = append(*h, t)
	h.up(t.i)
}

func (h *timerHeap) remove(i int) {
	s := *h
	last := len(s) - 1
	s[i].i = -1
	if i != last {
		s[i] = s[last]
		s[i].i = i
	}
	s[last] = nil
	*h = s[:last]
	if i != last {
		h.down(i)
		h.up(i)
	}
}

func (h timerHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h[i].when.Before(h[p].when) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h timerHeap) down(i int) {
	for {
		l, m := 2*i+1, i
		if l < len(h) && h[l].when.Before(h[m].when) {
			m = l
		}
		if r := l + 1; r < len(h) && h[r].when.Before(h[m].when) {
			m = r
		}
		if m == i {
			return
		}
		h.swap(i, m)
		i = m
	}
}

func (h timerHeap) swap(a, b int) {
	h[a], h[b] = h[b], h[a]
	h[a].i, h[b].i = a, b
}

// Open is the number of Conns open on the loop.
func (l *Loop) Open() int { return l.open }

// Attach makes fd, a connected stream socket the caller hands over, a
// Conn of this loop read for h, with lim over the loop's default limits.
// On error fd is left to the caller.
func (l *Loop) Attach(fd int, h Handler, lim Limits) (*Conn, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, fmt.Errorf("evloop: set non-blocking: %w", err)
	}
	c := &Conn{l: l, fd: fd, h: h, lim: lim.with(l.cfg.Limits), events: unix.EPOLLIN | unix.EPOLLRDHUP}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: c.events, Fd: int32(fd)}); err != nil {
		return nil, fmt.Errorf("evloop: epoll_ctl add: %w", err)
	}
	for fd >= len(l.conns) {
		l.conns = append(l.conns, nil)
	}
	l.conns[fd] = c
	l.open++
	return c, nil
}

// Detach takes the socket of a net.Conn (a *net.TCPConn or *net.UnixConn)
// out of Go's network poller: it returns a duplicate descriptor of the
// same socket, close-on-exec, for Attach, and closes nc (closing it takes
// the original descriptor out of Go's poller; the socket stays open
// through the duplicate).
func Detach(nc net.Conn) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("evloop: %T has no descriptor", nc)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("evloop: %w", err)
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(s uintptr) {
		fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, fmt.Errorf("evloop: %w", err)
	}
	if dupErr != nil {
		return -1, fmt.Errorf("evloop: dup: %w", dupErr)
	}
	nc.Close()
	return fd, nil
}

// A Conn is one socket of a Loop.
type Conn struct {
	l   *Loop
	fd  int
	h   Handler
	lim Limits

	in      []byte   // input the handler left unconsumed
	out     [][]byte // pending output, in chunks
	outLen  int
	written int64 // bytes the kernel took so far

	events    uint32 // epoll interest registered
	paused    bool   // PauseRead
	outPaused bool   // pending output at Limits.PauseOutput
	eof       bool   // the peer shut down its writing side
	blocked   bool   // the last write was partial: wait for EPOLLOUT
	shut      bool   // Close: no more reads or writes, close once flushed
	closed    bool   // finished: on l.closing or gone
	dirty     bool
	redo      bool
	err       error

	// Value is the handler's own state for this Conn.
	Value any
}

// Fd is the Conn's descriptor (for logs and socket options).
func (c *Conn) Fd() int { return c.fd }

// Loop is the loop that owns c.
func (c *Conn) Loop() *Loop { return c.l }

// Buffered is how many bytes of input the handler left unconsumed.
func (c *Conn) Buffered() int { return len(c.in) }

// Written is how many bytes of output the kernel has taken so far: a
// handler watching for a peer that takes nothing compares it over time.
func (c *Conn) Written() int64 { return c.written }

// Pending is how many bytes of output wait to be written.
func (c *Conn) Pending() int { return c.outLen }

// Closed reports whether Close or Abort was called or the Conn failed.
func (c *Conn) Closed() bool { return c.shut || c.closed }

// Write appends b to c's pending output, written at the end of the pass.
// b is copied. Writes after Close or Abort are dropped.
func (c *Conn) Write(b []byte) {
	if c.shut || c.closed || len(b) == 0 {
		return
	}
	c.outLen += len(b)
	for len(b) > 0 {
		if k := len(c.out) - 1; k >= 0 && len(c.out[k]) < cap(c.out[k]) {
			last := c.out[k]
			n := copy(last[len(last):cap(last)], b)
			c.out[k] = last[:len(last)+n]
			b = b[n:]
			continue
		}
		var chunk []byte
		if len(b) > chunkSize {
			chunk = make([]byte, 0, len(b))
		} else if n := len(c.l.free); n > 0 {
			chunk = c.l.free[n-1]
			c.l.free = c.l.free[:n-1]
		} else {
			chunk = make([]byte, 0, chunkSize)
		}
		c.out = append(c.out, chunk)
	}
	if c.outLen > c.lim.MaxOutput {
		c.Abort(ErrOutputTooLarge)
		return
	}
	if !c.dirty {
		c.dirty = true
		c.l.dirty = append(c.l.dirty, c)
	}
	if c.lim.PauseOutput > 0 && c.outLen >= c.lim.PauseOutput && !c.outPaused {
		c.outPaused = true
		c.update()
	}
}

// Redeliver hands c's unconsumed input to Data again later in this pass,
// without waiting for more bytes: for a handler that left input
// unconsumed while busy and is ready for it now. It does nothing while c
// is paused (ResumeRead and the output bound redeliver on their own) or
// holds no input.
func (c *Conn) Redeliver() { c.scheduleRedo() }

// TakeOutput moves c's pending output, in order, to the end of dst and
// returns it: nothing of it will be written by the loop. For a handler
// handing c over with Release, which needs no output pending.
func (c *Conn) TakeOutput(dst []byte) []byte {
	for i, b := range c.out {
		dst = append(dst, b...)
		c.l.recycle(b)
		c.out[i] = nil
	}
	c.out, c.outLen = c.out[:0], 0
	if c.blocked {
		c.blocked = false
		c.update()
	}
	if c.outPaused {
		c.outPaused = false
		c.update()
	}
	return dst
}

// PauseRead stops reading c until ResumeRead.
func (c *Conn) PauseRead() {
	if !c.paused {
		c.paused = true
		c.update()
	}
}

// ResumeRead reads c again; input left unconsumed is delivered to Data
// again in this pass, without waiting for more bytes.
func (c *Conn) ResumeRead() {
	if !c.paused {
		return
	}
	c.paused = false
	c.update()
	c.scheduleRedo()
}

// Paused reports whether c is not being read: PauseRead, pending output
// at its bound, EOF or Close.
func (c *Conn) Paused() bool { return !c.readable() }

// EOF reports whether the peer shut down its writing side.
func (c *Conn) EOF() bool { return c.eof }

// Close closes c once its pending output is written; it is no longer
// read. Handler.Closed follows, with a nil error unless the writes fail.
func (c *Conn) Close() {
	if c.shut || c.closed {
		return
	}
	c.shut = true
	if c.outLen == 0 {
		c.finish(nil)
		return
	}
	c.update()
	if !c.dirty && !c.blocked {
		c.dirty = true
		c.l.dirty = append(c.l.dirty, c)
	}
}

// Abort closes c at once, dropping its pending output; Handler.Closed
// gets err.
func (c *Conn) Abort(err error) {
	if c.closed {
		return
	}
	c.shut = true
	c.finish(err)
}

// Release takes c out of the loop without closing its socket, for a
// goroutine to carry on with it (a TLS, pub/sub or replication client):
// it returns the descriptor, still non-blocking, and the input the
// handler left unconsumed. After EOF the goroutine's reads see the end
// of input at once. Handler.Closed is not called. It fails, and c stays
// as it was, while c has output pending (write it first) or after Close
// or Abort.
func (c *Conn) Release() (fd int, buffered []byte, err error) {
	switch {
	case c.shut || c.closed:
		return -1, nil, errors.New("evloop: Release of a closed Conn")
	case c.outLen > 0:
		return -1, nil, errors.New("evloop: Release with output pending")
	}
	if err := unix.EpollCtl(c.l.epfd, unix.EPOLL_CTL_DEL, c.fd, nil); err != nil {
		return -1, nil, fmt.Errorf("evloop: epoll_ctl del: %w", err)
	}
	c.closed, c.shut = true, true
	c.l.conns[c.fd] = nil
	c.l.open--
	buffered, c.in = c.in, nil
	return c.fd, buffered, nil
}

// finish takes c out of epoll and out of the loop's table; its descriptor
// is closed, and Closed called, at the end of the pass.
func (c *Conn) finish(err error) {
	c.closed = true
	c.err = err
	for _, b := range c.out {
		c.l.recycle(b)
	}
	c.out, c.outLen, c.in = nil, 0, nil
	_ = unix.EpollCtl(c.l.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	c.l.conns[c.fd] = nil
	c.l.open--
	c.l.closing = append(c.l.closing, c)
}

func (l *Loop) recycle(b []byte) {
	if cap(b) == chunkSize && len(l.free) < maxFreeChunks {
		l.free = append(l.free, b[:0])
	}
}

func (c *Conn) readable() bool { return c.deliverable() && !c.eof }

// deliverable: input already read may be handed to Data (after EOF too).
func (c *Conn) deliverable() bool { return !c.paused && !c.outPaused && !c.shut && !c.closed }

func (c *Conn) scheduleRedo() {
	if len(c.in) > 0 && !c.redo && c.deliverable() {
		c.redo = true
		c.l.redo = append(c.l.redo, c)
	}
}

// update brings c's epoll interest in line with its state.
func (c *Conn) update() {
	if c.closed {
		return
	}
	var ev uint32
	if c.readable() {
		ev |= unix.EPOLLIN | unix.EPOLLRDHUP
	}
	if c.blocked {
		ev |= unix.EPOLLOUT
	}
	if ev == c.events {
		return
	}
	c.events = ev
	if err := unix.EpollCtl(c.l.epfd, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: ev, Fd: int32(c.fd)}); err != nil {
		c.Abort(fmt.Errorf("evloop: epoll_ctl mod: %w", err))
	}
}

func (c *Conn) ready(ev uint32) {
	if ev&unix.EPOLLOUT != 0 && c.blocked {
		c.blocked = false
		c.flush()
		if c.closed {
			return
		}
	}
	if c.readable() && ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.read()
		return
	}
	if ev&(unix.EPOLLHUP|unix.EPOLLERR) != 0 && !c.closed {
		// Not reading (paused, EOF or closing) and the socket is dead:
		// level-triggered epoll would report it on every wait.
		c.Abort(sockError(c.fd))
	}
}

func sockError(fd int) error {
	if n, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && n != 0 {
		return unix.Errno(n)
	}
	return io.ErrUnexpectedEOF
}

func (c *Conn) read() {
	n, err := rawRead(c.fd, c.l.rbuf)
	switch {
	case err == unix.EAGAIN || err == unix.EINTR:
		return
	case err != nil:
		c.Abort(err)
		return
	case n == 0:
		c.eof = true
		c.update()
		if !c.closed {
			c.h.EOF(c)
		}
		return
	}
	if len(c.in) == 0 {
		c.deliver(c.l.rbuf[:n])
		return
	}
	c.in = append(c.in, c.l.rbuf[:n]...)
	c.deliver(c.in)
}

// deliver hands b (c.in, or the loop's read buffer) to Data and keeps
// what it leaves.
func (c *Conn) deliver(b []byte) {
	k := c.h.Data(c, b)
	if c.closed || c.shut {
		c.in = nil
		return
	}
	if k < 0 || k > len(b) {
		c.Abort(fmt.Errorf("evloop: Data consumed %d of %d bytes", k, len(b)))
		return
	}
	rest := b[k:]
	switch {
	case len(rest) == 0:
		c.in = nil // an idle Conn holds no input buffer
	case len(rest) > c.lim.MaxInput:
		c.Abort(ErrInputTooLarge)
	default:
		// Copy to the front: out of the loop's read buffer, or down
		// over what Data consumed.
		if cap(c.in) < len(rest) {
			c.in = make([]byte, 0, max(len(rest), 4<<10))
		}
		c.in = c.in[:copy(c.in[:len(rest)], rest)]
	}
}

// flush writes c's pending output until it is gone or the kernel takes
// no more.
func (c *Conn) flush() {
	head := 0 // chunks written
	for c.outLen > 0 {
		var n int
		var err error
		if len(c.out)-head == 1 {
			n, err = rawWrite(c.fd, c.out[head])
		} else {
			n, err = rawWritev(c.fd, c.out[head:min(len(c.out), head+maxIovecs)], c.l.iov[:0])
		}
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			c.blocked = true
			break
		}
		if err != nil {
			c.Abort(err)
			return
		}
		c.outLen -= n
		c.written += int64(n)
		for n > 0 {
			if n >= len(c.out[head]) {
				n -= len(c.out[head])
				c.l.recycle(c.out[head])
				c.out[head] = nil
				head++
				continue
			}
			c.out[head] = c.out[head][n:]
			n = 0
		}
	}
	if head > 0 {
		k := copy(c.out, c.out[head:])
		clear(c.out[k:])
		c.out = c.out[:k]
	}
	if c.outLen == 0 {
		c.blocked = false
		if c.shut {
			c.finish(nil)
			return
		}
	}
	if c.outPaused && c.outLen < c.lim.PauseOutput/2 {
		c.outPaused = false
		c.scheduleRedo()
	}
	c.update()
}
