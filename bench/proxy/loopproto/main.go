//go:build linux

// Command loopproto is the event-loop prototype of issue 19, kept to
// measure internal/evloop against nutcracker (bench/proxy/loopproto/run.sh):
// it forwards GET and SET of plain RESP clients to shards by hash slot
// (router.Slot over router.EvenSlotMap) and answers PING itself; every
// other command gets an error. It is not the proxy: no AUTH, no limits
// but the loop's, no reconnect (a shard error ends it).
//
// Each of -loops event loops owns the clients handed to it (round robin
// from one acceptor goroutine) and its own pipelined connection to every
// shard. A client's commands are written to the shard connections as
// they are framed; the loop writes each shard's batch once per pass, and
// every client's replies, in request order, at the end of the pass that
// brought them.
//
//	loopproto -listen 127.0.0.1:7000 -shards 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 -loops 1
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/replicaof/replicaof/internal/evloop"
	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/router"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:7000", "address to listen on")
	shards := flag.String("shards", "", "comma-separated shard addresses, in slot order")
	loops := flag.Int("loops", 1, "event loops")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "loopproto:", err)
			os.Exit(1)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", *listen)
	if err == nil {
		err = run(ctx, ln, strings.Split(*shards, ","), *loops)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loopproto:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// run serves ln until ctx ends or a loop fails, then closes ln and stops
// the loops.
func run(ctx context.Context, ln net.Listener, addrs []string, nloops int) error {
	var wg sync.WaitGroup
	var loops []*loop
	defer func() {
		ln.Close()
		for _, lp := range loops {
			lp.l.Stop()
		}
		wg.Wait()
	}()
	smap, err := router.EvenSlotMap(len(addrs))
	if err != nil {
		return err
	}
	fail := make(chan error, nloops+1)
	for range nloops {
		l, err := evloop.New(evloop.Config{})
		if err != nil {
			return err
		}
		lp := &loop{l: l, smap: smap, fail: fail}
		loops = append(loops, lp)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Run(); err != nil {
				fail <- err
			}
		}()
		for i, a := range addrs {
			nc, err := net.DialTimeout("tcp", a, 5*time.Second)
			if err != nil {
				return err
			}
			fd, err := evloop.Detach(nc)
			if err != nil {
				return err
			}
			sh := &shard{lp: lp, i: i}
			lp.shards = append(lp.shards, sh)
			done := make(chan error, 1)
			if err := l.Execute(func() {
				c, err := l.Attach(fd, sh, evloop.Limits{PauseOutput: -1})
				sh.c = c
				done <- err
			}); err != nil {
				return err
			}
			if err := <-done; err != nil {
				return err
			}
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			nc, err := ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					fail <- err
				}
				return
			}
			fd, err := evloop.Detach(nc)
			if err != nil {
				fail <- err
				return
			}
			lp := loops[i%len(loops)]
			if lp.l.Execute(func() { lp.attach(fd) }) != nil {
				syscall.Close(fd)
			}
		}
	}()
	select {
	case <-ctx.Done():
		return nil
	case err := <-fail:
		return err
	}
}

type loop struct {
	l      *evloop.Loop
	smap   *router.SlotMap
	shards []*shard
	fail   chan error
	args   [][]byte
}

// failed reports err to run, which stops; the loop never blocks on it.
func (lp *loop) failed(err error) {
	select {
	case lp.fail <- err:
	default:
	}
}

func (lp *loop) attach(fd int) {
	cl := &client{lp: lp}
	c, err := lp.l.Attach(fd, cl, evloop.Limits{})
	if err != nil {
		syscall.Close(fd)
		return
	}
	cl.c = c
}

// A shard is a loop's pipelined connection to one shard: the clients
// waiting for its replies, oldest first.
type shard struct {
	lp      *loop
	i       int
	c       *evloop.Conn
	waiting []waiter
	head    int
}

type waiter struct {
	cl  *client
	seq uint64
}

func (sh *shard) send(cl *client, seq uint64, cmd []byte) {
	sh.c.Write(cmd)
	sh.waiting = append(sh.waiting, waiter{cl, seq})
}

