package replica

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/replicaof/replicaof/resp"
)

// Position is a point in a source's replication history: where a link got
// to, and where the next Run may resume. The zero Position means none: the
// next Run asks for a full resynchronization (PSYNC ? -1).
type Position struct {
	ReplID string
	// Offset is the replication offset of the last byte applied.
	Offset int64
}

// IsZero reports whether p is the zero Position.
func (p Position) IsZero() bool { return p.ReplID == "" }

// State is the phase a link is in.
type State int32

const (
	StateIdle      State = iota // not running
	StateHandshake              // dialing, authenticating, REPLCONF
	StatePSync                  // PSYNC sent, waiting for its reply: a source with a diskless delay answers +FULLRESYNC only when its snapshot starts
	StateTransfer               // +FULLRESYNC received, waiting for the snapshot to start
	StateLoading                // the snapshot is flowing into Handler.FullSync
	StateStreaming              // applying the command stream
)

func (s State) String() string {
	switch s {
	case StateIdle:
		return "idle"
	case StateHandshake:
		return "handshake"
	case StatePSync:
		return "psync"
	case StateTransfer:
		return "transfer"
	case StateLoading:
		return "loading"
	case StateStreaming:
		return "streaming"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Stats is a snapshot of a link's progress.
type Stats struct {
	State  State
	ReplID string
	// ReadOffset is the stream offset parsed so far (a partial command
	// included); AppliedOffset the offset the Handler has applied, which
	// is what the link acknowledges to the source.
	ReadOffset, AppliedOffset int64
	// RDBSize is the snapshot's size, -1 when unknown (diskless transfer)
	// or before one starts; RDBTransferred the payload bytes handed to
	// FullSync so far.
	RDBSize, RDBTransferred int64
	// LastCommand is when Apply last returned for a non-empty batch.
	LastCommand time.Time
	// BytesReceived counts every byte read from the source, this Run and
	// the previous ones. QueuedBytes are read but not yet consumed and
	// held in memory (at most Config.MaxQueueBytes).
	BytesReceived, QueuedBytes int64
	// WireBytes counts the bytes read from the connection, this Run and
	// the previous ones: BytesReceived before decompression (Config.Gzip).
	WireBytes int64
	// SpooledBytes are read but not yet consumed and held in the spool
	// file (at most Config.SpoolMaxBytes); SpoolPeak is the most it held
	// during this Run.
	SpooledBytes, SpoolPeak int64
	// ReadPaused is set while the link does not read from the source
	// because the memory queue (and the spool, if any) are full: the
	// source's output buffer for us grows meanwhile.
	ReadPaused bool
}

// Link is one replication link to one source. Run it with Run; read its
// progress with Stats from any goroutine.
type Link struct {
	cfg Config
	h   Handler
	log *slog.Logger

	running atomic.Bool

	state          atomic.Int32
	readOff        atomic.Int64
	appliedOff     atomic.Int64
	rdbSize        atomic.Int64
	rdbTransferred atomic.Int64
	lastCommand    atomic.Int64 // unix nanoseconds
	received       atomic.Int64
	wire           atomic.Int64
	queue          atomic.Pointer[queue]

	mu     sync.Mutex
	replID string
}

// New returns a Link to the source cfg.Addr feeding h. It starts nothing.
func New(cfg Config, h Handler) *Link {
	cfg = cfg.withDefaults()
	l := &Link{cfg: cfg, h: h, log: cfg.Logger.With("addr", cfg.Addr)}
	l.rdbSize.Store(-1)
	return l
}

// Stats returns a snapshot of the link's progress. Safe for concurrent use.
func (l *Link) Stats() Stats {
	l.mu.Lock()
	id := l.replID
	l.mu.Unlock()
	s := Stats{
		State:          State(l.state.Load()),
		ReplID:         id,
		ReadOffset:     l.readOff.Load(),
		AppliedOffset:  l.appliedOff.Load(),
		RDBSize:        l.rdbSize.Load(),
		RDBTransferred: l.rdbTransferred.Load(),
		BytesReceived:  l.received.Load(),
		WireBytes:      l.wire.Load(),
	}
	if ns := l.lastCommand.Load(); ns != 0 {
		s.LastCommand = time.Unix(0, ns)
	}
	if q := l.queue.Load(); q != nil {
		qs := q.stats()
		s.QueuedBytes, s.SpooledBytes, s.SpoolPeak, s.ReadPaused = qs.queued, qs.spooled, qs.peak, qs.paused
	}
	return s
}

func (l *Link) setReplID(id string) {
	l.mu.Lock()
	l.replID = id
	l.mu.Unlock()
}

// Run runs one connection to the source until it fails or ctx ends, and
// returns the Position reached, to pass to the next Run (after a backoff)
// so it resumes by partial resynchronization.
//
// With a zero resume Position it asks for a full resynchronization and
// calls Handler.FullSync. With a non-zero one it sends PSYNC <replid>
// <offset+1>; if the source accepts, Handler.Continue is called and the
// stream goes on; if it answers +FULLRESYNC instead, Run returns at once
// with an error wrapping ErrFullResync (class FullResync) and a zero
// Position, without calling FullSync: the caller decides how to start over.
//
// The returned Position is resume when the link failed before the source
// answered PSYNC, the zero Position when a snapshot was requested but not
// completely loaded, and otherwise the replid and the applied offset.
// The error is never nil; classify it with Classify. Run must not be called
// concurrently on one Link.
func (l *Link) Run(ctx context.Context, resume Position) (Position, error) {
	if err := l.cfg.Validate(); err != nil {
		return resume, err
	}
	if l.h == nil {
		return resume, errors.New("replica: nil Handler")
	}
	if !l.running.CompareAndSwap(false, true) {
		return resume, ErrRunning
	}
	defer l.running.Store(false)
	defer l.state.Store(int32(StateIdle))
	s := &session{link: l, cfg: &l.cfg, resume: resume, pos: resume}
	err := s.run(ctx)
	if ctx.Err() != nil {
		err = fmt.Errorf("replica: stopped: %w", context.Cause(ctx))
	}
	if err != nil {
		l.log.Info("replica: link ended", "err", err, "offset", s.pos.Offset)
	}
	return s.pos, err
}

// session is one Run: one connection and the goroutines around it.
type session struct {
	link   *Link
	cfg    *Config
	resume Position
	pos    Position // what Run returns

	conn  net.Conn
	queue *queue
	pump  pump

	wmu  sync.Mutex
	werr error // sticky write error

	// ackOff is what REPLCONF ACK reports, -1 before there is anything to
	// acknowledge (no ACK, newline keepalives instead).
	ackOff atomic.Int64

	lastPauseLog time.Time // reader goroutine only
}

func (s *session) run(ctx context.Context) error {
	l := s.link
	l.state.Store(int32(StateHandshake))
	s.ackOff.Store(-1)

	var sp *spool
	if s.cfg.SpoolDir != "" {
		var err error
		if sp, err = openSpool(s.cfg.SpoolDir, s.cfg.SpoolMaxBytes); err != nil {
			return fmt.Errorf("%w: %w", ErrSpool, err)
		}
		defer func() {
			if err := sp.close(); err != nil {
				l.log.Warn("replica: spool", "err", err)
			}
		}()
	}

	dctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	conn, err := s.cfg.Dial(dctx, "tcp", s.cfg.Addr)
	cancel()
	if err != nil {
		return fmt.Errorf("replica: dial %s: %w", s.cfg.Addr, err)
	}
	s.conn = conn
	ctx, cancel = context.WithCancel(ctx)
	defer cancel()
	// Closing the connection is what unblocks every read and write.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer func() {
		stop()
		conn.Close()
	}()

	br := bufio.NewReaderSize(countingReader{conn, &l.wire}, 16<<10)
	if err := s.handshake(br); err != nil {
		return err
	}
	var rd io.Reader = br
	if s.cfg.Gzip {
		rd = &gzipStream{under: &patientReader{s: s, r: br}}
	}

	s.queue = newQueue(s.cfg.MaxQueueBytes, sp)
	s.queue.onPause = s.paused
	l.queue.Store(s.queue)
	s.pump = pump{q: s.queue, d: newDecoder(s.resume, s.cfg.Limits)}
	var wg sync.WaitGroup
	wg.Go(func() { s.readLoop(ctx, rd) })
	wg.Go(func() { s.ackLoop(ctx) })
	err = s.consume(ctx)
	cancel()
	wg.Wait()
	s.pump.close()
	if s.werrGet() != nil && errors.Is(err, net.ErrClosed) {
		err = fmt.Errorf("replica: write to source: %w", s.werrGet())
	}
	return err
}

// handshake runs PING, AUTH, REPLCONF and sends PSYNC; the reply to PSYNC
// is read by the decoder.
func (s *session) handshake(br *bufio.Reader) error {
	cfg := s.cfg
	reply, err := s.call(br, "PING")
	if err != nil {
		return err
	}
	if reply != nil && !errors.Is(reply, ErrAuth) {
		return reply // a refusal to authenticate means alive: AUTH comes next
	}
	if cfg.Password != "" {
		args := []string{"AUTH", cfg.Password}
		if cfg.Username != "" {
			args = []string{"AUTH", cfg.Username, cfg.Password}
		}
		reply, err := s.call(br, args...)
		if err != nil {
			return err
		}
		if reply != nil {
			return reply // wraps ErrAuth
		}
	}
	port := cfg.ListeningPort
	if port == 0 {
		if a, ok := s.conn.LocalAddr().(*net.TCPAddr); ok {
			port = a.Port
		}
	}
	for _, args := range [][]string{
		{"REPLCONF", "listening-port", strconv.Itoa(port)},
		{"REPLCONF", "capa", "eof", "capa", "psync2"},
	} {
		reply, err := s.call(br, args...)
		if err != nil {
			return err
		}
		var e resp.Error
		if errors.As(reply, &e) {
			if errors.Is(reply, ErrAuth) {
				return reply
			}
			// Redis replicas go on too: old masters did not know these.
			s.link.log.Warn("replica: source refused "+args[1], "reply", string(e))
		}
	}
	for _, args := range cfg.Handshake {
		reply, err := s.call(br, args...)
		if err != nil {
			return err
		}
		if reply != nil {
			return reply
		}
	}
	id, off := "?", int64(-1)
	if !s.resume.IsZero() {
		id, off = s.resume.ReplID, s.resume.Offset+1 // the first byte still needed
	}
	s.link.log.Info("replica: PSYNC", "replid", id, "offset", off)
	if err := s.write(resp.AppendCommandString(nil, "PSYNC", id, strconv.FormatInt(off, 10))); err != nil {
		return err
	}
	s.link.state.Store(int32(StatePSync))
	return nil
}

// call sends one handshake command and reads its reply: reply is nil for
// a status or other non-error reply, the sourceReply error for an error
// reply; err is an I/O or protocol error.
func (s *session) call(br *bufio.Reader, args ...string) (reply, err error) {
	if err := s.write(resp.AppendCommandString(nil, args...)); err != nil {
		return nil, err
	}
	if err := s.conn.SetReadDeadline(time.Now().Add(s.cfg.ReadTimeout)); err != nil {
		return nil, err
	}
	// Skip keepalive newlines a source may send while busy.
	for {
		b, err := br.Peek(1)
		if err != nil {
			return nil, fmt.Errorf("replica: reading reply to %s: %w", args[0], err)
		}
		if b[0] != '\n' && b[0] != '\r' {
			break
		}
		if _, err := br.Discard(1); err != nil {
			return nil, err
		}
	}
	raw, err := resp.ReadReply(br, nil, resp.Limits{MaxReply: 1 << 20, MaxBulk: 1 << 20})
	s.link.received.Add(int64(len(raw)))
	if err != nil {
		return nil, fmt.Errorf("replica: reading reply to %s: %w", args[0], err)
	}
	if raw[0] == resp.TypeError {
		return sourceReply(args[0], resp.Error(bytes.TrimRight(raw[1:], "\r\n"))), nil
	}
	return nil, nil
}

// write sends b with a deadline. Write errors are sticky and close the
// connection, which ends the Run through the reader.
func (s *session) write(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.werr != nil {
		return s.werr
	}
	err := s.conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	if err == nil {
		_, err = s.conn.Write(b)
	}
	if err != nil {
		s.werr = err
		s.conn.Close()
	}
	return err
}

func (s *session) werrGet() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.werr
}

