package replica

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/internal/errclass"
	"github.com/replicaof/replicaof/internal/harness"
)

// slowHandler loads a snapshot at about rate bytes per second and waits
// applyDelay in each Apply: a destination slower than the source. It
// counts the INCRs of counter it is given.
type slowHandler struct {
	rate       int
	applyDelay time.Duration
	counter    string
	rdbBytes   atomic.Int64
	incrs      atomic.Int64
}

func (h *slowHandler) FullSync(ctx context.Context, replID string, offset, size int64, rdb io.Reader) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := rdb.Read(buf)
		h.rdbBytes.Add(int64(n))
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		time.Sleep(time.Duration(n) * time.Second / time.Duration(h.rate))
	}
}

func (h *slowHandler) Continue(context.Context, string, int64) error { return nil }

func (h *slowHandler) Apply(ctx context.Context, cmds []Command) error {
	time.Sleep(h.applyDelay)
	for _, c := range cmds {
		if len(c.Args) == 2 && bytes.EqualFold(c.Args[0], []byte("incr")) && string(c.Args[1]) == h.counter {
			h.incrs.Add(1)
		}
	}
	return nil
}

// startWriter writes to src at about 1 MB/s (SETs of 1 KiB and one INCR
// of counter per batch) until the returned stop is called.
func startWriter(t *testing.T, ctx context.Context, c *redis.Client, counter string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	val := bytes.Repeat([]byte("w"), 1024)
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			p := c.Pipeline()
			for j := range 10 {
				p.Set(ctx, "pad:"+strconv.Itoa((i*10+j)%500), val, 0)
			}
			p.Incr(ctx, counter)
			if _, err := p.Exec(ctx); err != nil {
				if ctx.Err() == nil {
					t.Error("writer:", err)
				}
				return
			}
		}
	}()
	return func() { cancel(); <-done }
}

// A source whose replica output buffer limit is small drops a link whose
// destination is slow while it transfers a snapshot; with a spool the link
// reads ahead to disk and the full sync completes with every write.
func TestIntegrationSpool(t *testing.T) {
	src := harness.StartRedis(t, "--repl-diskless-sync", "no",
		"--client-output-buffer-limit", "replica", "2mb", "1mb", "5")
	ctx := harness.Context(t, 60*time.Second)
	c := src.Client()
	if got, err := c.ConfigGet(ctx, "client-output-buffer-limit").Result(); err != nil ||
		!bytes.Contains([]byte(got["client-output-buffer-limit"]), []byte("slave 2097152 1048576 5")) {
		t.Fatalf("limit %q, %v", got, err)
	}
	// About 20 MB of snapshot: values that do not compress.
	rng := rand.New(rand.NewSource(1))
	for b := range 20 {
		p := c.Pipeline()
		for i := range 1000 {
			v := make([]byte, 1024)
			rng.Read(v)
			p.Set(ctx, "big:"+strconv.Itoa(b*1000+i), v, 0)
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}

	run := func(t *testing.T, spoolDir string) (*Link, *slowHandler, <-chan runResult, func()) {
		h := &slowHandler{rate: 4 << 20, applyDelay: time.Millisecond, counter: "ctr:" + t.Name()}
		cfg := integrationConfig(t, src.Addr)
		cfg.MaxQueueBytes = 1 << 20
		cfg.SpoolDir = spoolDir
		l := New(cfg, h)
		res, _ := startLink(t, l, Position{})
		// Once the payload flows, every write reaches us through the
		// stream, which the source buffers until the payload is sent.
		harness.WaitFor(t, 20*time.Second, "snapshot started", func() bool { return l.Stats().State >= StateLoading })
		stop := startWriter(t, ctx, c, h.counter)
		t.Cleanup(stop)
		return l, h, res, stop
	}

	t.Run("no-spool", func(t *testing.T) {
		l, _, res, stop := run(t, "")
		var r runResult
		select {
		case r = <-res:
		case <-ctx.Done():
			t.Fatalf("the source never dropped the link: %+v", l.Stats())
		}
		stop()
		var de *SnapshotDroppedError
		if !errors.As(r.err, &de) || !errors.Is(r.err, ErrSnapshotDropped) || de.Spool {
			t.Fatalf("Run returned %v", r.err)
		}
		if de.Loading && (errclass.Classify(r.err) != errclass.FullResync || de.Size <= 0 || de.Transferred >= de.Size) {
			t.Fatalf("Run returned %v (%v)", r.err, errclass.Classify(r.err))
		}
		t.Logf("as expected: %v", r.err)
	})

	t.Run("spool", func(t *testing.T) {
		dir := t.TempDir()
		l, h, res, stop := run(t, dir)
		harness.WaitFor(t, 40*time.Second, "snapshot loaded", func() bool {
			select {
			case r := <-res:
				t.Fatalf("Run returned %v", r.err)
			default:
			}
			return l.Stats().State == StateStreaming
		})
		stop()
		want, err := c.Get(ctx, h.counter).Int64()
		if err != nil {
			t.Fatal(err)
		}
		harness.WaitFor(t, 20*time.Second, "applied offset = master_repl_offset", func() bool {
			m, _ := replInfo(t, ctx, c)
			return l.Stats().AppliedOffset == m
		})
		st := l.Stats()
		if got := h.incrs.Load(); got != want || want == 0 {
			t.Fatalf("%d INCRs applied, the source counted %d", got, want)
		}
		if h.rdbBytes.Load() != st.RDBSize || st.RDBSize < 16<<20 || st.SpoolPeak == 0 || st.SpooledBytes != 0 {
			t.Fatalf("rdb %d bytes, stats %+v", h.rdbBytes.Load(), st)
		}
		t.Logf("%d writes, snapshot %d bytes, spool peak %d bytes", want, st.RDBSize, st.SpoolPeak)
	})
}
