package integration

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// InstallHint is what a test failing for want of Redis tells the reader.
const InstallHint = "install it with `apt-get install -y redis-server redis-tools` (or set REDIS_SERVER to its path)"

// Redis is one redis-server process started for a test.
type Redis struct {
	Addr string // 127.0.0.1:port
	Port int
	Dir  string // its working directory: dump.rdb, appendonly files, log

	t       testing.TB
	bin     string
	args    []string
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	clients []*redis.Client
}

// ServerBinary returns the redis-server to use, or fails t.
func ServerBinary(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("REDIS_SERVER"); bin != "" {
		return bin
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found in PATH: %s", InstallHint)
	}
	return bin
}

// StartRedis starts a redis-server on a free 127.0.0.1 port with its own
// temporary directory, waits until it answers PING, and stops it when the
// test ends. extra holds more `--name value` arguments. When the test
// fails, the server's log is printed.
func StartRedis(t testing.TB, extra ...string) *Redis {
	t.Helper()
	r := &Redis{t: t, bin: ServerBinary(t), Dir: t.TempDir()}
	r.args = extra
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("integration: no free port: %v", err)
		}
		r.Port, r.Addr = port, net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = r.start(); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		r.printLog()
		t.Fatalf("integration: redis-server did not start: %v", lastErr)
	}
	t.Cleanup(func() {
		if t.Failed() {
			r.printLog()
		}
		for _, c := range r.clients {
			c.Close()
		}
		r.Kill()
	})
	return r
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (r *Redis) logPath() string { return filepath.Join(r.Dir, "redis.log") }

func (r *Redis) start() error {
	args := []string{
		"--bind", "127.0.0.1", "--port", strconv.Itoa(r.Port),
		"--dir", r.Dir, "--logfile", r.logPath(),
		"--save", "", "--appendonly", "no",
		"--protected-mode", "no", "--daemonize", "no",
	}
	args = append(args, r.args...)
	cmd := exec.Command(r.bin, args...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w (%s)", r.bin, err, InstallHint)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	r.mu.Lock()
	r.cmd, r.exited = cmd, exited
	r.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("redis-server on port %d exited at start", r.Port)
		default:
		}
		if pingOK(r.Addr) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.Kill()
	return fmt.Errorf("redis-server on port %d not ready after 10s", r.Port)
}

// pingOK reports whether a server at addr answers PING with PONG (or is
// alive but asks for AUTH), on a raw connection with a short deadline.
func pingOK(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	return bytes.HasPrefix(buf[:n], []byte("+PONG")) || bytes.HasPrefix(buf[:n], []byte("-NOAUTH"))
}

// Client returns a go-redis client for db 0 (RESP2), closed at cleanup.
func (r *Redis) Client() *redis.Client { return r.ClientDB(0) }

// ClientDB returns a go-redis client for database db, closed at cleanup.
func (r *Redis) ClientDB(db int) *redis.Client {
	c := redis.NewClient(&redis.Options{
		Addr: r.Addr, DB: db, Protocol: 2,
		DialTimeout: 2 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		MaxRetries: -1,
	})
	r.mu.Lock()
	r.clients = append(r.clients, c)
	r.mu.Unlock()
	return c
}

// Kill stops the server with SIGKILL and waits for it to exit.
func (r *Redis) Kill() {
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// Restart kills the server and starts it again on the same port and
// directory (so it reloads what it persisted, if anything).
func (r *Redis) Restart() {
	r.t.Helper()
	r.Kill()
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if err = r.start(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond) // the port can linger briefly
	}
	r.printLog()
	r.t.Fatalf("integration: restart of redis on %s: %v", r.Addr, err)
}

// Log returns the server's log so far.
func (r *Redis) Log() string {
	b, _ := os.ReadFile(r.logPath())
	return string(b)
}

func (r *Redis) printLog() {
	log := r.Log()
	if len(log) > 8000 {
		log = "…" + log[len(log)-8000:]
	}
	r.t.Logf("redis-server %s log:\n%s", r.Addr, strings.TrimSpace(log))
}

// WaitFor polls cond every 10ms until it holds or timeout passes, then
// fails t with msg. Use it instead of sleeping.
func WaitFor(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %s", timeout, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Context returns a context canceled when the test ends or after timeout.
func Context(t testing.TB, timeout time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

func itoa(n int) string { return strconv.Itoa(n) }

func contains(s, sub string) bool { return strings.Contains(s, sub) }