// ack sends REPLCONF ACK with the acknowledged offset. Before there is
// one, it sends a newline keepalive while a snapshot is loading (Redis
// masters take an empty line from a replica as a sign of life, as Redis
// replicas do while loading) and nothing before that: a master delaying a
// diskless snapshot waits for its replicas to be idle
// (repl-diskless-sync-delay counts from their last interaction). Write
// errors end the Run.
func (s *session) ack() {
	off := s.ackOff.Load()
	var b []byte
	switch {
	case off >= 0:
		b = resp.AppendCommandString(make([]byte, 0, 64), "REPLCONF", "ACK", strconv.FormatInt(off, 10))
	case State(s.link.state.Load()) == StateLoading:
		b = []byte{'\n'}
	default:
		return
	}
	_ = s.write(b)
}

// ackLoop is the periodic ACK, like a Redis replica's replicationCron.
func (s *session) ackLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.AckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.ack()
		}
	}
}

// pauseLogEvery rate-limits the log line of a reader waiting for room.
const pauseLogEvery = 10 * time.Second

// paused is the queue's onPause: the reader stops reading from the source.
func (s *session) paused(spooled int64) {
	now := time.Now()
	if now.Sub(s.lastPauseLog) < pauseLogEvery {
		return
	}
	s.lastPauseLog = now
	if s.queue.spool != nil {
		s.link.log.Warn("replica: spool full, reading from the source paused until the destination catches up",
			"spooled", spooled, "spool_max", s.cfg.SpoolMaxBytes)
		return
	}
	s.link.log.Info("replica: queue full, reading from the source paused until the destination catches up",
		"queued", s.cfg.MaxQueueBytes)
}

