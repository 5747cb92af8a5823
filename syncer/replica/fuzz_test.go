package replica

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/replicaof/replicaof/resp"
)

// wireSeeds returns the transcripts' bytes, and whether each is a
// +CONTINUE one.
func wireSeeds(f *testing.F) (bins [][]byte, cont []bool) {
	paths, _ := filepath.Glob(filepath.Join(wireDir, "*.bin"))
	if len(paths) == 0 {
		f.Fatalf("no wire transcripts in %s", wireDir)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		bins = append(bins, b)
		cont = append(cont, bytes.HasPrefix(b, []byte("+CONTINUE")))
	}
	return bins, cont
}

// summary renders a decode result for comparison.
func summary(d *decoded) string {
	return fmt.Sprintf("%v %q %d %d %x %v %d %d", d.kinds, d.replID, d.start, d.size, d.rdb, d.cmds, d.offset, d.getacks)
}

// FuzzDecoder feeds the same bytes whole and split in two: both must give
// the same events, snapshot bytes, commands and offsets, or both fail.
func FuzzDecoder(f *testing.F) {
	bins, cont := wireSeeds(f)
	for i, b := range bins {
		f.Add(b, uint16(len(b)/2), cont[i])
	}
	f.Add([]byte("+FULLRESYNC x 3\r\n$EOF:0123456789012345678901234567890123456789\r\nab0123456789012345678901234567890123456789*1\r\n$1\r\nA\r\n"), uint16(60), false)
	f.Fuzz(func(t *testing.T, in []byte, split uint16, resume bool) {
		pos := Position{}
		if resume {
			pos = Position{ReplID: "x", Offset: 1000}
		}
		lim := resp.Limits{MaxBulk: 1 << 16, MaxArray: 1 << 10, MaxInline: 1 << 10, MaxReply: 1 << 18}
		whole, err1 := decodeChunks(newDecoder(pos, lim), [][]byte{in})
		k := int(split) % (len(in) + 1)
		parts, err2 := decodeChunks(newDecoder(pos, lim), [][]byte{in[:k], in[k:]})
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("whole: %v; split at %d: %v", err1, k, err2)
		}
		if err1 == nil && summary(whole) != summary(parts) {
			t.Fatalf("split at %d differs:\n%s\n%s", k, summary(whole), summary(parts))
		}
	})
}

// FuzzStreamParser checks the stream parser alone: whole, in two, and one
// byte at a time give the same commands and offsets.
func FuzzStreamParser(f *testing.F) {
	bins, _ := wireSeeds(f)
	for _, b := range bins {
		if i := bytes.Index(b, []byte("*2\r\n$6\r\nSELECT")); i >= 0 {
			f.Add(b[i:], uint16(len(b[i:])/3))
		}
	}
	f.Add(resp.AppendCommandString(nil, "REPLCONF", "GETACK", "*"), uint16(5))
	f.Fuzz(func(t *testing.T, in []byte, split uint16) {
		lim := resp.Limits{MaxBulk: 1 << 16, MaxArray: 1 << 10, MaxInline: 1 << 10, MaxReply: 1 << 18}
		run := func(chunks [][]byte) (string, error) {
			cmds, offs, last, getacks, err := parseChunks(t, newStreamParser(0, lim), chunks)
			return fmt.Sprintf("%q %v %d %d", cmds, offs, last, getacks), err
		}
		a, err1 := run([][]byte{in})
		k := int(split) % (len(in) + 1)
		b, err2 := run([][]byte{in[:k], in[k:]})
		c, err3 := run(splitEvery(in, 1))
		if (err1 == nil) != (err2 == nil) || (err1 == nil) != (err3 == nil) {
			t.Fatalf("errors differ: %v / %v / %v", err1, err2, err3)
		}
		if err1 == nil && (a != b || a != c) {
			t.Fatalf("results differ:\n%s\n%s\n%s", a, b, c)
		}
	})
}

// FuzzMarkScanner: the payload is exactly what precedes the first mark,
// however the input is cut.
func FuzzMarkScanner(f *testing.F) {
	mark := []byte("0123456789abcdefghij0123456789abcdefghij")
	f.Add([]byte("REDIS0011"), uint16(3), uint16(20))
	f.Add(mark[:39], uint16(39), uint16(40))
	f.Fuzz(func(t *testing.T, body []byte, s1, s2 uint16) {
		in := append(append(append([]byte{}, body...), mark...), "tail"...)
		want := in[:bytes.Index(in, mark)]
		i := int(s1) % (len(in) + 1)
		j := i + int(s2)%(len(in)-i+1)
		got, rest, done := scanAll(mark, [][]byte{in[:i], in[i:j], in[j:]})
		if !done || !bytes.Equal(got, want) || !bytes.Equal(rest, in[len(want)+markLen:]) {
			t.Fatalf("split %d/%d: done %v payload %q rest %q", i, j, done, got, rest)
		}
	})
}
