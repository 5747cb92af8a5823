package replica

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// spool is the on-disk overflow of a queue: a ring of size bytes in one
// file. Positions are logical (they only grow); byte pos lives at file
// offset pos%size. The queue guarantees that the writer never overwrites
// bytes the reader has not read, and that the reader reads only published
// bytes, so the one writer (the socket reader) and the one reader (the
// consumer) use the file concurrently without a lock (pwrite, pread).
type spool struct {
	f    *os.File
	name string
	size int64
	// linked means the file still has a name to remove at close: where
	// the system allows it, the name is removed right after creation, so
	// that not even a crash leaves a spool behind.
	linked bool
}

// openSpool creates a spool file in dir (created if missing).
func openSpool(dir string, size int64) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "replica-*.spool")
	if err != nil {
		return nil, err
	}
	s := &spool{f: f, name: f.Name(), size: size, linked: true}
	if os.Remove(s.name) == nil {
		s.linked = false
	}
	return s, nil
}

// writeAt writes p at logical position pos, wrapping around the ring.
// len(p) must not exceed size.
func (s *spool) writeAt(p []byte, pos int64) error {
	for len(p) > 0 {
		off := pos % s.size
		k := int(min(int64(len(p)), s.size-off))
		if _, err := s.f.WriteAt(p[:k], off); err != nil {
			return err
		}
		p, pos = p[k:], pos+int64(k)
	}
	return nil
}

// readAt fills p from logical position pos, wrapping around the ring.
func (s *spool) readAt(p []byte, pos int64) error {
	for len(p) > 0 {
		off := pos % s.size
		k := int(min(int64(len(p)), s.size-off))
		n, err := s.f.ReadAt(p[:k], off)
		if n < k {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		p, pos = p[k:], pos+int64(k)
	}
	return nil
}

// close closes the file and removes it if it still has a name.
func (s *spool) close() error {
	err := s.f.Close()
	if s.linked {
		err = errors.Join(err, os.Remove(s.name))
	}
	if err != nil {
		return fmt.Errorf("%w: closing %s: %w", ErrSpool, s.name, err)
	}
	return nil
}
