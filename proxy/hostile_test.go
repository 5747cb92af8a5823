package proxy

import (
	"bytes"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/replicaof/replicaof/internal/harness"
)

// TestHostileInput sends input that crashes or wedges naive parsers; each
// gets a protocol error (or a close) for its own connection only, while
// another client keeps being served.
func TestHostileInput(t *testing.T) {
	c := newCluster(t, nil)
	ctx := harness.Context(t, 2*time.Minute)
	c.put(ctx, "k", "v")
	other := harness.DialRaw(t, c.addr)
	other.Send("GET k\r\n")
	other.Expect("$1\r\nv\r\n")

	for _, tc := range []struct{ name, in string }{
		{"bulk length max int64", "*1\r\n$9223372036854775807\r\n"},
		{"bulk length over 512MB", "*1\r\n$536870913\r\n"},
		{"negative bulk length", "*1\r\n$-5\r\n"},
		{"non-numeric bulk length", "*1\r\n$abc\r\n"},
		{"array count max int64", "*9223372036854775807\r\n"},
		{"array count over 1M", "*1048577\r\n"},
		{"non-numeric array count", "*x1\r\n"},
		{"overflowing array count", "*99999999999999999999999\r\n"},
		{"missing dollar", "*1\r\nGET\r\n"},
		{"bulk without CRLF", "*1\r\n$3\r\nGETXX"},
		{"inline line over 64KB", strings.Repeat("a", 70<<10) + "\r\n"},
		{"bare LF in header", "*1\n$3\r\nGET\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := harness.DialRaw(t, c.addr)
			r.Send(tc.in)
			line, err := r.Reader.ReadString('\n')
			if err == nil && !strings.HasPrefix(line, "-ERR Protocol error") {
				t.Fatalf("reply %q", line)
			}
			// Then the proxy closes this client.
			if _, err := io.Copy(io.Discard, r.Reader); err != nil && !isReset(err) {
				t.Fatalf("not closed: %v", err)
			}
			other.Send("PING\r\n")
			other.Expect("+PONG\r\n")
		})
	}

	t.Run("100MB inline line without newline", func(t *testing.T) {
		r := harness.DialRaw(t, c.addr)
		chunk := bytes.Repeat([]byte("x"), 1<<20)
		// The proxy stops reading at 64 KB; writes may then fail.
		go func() {
			for i := 0; i < 100; i++ {
				if _, err := r.Conn.Write(chunk); err != nil {
					return
				}
			}
		}()
		line, err := r.Reader.ReadString('\n')
		if err == nil && !strings.HasPrefix(line, "-ERR Protocol error") {
			t.Fatalf("reply %q", line)
		}
		other.Send("GET k\r\n")
		other.Expect("$1\r\nv\r\n")
	})

	t.Run("half a command then silence does not block others", func(t *testing.T) {
		r := harness.DialRaw(t, c.addr)
		r.Send("*2\r\n$3\r\nGET\r\n$100\r\nabc")
		other.Send("PING\r\n")
		other.Expect("+PONG\r\n")
	})
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "broken pipe")
}

// TestRedisCLI drives the proxy with redis-cli, as a person would.
func TestRedisCLI(t *testing.T) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redis-cli not found: %s", harness.InstallHint)
	}
	c := newCluster(t, func(cfg *Config) { cfg.AllowWrites = true })
	host, port, _ := net.SplitHostPort(c.addr)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(cli, append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("redis-cli %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := run("PING"); got != "PONG" {
		t.Fatalf("PING: %q", got)
	}
	run("MSET", "a", "1", "b", "2", "c", "3", "d", "4")
	if got := run("MGET", "d", "c", "b", "a"); got != "4\n3\n2\n1" {
		t.Fatalf("MGET: %q", got)
	}
	if got := run("DBSIZE"); got != "4" {
		t.Fatalf("DBSIZE: %q", got)
	}
	if got := strings.Fields(run("--scan")); len(got) != 4 {
		t.Fatalf("--scan: %q", got)
	}
	if got := run("CONFIG", "GET", "save"); !strings.Contains(got, "unsupported command") {
		t.Fatalf("CONFIG: %q", got)
	}
	if got := run("INFO", "keyspace"); !strings.Contains(got, "db0:keys=4") {
		t.Fatalf("INFO: %q", got)
	}
	// Inline commands through stdin, pipelined.
	cmd := exec.Command(cli, "-h", host, "-p", port)
	cmd.Stdin = strings.NewReader("GET a\nGET b\nECHO hi\n")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "1\n2\nhi" {
		t.Fatalf("stdin: %q %v", out, err)
	}
}
