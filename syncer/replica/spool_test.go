package replica

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/replicaof/replicaof/internal/errclass"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/resp"
)

// With a spool, a Handler that does not move does not stop the link from
// reading: the master's writes complete, the overflow sits on disk, and
// everything is applied in order afterwards.
func TestLinkSpoolStream(t *testing.T) {
	m := newFakeMaster(t)
	gate := make(chan struct{})
	h := &recorder{gate: gate}
	dir := t.TempDir()
	cfg := testConfig(t, m.ln.Addr().String())
	cfg.MaxQueueBytes = 256 << 10
	cfg.SpoolDir = dir
	l := New(cfg, h)
	c, res, cancel := streamAfterEmptySync(t, m, l)
	const n = 30000
	stream := setStream(n)
	// All of it is read while Apply is blocked.
	if _, err := c.c.Write(stream); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, 10*time.Second, "everything read", func() bool {
		st := l.Stats()
		return st.QueuedBytes+st.SpooledBytes >= int64(len(stream))-64<<10
	})
	st := l.Stats()
	if st.QueuedBytes > cfg.MaxQueueBytes || st.SpooledBytes == 0 || st.ReadPaused {
		t.Fatalf("stats %+v", st)
	}
	if ents, _ := os.ReadDir(dir); len(ents) > 1 {
		t.Fatalf("spool files %v", ents)
	}
	close(gate)
	harness.WaitFor(t, 10*time.Second, "all applied", func() bool { return l.Stats().AppliedOffset == int64(len(stream)) })
	requireSets(t, h, stream, n)
	if st := l.Stats(); st.SpooledBytes != 0 || st.SpoolPeak < int64(len(stream))/2 {
		t.Fatalf("after: %+v", st)
	}
	cancel()
	wait(t, res)
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("spool files left: %v", ents)
	}
}

// A full spool pauses the reader (Stats.ReadPaused) without exceeding it.
func TestLinkSpoolFull(t *testing.T) {
	m := newFakeMaster(t)
	gate := make(chan struct{})
	h := &recorder{gate: gate}
	cfg := testConfig(t, m.ln.Addr().String())
	cfg.MaxQueueBytes = 64 << 10
	cfg.SpoolDir = t.TempDir()
	cfg.SpoolMaxBytes = 200 << 10
	l := New(cfg, h)
	c, _, _ := streamAfterEmptySync(t, m, l)
	const n = 20000
	stream := setStream(n)
	writeDone := c.writeAsync(stream)
	harness.WaitFor(t, 10*time.Second, "reader paused", func() bool { return l.Stats().ReadPaused })
	if st := l.Stats(); st.SpooledBytes != cfg.SpoolMaxBytes || st.QueuedBytes > cfg.MaxQueueBytes {
		t.Fatalf("stats %+v", st)
	}
	close(gate)
	if err := <-writeDone; err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, 10*time.Second, "all applied", func() bool { return l.Stats().AppliedOffset == int64(len(stream)) })
	if got := h.ncmds(); got != n {
		t.Fatalf("%d commands", got)
	}
}

// gatedSync is a recorder whose FullSync waits for gate before reading.
type gatedSync struct {
	recorder
	syncGate chan struct{}
}

func (g *gatedSync) FullSync(ctx context.Context, replID string, offset, size int64, rdb io.Reader) error {
	select {
	case <-g.syncGate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.recorder.FullSync(ctx, replID, offset, size, rdb)
}

// The snapshot payload and the stream after it go through the spool.
func TestLinkSpoolSnapshot(t *testing.T) {
	m := newFakeMaster(t)
	h := &gatedSync{syncGate: make(chan struct{})}
	cfg := testConfig(t, m.ln.Addr().String())
	cfg.MaxQueueBytes = 100 << 10
	cfg.SpoolDir = t.TempDir()
	l := New(cfg, h)
	startLink(t, l, Position{})
	c := m.accept()
	c.handshake()
	payload := string(testStream(1<<20, 7))
	set := string(resp.AppendCommandString(nil, "SET", "k", "v"))
	c.send("+FULLRESYNC " + replA + " 0\r\n$" + strconv.Itoa(len(payload)) + "\r\n" + payload + set)
	harness.WaitFor(t, 10*time.Second, "all read", func() bool {
		st := l.Stats()
		return st.QueuedBytes+st.SpooledBytes > int64(len(payload))
	})
	close(h.syncGate)
	c.expect("REPLCONF ACK 0")
	harness.WaitFor(t, 10*time.Second, "command", func() bool { return h.ncmds() == 1 })
	_, rdb, _, _ := h.snapshot()
	if string(rdb) != payload {
		t.Fatalf("payload differs at %d", firstDiff(rdb, []byte(payload)))
	}
}

// The source closing the link during the snapshot is a SnapshotDroppedError:
// inside an ErrFullResync once the payload started, alone (Retry) before.
func TestLinkSnapshotDropped(t *testing.T) {
	t.Run("loading", func(t *testing.T) {
		for _, spool := range []bool{false, true} {
			m := newFakeMaster(t)
			cfg := testConfig(t, m.ln.Addr().String())
			if spool {
				cfg.SpoolDir = t.TempDir()
			}
			res, _ := startLink(t, New(cfg, &recorder{}), Position{})
			c := m.accept()
			c.handshake()
			c.send("+FULLRESYNC " + replB + " 0\r\n$100\r\nREDIS")
			c.c.Close()
			r := wait(t, res)
			var de *SnapshotDroppedError
			if !errors.Is(r.err, ErrFullResync) || !errors.Is(r.err, ErrSnapshotDropped) || !errors.As(r.err, &de) ||
				errclass.Classify(r.err) != errclass.FullResync || r.pos != (Position{}) {
				t.Fatalf("Run returned %+v", r)
			}
			if !de.Loading || de.Transferred != 5 || de.Size != 100 || de.Spool != spool || !errors.Is(de, io.EOF) {
				t.Fatalf("%+v", de)
			}
			msg := r.err.Error()
			if !strings.Contains(msg, `CONFIG SET client-output-buffer-limit "replica 0 0 0"`) ||
				!strings.Contains(msg, "after 5 of 100 bytes") || strings.Contains(msg, "no spool") == spool {
				t.Fatalf("message: %s", msg)
			}
		}
	})
	t.Run("transfer", func(t *testing.T) {
		m := newFakeMaster(t)
		res, _ := startLink(t, New(testConfig(t, m.ln.Addr().String()), &recorder{}), Position{})
		c := m.accept()
		c.handshake()
		c.send("+FULLRESYNC " + replB + " 0\r\n\n")
		c.c.Close()
		r := wait(t, res)
		var de *SnapshotDroppedError
		if errors.Is(r.err, ErrFullResync) || !errors.As(r.err, &de) || de.Loading || errclass.Classify(r.err) != errclass.Retry {
			t.Fatalf("Run returned %+v", r)
		}
	})
}

// A spool directory that cannot be created is a errclass.Fatal ErrSpool.
func TestLinkSpoolDirError(t *testing.T) {
	file := t.TempDir() + "/file"
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, "127.0.0.1:1")
	cfg.SpoolDir = file + "/sub"
	_, err := New(cfg, &recorder{}).Run(context.Background(), Position{})
	if !errors.Is(err, ErrSpool) || errclass.Classify(err) != errclass.Fatal {
		t.Fatalf("Run: %v", err)
	}
}
