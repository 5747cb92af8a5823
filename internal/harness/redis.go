package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/internal/redisproc"
)

// InstallHint is what a test failing for want of Redis tells the reader.
const InstallHint = redisproc.InstallHint

// Redis is one redis-server process started for a test.
type Redis struct {
	*redisproc.Proc
	// Password is the AUTH password Client and ClientDB use ("" for none);
	// StartClusterWith sets it on the nodes of a cluster with a password.
	Password string

	t       testing.TB
	mu      sync.Mutex
	clients []*redis.Client
}

// ServerBinary returns the redis-server to use, or fails t.
func ServerBinary(t testing.TB) string {
	t.Helper()
	bin, err := redisproc.Binary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// StartRedis starts a redis-server on a free 127.0.0.1 port with its own
// temporary directory, waits until it answers PING, and stops it when the
// test ends. extra holds more `--name value` arguments. When the test
// fails, the server's log is printed.
func StartRedis(t testing.TB, extra ...string) *Redis {
	t.Helper()
	r, err := start(t, t.TempDir(), extra...)
	if err != nil {
		t.Fatalf("harness: redis-server did not start: %v", err)
	}
	return r
}

// start runs a redis-server in dir, stopped at cleanup; an error carries
// the server's log.
func start(t testing.TB, dir string, extra ...string) (*Redis, error) {
	p, err := redisproc.Start(ServerBinary(t), dir, extra...)
	if err != nil {
		b, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
		return nil, fmt.Errorf("%w\n%s", err, b)
	}
	r := &Redis{Proc: p, t: t}
	t.Cleanup(func() {
		if t.Failed() {
			r.printLog()
		}
		r.mu.Lock()
		for _, c := range r.clients {
			c.Close()
		}
		r.mu.Unlock()
		r.Kill()
	})
	return r, nil
}

// Client returns a new go-redis client for db 0 (RESP2), closed at
// cleanup. Each call makes a new client: keep it rather than calling Client
// in a loop.
func (r *Redis) Client() *redis.Client { return r.ClientDB(0) }

// ClientDB returns a go-redis client for database db, closed at cleanup.
func (r *Redis) ClientDB(db int) *redis.Client {
	c := redis.NewClient(&redis.Options{
		Addr: r.Addr, DB: db, Password: r.Password, Protocol: 2,
		DialTimeout: 2 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		MaxRetries: -1,
	})
	r.mu.Lock()
	r.clients = append(r.clients, c)
	r.mu.Unlock()
	return c
}

// Restart kills the server and starts it again on the same port and
// directory (so it reloads what it persisted, if anything).
func (r *Redis) Restart() {
	r.t.Helper()
	if err := r.Proc.Restart(); err != nil {
		r.printLog()
		r.t.Fatalf("harness: restart of redis on %s: %v", r.Addr, err)
	}
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

// StartServers starts n redis-servers as StartRedis does, each with the
// same extra arguments: the shards of a destination, or a set of sources.
// The caller builds whatever map or destination it places keys with.
func StartServers(t testing.TB, n int, extra ...string) []*Redis {
	t.Helper()
	out := make([]*Redis, n)
	for i := range out {
		out[i] = StartRedis(t, extra...)
	}
	return out
}

// StartReplica starts a redis-server as StartRedis does, a replica of
// primary (--replicaof); it does not wait for the link to come up.
func StartReplica(t testing.TB, primary *Redis, extra ...string) *Redis {
	t.Helper()
	return StartRedis(t, append([]string{"--replicaof", "127.0.0.1", strconv.Itoa(primary.Port)}, extra...)...)
}

// Addrs returns the servers' host:port addresses, in order.
func Addrs(servers []*Redis) []string {
	out := make([]string, len(servers))
	for i, s := range servers {
		out[i] = s.Addr
	}
	return out
}

// Clients returns one new client per server for database db, in order,
// each closed at cleanup.
func Clients(servers []*Redis, db int) []*redis.Client {
	out := make([]*redis.Client, len(servers))
	for i, s := range servers {
		out[i] = s.ClientDB(db)
	}
	return out
}
