package replica

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/internal/errclass"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/syncer/rdb"
)

// rdbRecorder is a recorder whose FullSync parses the snapshot with the rdb
// package (which checks the CRC64 trailer, so a payload with a byte too
// many or too few fails) and counts its keys.
type rdbRecorder struct {
	recorder
	keys     int
	trailing int64 // bytes after the RDB's end: must be 0
	size     int64
	fulls    int
}

func (r *rdbRecorder) FullSync(ctx context.Context, replID string, offset, size int64, body io.Reader) error {
	p := rdb.NewParser(body, rdb.Options{})
	keys := 0
	for {
		e, err := p.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if _, ok := e.(*rdb.Key); ok {
			keys++
		}
	}
	rest, err := io.Copy(io.Discard, body)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf("fullsync %d", offset))
	r.keys, r.trailing, r.size = keys, rest, size
	r.fulls++
	return nil
}

func (r *rdbRecorder) get() (keys int, trailing, size int64, events []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.keys, r.trailing, r.size, append([]string(nil), r.events...)
}

var slaveOffsetRE = regexp.MustCompile(`slave0:.*offset=(\d+)`)

// replInfo returns the source's master_repl_offset and the offset its
// first replica acknowledged (-1 when none).
func replInfo(t *testing.T, ctx context.Context, c *redis.Client) (master, acked int64) {
	t.Helper()
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	acked = -1
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "master_repl_offset:"); ok {
			master, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if m := slaveOffsetRE.FindStringSubmatch(info); m != nil {
		acked, _ = strconv.ParseInt(m[1], 10, 64)
	}
	return master, acked
}

func integrationConfig(t *testing.T, addr string) Config {
	cfg := testConfig(t, addr)
	cfg.AckInterval = 0 // the default second, like a Redis replica
	return cfg
}

