package replica

import (
	"bytes"
	"math/rand"
	"testing"
)

// scanAll runs a markScanner over chunks and returns the payload and the
// bytes after the mark.
func scanAll(mark []byte, chunks [][]byte) (payload, rest []byte, done bool) {
	var s markScanner
	s.reset(mark)
	for _, c := range chunks {
		for len(c) > 0 || !done {
			if done {
				rest = append(rest, c...)
				break
			}
			n, out, d := s.step(c)
			payload = append(payload, out...)
			c = c[n:]
			done = d
			if !d && n == 0 && len(out) == 0 {
				break // needs input
			}
			if !d && len(c) == 0 && n > 0 {
				break
			}
		}
	}
	return payload, rest, done
}

func TestMarkScanner(t *testing.T) {
	mark := []byte("0123456789abcdefghij0123456789ABCDEFGHIJ")
	rng := rand.New(rand.NewSource(1))
	bodies := [][]byte{
		nil,
		[]byte("x"),
		bytes.Repeat([]byte("0"), 39),
		mark[:39], // a prefix of the mark
		append(append([]byte{}, mark[:39]...), 'Z'), // almost the mark
		append(mark[1:], mark[:20]...),              // mark-like content
	}
	big := make([]byte, 3000)
	rng.Read(big)
	bodies = append(bodies, big)
	for bi, body := range bodies {
		in := append(append(append([]byte{}, body...), mark...), "*1\r\n$4\r\nPING\r\n"...)
		for i := 0; i <= len(in); i++ {
			for j := i; j <= len(in); j += 1 + len(in)/50 {
				p, rest, done := scanAll(mark, [][]byte{in[:i], in[i:j], in[j:]})
				if !done || !bytes.Equal(p, body) || string(rest) != "*1\r\n$4\r\nPING\r\n" {
					t.Fatalf("body %d split %d/%d: done %v payload %d bytes (want %d), rest %q", bi, i, j, done, len(p), len(body), rest)
				}
			}
		}
		p, rest, done := scanAll(mark, splitEvery(in, 1))
		if !done || !bytes.Equal(p, body) || string(rest) != "*1\r\n$4\r\nPING\r\n" {
			t.Fatalf("body %d one byte: done %v payload %d rest %q", bi, done, len(p), rest)
		}
	}
}

func TestMarkScannerHoldsBack(t *testing.T) {
	mark := bytes.Repeat([]byte("m"), 40)
	var s markScanner
	s.reset(mark)
	n, out, done := s.step(bytes.Repeat([]byte("m"), 39))
	if n != 39 || len(out) != 0 || done {
		t.Fatalf("39 mark bytes: n %d out %q done %v", n, out, done)
	}
	// One more 'm' completes the mark: nothing of it is payload.
	n, out, done = s.step([]byte("mX"))
	if n != 1 || len(out) != 0 || !done {
		t.Fatalf("completion: n %d out %q done %v", n, out, done)
	}
}
