package replica

import (
	"compress/gzip"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// gzipStream decompresses what a replicaof proxy sends after PSYNC when
// the link asked for gzip (Config.Gzip). The gzip header is read on the
// first Read, on the reader goroutine, under its read deadline.
type gzipStream struct {
	under io.Reader
	z     *gzip.Reader
}

func (g *gzipStream) Read(p []byte) (int, error) {
	if g.z == nil {
		z, err := gzip.NewReader(g.under)
		if err != nil {
			if errors.Is(err, gzip.ErrHeader) {
				err = parseErr("gzip stream", 0, "the source did not answer with gzip: "+err.Error(), nil)
			}
			return 0, err
		}
		z.Multistream(false)
		g.z = z
	}
	n, err := g.z.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && !isNetErr(err) {
		// A corrupt stream is a protocol error: resync, do not retry blindly.
		err = parseErr("gzip stream", 0, err.Error(), nil)
	}
	return n, err
}

func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF)
}

// patientReader sits under the decompressor: a read timeout while the
// Handler still has queued bytes to work through is expected silence (see
// readLoop), and must not reach the decompressor, for which any error is
// final. Other errors pass.
type patientReader struct {
	s *session
	r io.Reader
}

func (p *patientReader) Read(b []byte) (int, error) {
	for {
		n, err := p.r.Read(b)
		if n > 0 || err == nil {
			return n, err
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && p.s.queue.pending() > 0 {
			if derr := p.s.conn.SetReadDeadline(time.Now().Add(p.s.cfg.ReadTimeout)); derr != nil {
				return 0, derr
			}
			continue
		}
		return 0, err
	}
}

// countingReader counts the bytes read from the connection.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
