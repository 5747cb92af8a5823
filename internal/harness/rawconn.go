package harness

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/replicaof/replicaof/resp"
)

// RawConn is a plain TCP client that speaks bytes: for the input a
// client library would never send, and to see exactly when the server
// closes the connection (go-redis would reconnect behind the test's back).
// Conn and Reader are there for reads and writes of the test's own.
type RawConn struct {
	Conn   net.Conn
	Reader *bufio.Reader
	t      testing.TB
}

// DialRaw connects to addr on loopback and closes the connection at
// cleanup. Reads and writes fail 30 seconds after the dial unless the test
// sets other deadlines (Do sets its own).
func DialRaw(t testing.TB, addr string) *RawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	return &RawConn{Conn: nc, Reader: bufio.NewReader(nc), t: t}
}

// Send writes s as it is, failing the test on an error.
func (r *RawConn) Send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.Conn, s); err != nil {
		r.t.Fatal(err)
	}
}

// Expect reads len(want) bytes and fails the test unless they are want.
func (r *RawConn) Expect(want string) {
	r.t.Helper()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(r.Reader, got); err != nil || string(got) != want {
		r.t.Fatalf("got %q (%v), want %q", got, err, want)
	}
}

// ExpectPrefix reads one line and fails the test unless it starts with
// prefix.
func (r *RawConn) ExpectPrefix(prefix string) {
	r.t.Helper()
	line, err := r.Reader.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, prefix) {
		r.t.Fatalf("got %q (%v), want %q…", line, err, prefix)
	}
}

// Do sends one command, encoded as a RESP array, and returns its raw
// reply, within 10 seconds.
func (r *RawConn) Do(args ...string) (string, error) {
	_ = r.Conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.Conn.Write(resp.AppendCommandString(nil, args...)); err != nil {
		return "", err
	}
	reply, err := resp.ReadReply(r.Reader, nil, resp.Limits{})
	return string(reply), err
}