func TestIntegrationFullSync(t *testing.T) {
	for _, mode := range []struct {
		name string
		args []string
	}{
		{"disk", []string{"--repl-diskless-sync", "no"}},
		{"diskless", []string{"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			src := harness.StartRedis(t, mode.args...)
			ctx := harness.Context(t, 60*time.Second)
			c := src.Client()
			if err := harness.LoadDataset(ctx, c, "ds:", 1, 300); err != nil {
				t.Fatal(err)
			}
			dbsize, err := c.DBSize(ctx).Result()
			if err != nil {
				t.Fatal(err)
			}
			h := &rdbRecorder{}
			l := New(integrationConfig(t, src.Addr), h)
			startLink(t, l, Position{})
			harness.WaitFor(t, 20*time.Second, "snapshot loaded", func() bool { return l.Stats().State == StateStreaming })
			keys, trailing, size, _ := h.get()
			if int64(keys) != dbsize || trailing != 0 {
				t.Fatalf("snapshot: %d keys (source has %d), %d trailing bytes", keys, dbsize, trailing)
			}
			st := l.Stats()
			if mode.name == "disk" && (size <= 0 || st.RDBSize != size || st.RDBTransferred != size) {
				t.Fatalf("disk: size %d, stats %+v", size, st)
			}
			if mode.name == "diskless" && (size != -1 || st.RDBSize != -1 || st.RDBTransferred <= 0) {
				t.Fatalf("diskless: size %d, stats %+v", size, st)
			}

			// A stream of writes: every one arrives, offsets equal the source's.
			const n = 200
			for i := range n {
				if err := c.Set(ctx, "w:"+strconv.Itoa(i), i, 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Incr(ctx, "tx")
				p.Incr(ctx, "tx")
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			var master int64
			harness.WaitFor(t, 10*time.Second, "applied offset = master_repl_offset", func() bool {
				master, _ = replInfo(t, ctx, c)
				return l.Stats().AppliedOffset == master
			})
			_, _, cmds, offs := h.snapshot()
			var sets []string
			for _, cmd := range cmds {
				if strings.HasPrefix(cmd, "SET w:") {
					sets = append(sets, cmd)
				}
			}
			if len(sets) != n || sets[0] != "SET w:0 0" || sets[n-1] != fmt.Sprintf("SET w:%d %d", n-1, n-1) {
				t.Fatalf("%d SETs: %q...", len(sets), sets[:min(3, len(sets))])
			}
			if strings.Join(cmds[len(cmds)-4:], ",") != "MULTI,INCR tx,INCR tx,EXEC" {
				t.Fatalf("transaction: %q", cmds[len(cmds)-4:])
			}
			if last := offs[len(offs)-1]; last > master || master-last > 100 {
				t.Fatalf("last command offset %d, master %d", last, master)
			}
			// The source sees our ACKs advance to its offset.
			harness.WaitFor(t, 10*time.Second, "source sees our ack", func() bool {
				m, acked := replInfo(t, ctx, c)
				return acked == m && acked == l.Stats().AppliedOffset
			})
			// WAIT makes the source send GETACK; our answer satisfies it.
			if err := c.Set(ctx, "waited", 1, 0).Err(); err != nil {
				t.Fatal(err)
			}
			got, err := c.Do(ctx, "WAIT", 1, 1000).Int()
			if err != nil || got != 1 {
				t.Fatalf("WAIT 1 1000 = %d, %v", got, err)
			}
		})
	}
}

// A cut link resumes with +CONTINUE; nothing is lost or applied twice.
func TestIntegrationPartialResync(t *testing.T) {
	src := harness.StartRedis(t, "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0")
	ctx := harness.Context(t, 60*time.Second)
	c := src.Client()
	h := &rdbRecorder{}
	l := New(integrationConfig(t, src.Addr), h)

	var wg sync.WaitGroup
	writes := 0
	write := func(k int) {
		for range k {
			if err := c.RPush(ctx, "seq", writes).Err(); err != nil {
				t.Error(err)
				return
			}
			writes++
		}
	}
	run := func(resume Position) (<-chan runResult, context.CancelFunc) {
		rctx, cancel := context.WithCancel(ctx)
		ch := make(chan runResult, 1)
		wg.Go(func() {
			pos, err := l.Run(rctx, resume)
			ch <- runResult{pos, err}
		})
		return ch, cancel
	}
	defer wg.Wait()

	res, cancel := run(Position{})
	defer cancel()
	harness.WaitFor(t, 20*time.Second, "streaming", func() bool { return l.Stats().State == StateStreaming })
	write(100)
	harness.WaitFor(t, 10*time.Second, "first writes applied", func() bool {
		m, _ := replInfo(t, ctx, c)
		return l.Stats().AppliedOffset == m
	})
	// The source cuts the link.
	if err := c.Do(ctx, "CLIENT", "KILL", "TYPE", "replica").Err(); err != nil {
		t.Fatal(err)
	}
	r := wait(t, res)
	if errclass.Classify(r.err) != errclass.Retry || r.pos.IsZero() {
		t.Fatalf("after the cut: %+v (%v)", r, errclass.Classify(r.err))
	}
	write(100) // while disconnected: served from the backlog

	res2, cancel2 := run(r.pos)
	defer cancel2()
	harness.WaitFor(t, 20*time.Second, "resumed", func() bool { return l.Stats().State == StateStreaming })
	write(100)
	harness.WaitFor(t, 10*time.Second, "all writes applied", func() bool {
		m, _ := replInfo(t, ctx, c)
		return l.Stats().AppliedOffset == m
	})
	_, _, _, events := h.get()
	if len(events) != 2 || events[0] != "fullsync 0" || !strings.HasPrefix(events[1], "continue ") ||
		events[1] != fmt.Sprintf("continue %s %d", r.pos.ReplID, r.pos.Offset) {
		t.Fatalf("events %q", events)
	}
	_, _, cmds, _ := h.snapshot()
	next := 0
	for _, cmd := range cmds {
		v, ok := strings.CutPrefix(cmd, "RPUSH seq ")
		if !ok {
			continue
		}
		if v != strconv.Itoa(next) {
			t.Fatalf("RPUSH #%d carries %s: a command lost or doubled", next, v)
		}
		next++
	}
	if next != writes {
		t.Fatalf("%d of %d writes seen", next, writes)
	}
	cancel2()
	if r := wait(t, res2); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("second Run: %+v", r)
	}
}

func TestIntegrationAuth(t *testing.T) {
	ctx := harness.Context(t, 60*time.Second)
	t.Run("requirepass", func(t *testing.T) {
		src := harness.StartRedis(t, "--requirepass", "s3cret")
		cfg := integrationConfig(t, src.Addr)
		cfg.Password = "wrong"
		_, err := New(cfg, &rdbRecorder{}).Run(ctx, Position{})
		if !errors.Is(err, ErrAuth) || errclass.Classify(err) != errclass.Fatal {
			t.Fatalf("wrong password: %v", err)
		}
		cfg.Password = ""
		_, err = New(cfg, &rdbRecorder{}).Run(ctx, Position{})
		if !errors.Is(err, ErrAuth) {
			t.Fatalf("no password: %v", err)
		}
		cfg.Password = "s3cret"
		l := New(cfg, &rdbRecorder{})
		startLink(t, l, Position{})
		harness.WaitFor(t, 20*time.Second, "streaming", func() bool { return l.Stats().State == StateStreaming })
	})
	t.Run("acl-user", func(t *testing.T) {
		src := harness.StartRedis(t)
		if err := src.Client().Do(ctx, "ACL", "SETUSER", "repl", "on", ">pw", "+psync", "+replconf", "+ping").Err(); err != nil {
			t.Fatal(err)
		}
		if err := src.Client().Do(ctx, "ACL", "SETUSER", "default", "off").Err(); err != nil {
			t.Fatal(err)
		}
		cfg := integrationConfig(t, src.Addr)
		cfg.Username, cfg.Password = "repl", "nope"
		_, err := New(cfg, &rdbRecorder{}).Run(ctx, Position{})
		if !errors.Is(err, ErrAuth) || errclass.Classify(err) != errclass.Fatal {
			t.Fatalf("wrong password: %v", err)
		}
		cfg.Password = "pw"
		l := New(cfg, &rdbRecorder{})
		startLink(t, l, Position{})
		harness.WaitFor(t, 20*time.Second, "streaming", func() bool { return l.Stats().State == StateStreaming })
	})
}
