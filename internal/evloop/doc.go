// Package evloop is a thin event loop over Linux epoll: one goroutine
// owns many non-blocking sockets, reads each once per readable event
// (level-triggered), hands the bytes to a Handler, and writes everything
// the pass produced at the end of the pass, one write (or writev) per
// socket. It is the candidate client side of the proxy's event loops
// (issue 19): a loop owning its client sockets and its own pipelined
// connection to every shard forwards a request and answers it on one
// thread, and shard writes made while handling a pass's events go out as
// one batch per shard.
//
// # A pass
//
// Run waits in epoll_wait, then for every ready socket reads once into a
// loop-wide buffer and calls Handler.Data with the socket's unconsumed
// input (what Data left last time, followed by the new bytes). Data
// returns how many bytes it consumed; the rest is kept (bounded by
// Limits.MaxInput) and passed again, grown, after the next read. Conn.Write
// only appends to the socket's pending output; after every event of the
// pass is handled, Config.Pass runs and then every socket written to is
// flushed. A socket the kernel will not take everything from waits for
// EPOLLOUT while the rest goes on. Functions passed to Execute (from any
// goroutine) run on the loop, woken through an eventfd.
//
// # What the loop guarantees
//
//   - Backpressure: PauseRead stops reading a socket (its pending input is
//     delivered again after ResumeRead), and a socket whose pending output
//     reaches Limits.PauseOutput is not read until a flush takes it below
//     half of that; past Limits.MaxOutput it is closed with
//     ErrOutputTooLarge. Input a handler leaves unconsumed past
//     Limits.MaxInput closes it with ErrInputTooLarge.
//   - Half-close: when the peer shuts down its writing side the loop stops
//     reading, calls Handler.EOF and keeps the socket writable, so a
//     client that sent its commands and closed its input (nc, piped
//     input) still gets its replies; input a busy handler left
//     unconsumed is kept (Redeliver hands it over again), and the
//     handler calls Close once it has written the replies.
//   - Timers: After runs a function on the loop once a duration has
//     passed (epoll_wait sleeps until the next one), StopTimer cancels
//     it; Now is the pass's clock, one time.Now per pass. Handlers use
//     them for deadlines (a shard's reply timeout, the idle timeout)
//     without a goroutine or a timer per socket.
//   - Close writes the pending output first; Abort drops it. Neither
//     calls Handler.Closed on the spot: Closed runs once, later in the
//     same pass, so a handler never re-enters itself, and the socket's
//     descriptor is closed at the end of the pass, so its number cannot
//     be reused while events of the pass still name it.
//   - Release hands a socket over to a goroutine (TLS, pub/sub, the
//     replication relay) with the input the loop had buffered for it;
//     TakeOutput first takes the output not yet written, for the
//     goroutine to write.
//   - Stop (from any goroutine) ends Run after the current pass: every
//     socket is closed (Closed gets ErrClosed) and the loop's own
//     descriptors too.
//
// Everything but Execute and Stop must be called on the loop's goroutine:
// from a Handler, from Config.Pass, or from a function given to Execute.
// Linux only (epoll, eventfd).
package evloop
