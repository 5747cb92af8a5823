package syncer

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"time"

	"github.com/replicaof/replicaof/syncer/apply"
	"github.com/replicaof/replicaof/syncer/replica"
)

// handler is the replica.Handler of one link: it hands the link's
// snapshot and stream to the link's applier, keeps the source's status,
// holds a snapshot slot while a snapshot loads, and records what runPart's
// policy needs to know (loading, streamed, progressed).
type handler struct {
	src     *source
	part    *part
	applier *apply.Applier
	sem     chan struct{}
	holding atomic.Bool // holds a snapshot slot

	loading    bool        // inside FullSync; read by runPart after Run returns
	streamed   atomic.Bool // a stream command was applied since the last snapshot began
	progressed atomic.Bool // something was applied since the last retry
	// rewind: where the link must resume after a destination slot went
	// back (apply.RewindError); read and cleared by runPart after Run.
	rewind *replica.Position
}

func (h *handler) release() {
	if h.holding.Swap(false) {
		<-h.sem
	}
}

func (h *handler) FullSync(ctx context.Context, replID string, offset, size int64, rdb io.Reader) error {
	h.loading = true
	h.streamed.Store(false)
	h.part.beginSnapshot(size)
	err := h.applier.FullSync(ctx, replID, offset, size, &countingReader{r: rdb, n: &h.part.rdbDone})
	h.release()
	if err != nil {
		return err
	}
	h.loading = false
	h.progressed.Store(true)
	h.part.snapshotDone(replID, offset)
	return nil
}

func (h *handler) Continue(ctx context.Context, replID string, offset int64) error {
	if err := h.applier.Continue(ctx, replID, offset); err != nil {
		var rw *apply.RewindError
		if errors.As(err, &rw) {
			h.rewind = &replica.Position{ReplID: replID, Offset: rw.Offset}
		}
		return err
	}
	h.part.continued(replID, offset)
	return nil
}

func (h *handler) Apply(ctx context.Context, cmds []replica.Command) error {
	if err := h.applier.Apply(ctx, cmds); err != nil {
		return err
	}
	if len(cmds) > 0 {
		h.progressed.Store(true)
		h.streamed.Store(true)
		h.part.applied(cmds[len(cmds)-1].Offset, time.Now())
	}
	return nil
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