func (sh *shard) Data(c *evloop.Conn, b []byte) int {
	off := 0
	for off < len(b) {
		n, err := resp.ReplyLen(b[off:], resp.DefaultLimits)
		if err == resp.ErrIncomplete {
			break
		}
		if err != nil || sh.head == len(sh.waiting) {
			sh.lp.failed(fmt.Errorf("shard %d: %v (or an unexpected reply)", sh.i, err))
			c.Abort(err)
			return 0
		}
		w := sh.waiting[sh.head]
		sh.waiting[sh.head] = waiter{}
		sh.head++
		w.cl.reply(w.seq, b[off:off+n])
		off += n
	}
	if sh.head == len(sh.waiting) {
		sh.waiting, sh.head = sh.waiting[:0], 0
	}
	return off
}

func (sh *shard) EOF(c *evloop.Conn) {
	sh.lp.failed(fmt.Errorf("shard %d closed the connection", sh.i))
	c.Close()
}

func (sh *shard) Closed(c *evloop.Conn, err error) {
	if err != nil && !errors.Is(err, evloop.ErrClosed) {
		sh.lp.failed(fmt.Errorf("shard %d: %w", sh.i, err))
	}
}

// A client is one plain RESP client. Its replies are written in request
// order: seq numbers its requests, and replies that arrive before an
// earlier one's (from another shard) wait in slots.
type client struct {
	lp     *loop
	c      *evloop.Conn
	framer *resp.CommandFramer
	next   uint64 // seq of the next request
	base   uint64 // seq of slots[head]
	slots  []slot
	head   int
	dead   bool
}

// maxInflight bounds a client's unanswered requests: past it the client is
// not read until half of them are answered.
const maxInflight = 1 << 16

type slot struct {
	ready bool
	buf   []byte
}

var (
	pong        = []byte("+PONG\r\n")
	unsupported = []byte("-ERR loopproto serves GET, SET and PING only\r\n")
	emptyArray  = []byte("*0\r\n")
)

func (cl *client) Data(c *evloop.Conn, b []byte) int {
	if cl.framer == nil {
		cl.framer = resp.NewCommandFramer(resp.DefaultLimits)
	}
	off := 0
	for off < len(b) {
		if len(cl.slots)-cl.head >= maxInflight {
			c.PauseRead()
			break
		}
		n, err := cl.framer.Next(b[off:])
		if err == resp.ErrIncomplete {
			break
		}
		if err != nil {
			c.Write([]byte("-ERR Protocol error\r\n"))
			c.Close()
			return len(b)
		}
		cmd := b[off : off+n]
		args := cl.framer.Args(cmd, cl.lp.args[:0])
		cl.lp.args = args
		off += n
		seq := cl.next
		cl.next++
		cl.slots = append(cl.slots, slot{})
		switch {
		case len(args) >= 2 && (bytes.EqualFold(args[0], []byte("GET")) || bytes.EqualFold(args[0], []byte("SET"))):
			cl.lp.shards[cl.lp.smap.ShardOf(args[1])].send(cl, seq, cmd)
		case len(args) >= 1 && bytes.EqualFold(args[0], []byte("PING")):
			cl.reply(seq, pong)
		case len(args) >= 1 && bytes.EqualFold(args[0], []byte("CONFIG")):
			cl.reply(seq, emptyArray)
		default:
			cl.reply(seq, unsupported)
		}
	}
	return off
}

// reply delivers the reply to request seq: written at once if it is the
// oldest one unanswered, else held until the earlier ones are.
func (cl *client) reply(seq uint64, r []byte) {
	if cl.dead {
		return
	}
	i := cl.head + int(seq-cl.base)
	if i != cl.head {
		s := &cl.slots[i]
		s.buf = append(s.buf[:0], r...)
		s.ready = true
		return
	}
	cl.c.Write(r)
	cl.slots[cl.head] = slot{}
	cl.head++
	cl.base++
	for cl.head < len(cl.slots) && cl.slots[cl.head].ready {
		cl.c.Write(cl.slots[cl.head].buf)
		cl.slots[cl.head] = slot{}
		cl.head++
		cl.base++
	}
	if cl.head == len(cl.slots) {
		cl.slots, cl.head = cl.slots[:0], 0
		if cl.c.EOF() {
			cl.c.Close()
		}
	}
	if len(cl.slots)-cl.head < maxInflight/2 {
		cl.c.ResumeRead()
	}
}

func (cl *client) EOF(c *evloop.Conn) {
	if cl.head == len(cl.slots) {
		c.Close()
	}
}

func (cl *client) Closed(c *evloop.Conn, err error) { cl.dead = true }