// readLoop moves bytes from the socket to the queue, as fast as the queue
// (memory, then spool) has room. Its error reaches the consumer after the
// bytes before it.
func (s *session) readLoop(ctx context.Context, r io.Reader) {
	defer s.queue.closeWriter()
	for {
		p, err := s.queue.writable(ctx)
		if err != nil {
			s.queue.close(err)
			return
		}
		if err := s.conn.SetReadDeadline(time.Now().Add(s.cfg.ReadTimeout)); err != nil {
			s.queue.close(err)
			return
		}
		n, err := r.Read(p)
		if n > 0 {
			s.link.received.Add(int64(n))
			if cerr := s.queue.commit(n); cerr != nil {
				s.queue.close(cerr)
				return
			}
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && s.queue.pending() > 0 && ctx.Err() == nil {
				// Silence is expected while the Handler works through the
				// queue: a diskless source sends nothing after the payload
				// until we ACK it. Time out only with nothing pending.
				continue
			}
			if err == io.EOF {
				err = fmt.Errorf("replica: source closed the connection: %w", io.EOF)
			}
			s.queue.close(err)
			return
		}
	}
}

// consume drives the decoder and the Handler: it is the one goroutine
// that calls the Handler.
func (s *session) consume(ctx context.Context) error {
	l := s.link
	d := s.pump.d
	for {
		ev, err := s.pump.next(ctx)
		if err != nil {
			if State(l.state.Load()) == StateTransfer {
				if de := s.dropped(err, false); de != nil {
					return de // nothing loaded: a plain retry starts over
				}
			}
			return err
		}
		switch ev.kind {
		case evFullResync:
			l.setReplID(d.replID)
			l.state.Store(int32(StateTransfer))
			l.log.Info("replica: full resync", "replid", d.replID, "offset", d.start)
			if !s.resume.IsZero() {
				s.pos = Position{}
				return fmt.Errorf("%w: source answered +FULLRESYNC %s %d to PSYNC %s %d",
					ErrFullResync, d.replID, d.start, s.resume.ReplID, s.resume.Offset+1)
			}
			s.pos = Position{}
		case evContinue:
			l.setReplID(d.replID)
			l.log.Info("replica: partial resync", "replid", d.replID, "offset", d.start)
			s.startStream(d.replID, d.start)
			if err := l.h.Continue(ctx, d.replID, d.start); err != nil {
				return fmt.Errorf("%w: Continue: %w", ErrHandler, err)
			}
		case evRDBStart:
			if err := s.fullSync(ctx); err != nil {
				return err
			}
		case evCommands:
			b := ev.batch
			if len(b.Cmds) > 0 {
				if err := l.h.Apply(ctx, b.Cmds); err != nil {
					return fmt.Errorf("%w: Apply: %w", ErrHandler, err)
				}
				l.lastCommand.Store(time.Now().UnixNano())
			}
			s.pos.Offset = b.Offset
			l.appliedOff.Store(b.Offset)
			l.readOff.Store(d.stream.read())
			s.ackOff.Store(b.Offset)
			if b.GetAck {
				s.ack()
			}
		default:
			return fmt.Errorf("replica: internal error: unexpected %v event in state %v", ev.kind, d.state)
		}
	}
}

