package replica

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"testing"
)

func gzipped(t testing.TB, chunks ...string) []byte {
	var b bytes.Buffer
	z, _ := gzip.NewWriterLevel(&b, 6)
	for _, c := range chunks {
		if _, err := z.Write([]byte(c)); err != nil {
			t.Fatal(err)
		}
		if err := z.Flush(); err != nil { // what the proxy does after every read
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// TestGzipStreamFlushed: each flushed piece is readable before the next
// arrives (the stream never ends), and a source answering without gzip is
// a protocol error.
func TestGzipStreamFlushed(t *testing.T) {
	pr, pw := io.Pipe()
	g := &gzipStream{under: pr}
	full := gzipped(t, "+FULLRESYNC abc 0\r\n", "*1\r\n$4\r\nPING\r\n")
	go func() { _, _ = pw.Write(full) }() // no Close: the stream stays open
	want := "+FULLRESYNC abc 0\r\n*1\r\n$4\r\nPING\r\n"
	got := make([]byte, 0, len(want))
	buf := make([]byte, 64)
	for len(got) < len(want) {
		n, err := g.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != want {
		t.Fatalf("got %q", got)
	}
	pw.Close()

	_, err := (&gzipStream{under: bytes.NewReader([]byte("+FULLRESYNC abc 0\r\n"))}).Read(buf)
	if !errors.Is(err, ErrProtocol) {
		t.Fatalf("plain answer to a gzip request: %v, want a protocol error", err)
	}
}

// FuzzGzipStream: whatever the source sends, the reader returns data or
// an error, never panics, and a valid stream comes out intact.
func FuzzGzipStream(f *testing.F) {
	f.Add(gzipped(f, "+CONTINUE x\r\n", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"))
	f.Add([]byte("+FULLRESYNC abc 0\r\n"))
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		g := &gzipStream{under: bytes.NewReader(data)}
		out, err := io.ReadAll(io.LimitReader(g, 1<<20))
		if err == nil && len(out) > 0 {
			z, zerr := gzip.NewReader(bytes.NewReader(data))
			if zerr != nil {
				t.Fatalf("read %d bytes from what gzip refuses: %v", len(out), zerr)
			}
			z.Multistream(false)
			ref, _ := io.ReadAll(io.LimitReader(z, 1<<20))
			if !bytes.Equal(ref, out) {
				t.Fatal("output differs from compress/gzip's")
			}
		}
	})
}
