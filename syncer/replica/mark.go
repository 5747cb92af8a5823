package replica

import "bytes"

// markLen is the size of the end mark of a diskless transfer
// (RDB_EOF_MARK_SIZE in the Redis sources).
const markLen = 40

// markScanner finds the end of a diskless (`$EOF:<mark>`) payload: the
// payload ends where the 40-byte mark appears again. It is pure: step takes
// bytes and says which of them are payload. Because the mark may straddle
// two reads, the last markLen-1 bytes seen are held back until the next
// bytes prove they do not start the mark.
type markScanner struct {
	mark  [markLen]byte
	held  [markLen - 1]byte
	nheld int
	// win is scratch for the held bytes plus the start of the next input;
	// out holds the held bytes a step releases.
	win [2*markLen - 2]byte
	out [markLen - 1]byte
}

func (s *markScanner) reset(mark []byte) {
	copy(s.mark[:], mark)
	s.nheld = 0
}

// step consumes n bytes of p and returns payload bytes out (a view of p or
// of the scanner's own memory, valid until the next step). done means the
// mark ended at p[n-1]; the bytes after it are not payload. step returns
// n == len(p), done == false and possibly empty out when it needs more
// input; it may return n == 0 with out non-empty (held bytes released), so
// callers loop until p is used up or done.
func (s *markScanner) step(p []byte) (n int, out []byte, done bool) {
	if len(p) == 0 {
		return 0, nil, false
	}
	if s.nheld > 0 {
		// A mark starting inside the held bytes lies within the window.
		take := min(len(p), markLen-1)
		w := append(s.win[:0], s.held[:s.nheld]...)
		w = append(w, p[:take]...)
		if j := bytes.Index(w, s.mark[:]); j >= 0 && j < s.nheld {
			out = append(s.out[:0], s.held[:j]...)
			n = j + markLen - s.nheld // window positions past the held bytes are p's
			s.nheld = 0
			return n, out, true
		}
		if take == markLen-1 {
			// No mark can start in the held bytes: release them all.
			out = append(s.out[:0], s.held[:s.nheld]...)
			s.nheld = 0
			return 0, out, false
		}
		// Too little input to decide: keep the last markLen-1 bytes of
		// held+p, release what comes before them.
		keep := min(len(w), markLen-1)
		out = append(s.out[:0], w[:len(w)-keep]...)
		s.nheld = copy(s.held[:], w[len(w)-keep:])
		return len(p), out, false
	}
	if k := bytes.Index(p, s.mark[:]); k >= 0 {
		return k + markLen, p[:k], true
	}
	keep := min(len(p), markLen-1)
	s.nheld = copy(s.held[:], p[len(p)-keep:])
	return len(p), p[:len(p)-keep], false
}
