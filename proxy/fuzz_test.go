package proxy

import (
	"bufio"
	"bytes"
	"context"
	"github.com/replicaof/replicaof/internal/harness"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/replicaof/replicaof/resp"
)

// fakeShard is an in-process stand-in for a shard that answers every
// command with a plausible reply of the right shape, so the proxy's
// dispatch and merge paths run without redis-server.
type fakeShard struct {
	ln net.Listener
	wg sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]bool
}

func startFakeShard(t testing.TB) *fakeShard {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeShard{ln: ln, conns: map[net.Conn]bool{}}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns[nc] = true
			f.mu.Unlock()
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				f.serve(nc)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for nc := range f.conns {
			nc.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func (f *fakeShard) serve(nc net.Conn) {
	defer nc.Close()
	br := bufio.NewReader(nc)
	bw := bufio.NewWriter(nc)
	var cmd resp.Command
	inMulti := false
	for {
		if err := resp.ReadCommand(br, &cmd, resp.Limits{}); err != nil {
			return
		}
		if len(cmd.Args) == 0 {
			continue
		}
		var out []byte
		name := strings.ToLower(string(cmd.Args[0]))
		switch {
		case inMulti && name != "exec":
			out = resp.AppendSimple(out, "QUEUED")
		case name == "multi":
			inMulti = true
			out = resp.AppendSimple(out, "OK")
		case name == "exec":
			inMulti = false
			out = resp.AppendArray(out, 0)
		case name == "get" || name == "randomkey":
			out = resp.AppendNull(out)
		case name == "mget":
			out = resp.AppendArray(out, len(cmd.Args)-1)
			for range cmd.Args[1:] {
				out = resp.AppendNull(out)
			}
		case name == "exists" || name == "touch" || name == "del" || name == "unlink" || name == "dbsize":
			out = resp.AppendInt(out, 0)
		case name == "scan":
			out = resp.AppendArray(out, 2)
			out = resp.AppendBulkString(out, "0")
			out = resp.AppendArray(out, 1)
			out = resp.AppendBulkString(out, "__replicaof:hidden")
		case name == "keys":
			out = resp.AppendArray(out, 1)
			out = resp.AppendBulkString(out, "k")
		case name == "info":
			out = resp.AppendBulkString(out, "# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\n")
		case strings.HasSuffix(name, "subscribe"):
			for _, ch := range cmd.Args[1:] {
				out = resp.AppendArray(out, 3)
				out = resp.AppendBulkString(out, name)
				out = resp.AppendBulk(out, ch)
				out = resp.AppendInt(out, 1)
			}
		default:
			out = resp.AppendSimple(out, "OK")
		}
		bw.Write(out)
		if br.Buffered() == 0 {
			if bw.Flush() != nil {
				return
			}
		}
	}
}

func startFakeProxy(t testing.TB, mut func(*Config)) *Server {
	var addrs []string
	for i := 0; i < 3; i++ {
		addrs = append(addrs, startFakeShard(t).ln.Addr().String())
	}
	cfg := Config{Listen: "127.0.0.1:0", Destination: harness.Destination(t, addrs...), Timeout: 2 * time.Second,
		Limits: resp.Limits{MaxBulk: 1 << 20, MaxArray: 1 << 10, MaxInline: 1 << 10}, Loops: *testLoops}
	if mut != nil {
		mut(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return srv
}

// FuzzProxy feeds arbitrary client bytes, in two writes, through the
// input guard and command dispatch of a proxy over fake shards. The proxy
// must answer or close within the deadline, and keep serving others.
func FuzzProxy(f *testing.F) {
	for _, s := range []string{
		"PING\r\n",
		"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
		"*1\r\n$9223372036854775807\r\n",
		"*9223372036854775807\r\n",
		"*1\r\n$-5\r\n",
		"MGET a b c d e f\r\nEXISTS a b c\r\nKEYS *\r\nSCAN 0\r\nSCAN 2 COUNT 5\r\nDBSIZE\r\nRANDOMKEY\r\n",
		"MULTI\r\nGET {a}1\r\nGET {a}2\r\nEXEC\r\nMULTI\r\nGET a\r\nGET b\r\nEXEC\r\n",
		"SUBSCRIBE a b\r\nPSUBSCRIBE x*\r\nPING\r\nUNSUBSCRIBE\r\nPUNSUBSCRIBE\r\nGET a\r\n",
		"HELLO 3\r\nHELLO 2 SETNAME x\r\nCLIENT SETINFO LIB-NAME y\r\nCLIENT INFO\r\nINFO\r\n",
		"SELECT 3\r\nGET a\r\nSELECT 99\r\nAUTH x\r\nSET a b\r\nEVAL x 1 a\r\nQUIT\r\n",
		"GET __replicaof:x\r\nMGET __replicaof:a b\r\n",
		"\r\n\n*0\r\n*-1\r\n",
		"AUTH admin pw\r\nREPLCONF rof-shard 1\r\nREPLCONF rof-compress gzip 6\r\nREPLCONF capa eof\r\nINFO replication\r\nPSYNC ? -1\r\nREPLCONF ACK 5\r\n",
		"AUTH admin pw\r\nSYNC\r\n",
		"BLPOP a 0.01\r\nXREAD BLOCK 1 STREAMS s $\r\nBLPOP a b 1\r\nGET a\r\n",
		"WATCH a\r\nMULTI\r\nGET a\r\nEXEC\r\nWATCH a b\r\nUNWATCH\r\nWATCH {x}1\r\nDISCARD\r\n",
		"SCRIPT LOAD x\r\nSCRIPT EXISTS a b\r\nFUNCTION LIST\r\nFUNCTION STATS\r\nSCRIPT KILL\r\nFUNCTION NOPE\r\n",
		"FLUSHDB\r\nFLUSHALL ASYNC\r\nTIME\r\nPUBSUB NUMSUB a b\r\nPUBSUB NUMPAT\r\nPUBSUB CHANNELS\r\n",
		"CLIENT REPLY OFF\r\nGET a\r\nCLIENT REPLY SKIP\r\nPING\r\nCLIENT REPLY ON\r\nCLIENT NO-EVICT on\r\nCLIENT NO-TOUCH on\r\n",
		"EVAL \"return 1\" 0\r\nSET 'a b' \"\\x41\\n\"\r\nGET \"unbalanced\r\n",
		"INFO\r\nINFO memory cpu\r\nNOSUCH a\r\nOBJECT NOSUCH\r\n",
		"AUTH admin nope\r\nPSYNC ? -1\r\nHELLO 2 AUTH admin pw\r\nREPLCONF rof-shard 9\r\nREPLCONF x y\r\n",
	} {
		f.Add([]byte(s), uint8(len(s)/2))
	}
	// A unix socket: fuzzing opens a connection per input, more than
	// there are ephemeral TCP ports in TIME_WAIT's window.
	sock := filepath.Join(f.TempDir(), "proxy.sock")
	srv := startFakeProxy(f, func(cfg *Config) {
		cfg.Listen = "unix:" + sock
		cfg.AdminPassword = func() string { return "pw" } // PSYNC relays to a fake shard
	})
	addr := srv.Addr().String()
	f.Fuzz(func(t *testing.T, in []byte, cut uint8) {
		nc, err := net.Dial("unix", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		at := min(int(cut), len(in))
		nc.Write(in[:at])
		nc.Write(in[at:])
		nc.(*net.UnixConn).CloseWrite()
		// The proxy answers and closes on EOF; a hang trips the deadline.
		if _, err := io.Copy(io.Discard, nc); err != nil && !isReset(err) {
			t.Fatalf("no end of replies: %v", err)
		}
	})
}

// TestComplete cuts commands at every offset: a prefix is never complete,
// the whole always is.
func TestComplete(t *testing.T) {
	lim := resp.Limits{}.WithDefaults()
	for _, s := range []string{
		"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
		"*3\r\n$3\r\nSET\r\n$0\r\n\r\n$5\r\nhello\r\n",
		"PING\r\n",
		"GET k\n",
	} {
		for i := 0; i < len(s); i++ {
			if complete([]byte(s[:i]), lim) {
				t.Errorf("%q complete at %d", s, i)
			}
		}
		if !complete([]byte(s), lim) || !complete([]byte(s+"*1\r\n"), lim) {
			t.Errorf("%q not complete", s)
		}
	}
	// Malformed input is "complete": ReadCommand rejects it without waiting.
	for _, s := range []string{"*x\r\n", "*1\r\n$-2\r\n", "*1\r\nGET\r\n", "*1\r\n$9223372036854775807\r\n"} {
		if !complete([]byte(s), lim) {
			t.Errorf("%q should end the wait", s)
		}
		if err := resp.ReadCommand(bufio.NewReader(bytes.NewReader([]byte(s))), &resp.Command{}, lim); err == nil || err == io.EOF {
			t.Errorf("%q: ReadCommand %v", s, err)
		}
	}
}