func (s *session) startStream(replID string, off int64) {
	l := s.link
	s.pos = Position{ReplID: replID, Offset: off}
	l.appliedOff.Store(off)
	l.readOff.Store(off)
	s.ackOff.Store(off)
	l.state.Store(int32(StateStreaming))
}

// fullSync hands the snapshot to the Handler.
func (s *session) fullSync(ctx context.Context) error {
	l, d := s.link, s.pump.d
	l.state.Store(int32(StateLoading))
	l.rdbSize.Store(d.size)
	l.rdbTransferred.Store(0)
	l.log.Info("replica: loading snapshot", "size", d.size)
	r := &rdbReader{s: s, ctx: ctx}
	herr := l.h.FullSync(ctx, d.replID, d.start, d.size, r)
	switch {
	case r.err != nil && errors.Is(r.err, ErrSpool):
		return r.err // Fatal: a restart flushes the partial load
	case r.err != nil:
		// The link broke under the Handler: what it loaded is partial.
		cause := r.err
		if de := s.dropped(r.err, true); de != nil {
			cause = de
		}
		return fmt.Errorf("%w: snapshot interrupted: %w", ErrFullResync, cause)
	case herr != nil:
		return fmt.Errorf("%w: FullSync: %w", ErrHandler, herr)
	case !r.done:
		return fmt.Errorf("%w: FullSync returned before the end of the snapshot", ErrHandler)
	}
	s.startStream(d.replID, d.start) // acked already when the payload ended
	l.log.Info("replica: snapshot loaded", "bytes", l.rdbTransferred.Load(), "offset", d.start)
	return nil
}

// dropped returns a *SnapshotDroppedError when err means the source closed
// the connection (an ACK that failed on a closed connection included), or
// nil.
func (s *session) dropped(err error, loading bool) *SnapshotDroppedError {
	if werr := s.werrGet(); werr != nil && errors.Is(err, net.ErrClosed) {
		err = werr
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) &&
		!errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		return nil
	}
	qs := s.queue.stats()
	return &SnapshotDroppedError{
		Loading:       loading,
		Transferred:   s.link.rdbTransferred.Load(),
		Size:          s.pump.d.size,
		Spool:         s.queue.spool != nil,
		SpoolMaxBytes: s.cfg.SpoolMaxBytes,
		Paused:        qs.everPaused,
		Err:           err,
	}
}

// rdbReader is the io.Reader FullSync gets: it yields the payload and
// nothing else.
type rdbReader struct {
	s       *session
	ctx     context.Context
	pending []byte
	done    bool
	err     error
}

func (r *rdbReader) Read(b []byte) (int, error) {
	for len(r.pending) == 0 {
		switch {
		case r.done:
			return 0, io.EOF
		case r.err != nil:
			return 0, r.err
		}
		ev, err := r.s.pump.next(r.ctx)
		if err != nil {
			r.err = err
			return 0, err
		}
		switch ev.kind {
		case evRDBData:
			r.pending = ev.data
		case evRDBEnd:
			r.done = true
			// A diskless source holds the stream back until this ACK.
			r.s.ackOff.Store(r.s.pump.d.start)
			r.s.ack()
		default:
			r.err = fmt.Errorf("replica: internal error: %v event inside the snapshot", ev.kind)
			return 0, r.err
		}
	}
	n := copy(b, r.pending)
	r.pending = r.pending[n:]
	r.s.link.rdbTransferred.Add(int64(n))
	return n, nil
}

// pump feeds the decoder from the queue. Every view an event holds stays
// valid until the next call to next.
type pump struct {
	q    *queue
	d    *decoder
	seg  segment
	have bool
	p    []byte
}

func (u *pump) next(ctx context.Context) (event, error) {
	for {
		n, ev, err := u.d.decode(u.p)
		u.p = u.p[n:]
		if err != nil {
			return event{}, err
		}
		if ev.kind != evNone {
			return ev, nil
		}
		u.close()
		seg, err := u.q.pop(ctx)
		if err != nil {
			return event{}, err
		}
		u.seg, u.have, u.p = seg, true, seg.data
	}
}

func (u *pump) close() {
	if u.have {
		u.q.release(u.seg)
		u.have = false
		u.p = nil
	}
}
