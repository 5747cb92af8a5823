package rdb

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// parserString parses a one-key RDB whose string value is encoded as raw
// and returns what Key.Decode yields for it.
func parserString(raw []byte) ([]byte, error) {
	w := newRDB(9).raw(TypeString).str("k").raw(raw...)
	p := NewParser(bytes.NewReader(w.end()), Options{})
	for {
		e, err := p.Next()
		if err != nil {
			return nil, err
		}
		k, ok := e.(*Key)
		if !ok {
			continue
		}
		var out []byte
		err = k.Decode(func(c *Chunk) error { out = append(out, c.Data...); return nil })
		return out, err
	}
}

func stringSeeds() [][]byte {
	lzf := []byte{0xC3, 0x05, 0x0A, 0x01, 'a', 'b', 0xC0, 0x01}    // "ab", then 8 bytes from 2 back: "ababababab"
	badLZF := []byte{0xC3, 0x05, 0x0A, 0x01, 'a', 'b', 0x20, 0x01} // 5 bytes out where 10 are declared
	return [][]byte{
		append([]byte{5}, "hello"...),
		{0},
		{0xC0, 0xFF},                   // int8 -1
		{0xC1, 0x39, 0x30},             // int16 12345
		{0xC2, 0x15, 0xCD, 0x5B, 0x07}, // int32 123456789
		append([]byte{0x40, 70}, bytes.Repeat([]byte("x"), 70)...),
		append([]byte{0x80, 0, 0, 0, 3}, "abc"...),
		lzf,
		badLZF,
		{0xC4},
		{0x40},
	}
}

func TestAppendStringMatchesParser(t *testing.T) {
	for _, raw := range stringSeeds() {
		want, perr := parserString(raw)
		got, err := AppendString([]byte("pre"), raw, 1<<20)
		switch {
		case perr != nil:
			if err == nil {
				t.Errorf("%x: parser failed (%v), AppendString gave %q", raw, perr, got)
			}
		case err != nil:
			t.Errorf("%x: parser gave %q, AppendString failed: %v", raw, want, err)
		case string(got) != "pre"+string(want):
			t.Errorf("%x: AppendString %q, parser %q", raw, got, want)
		}
	}
	if _, err := AppendString(nil, append([]byte{0x40, 70}, strings.Repeat("x", 70)...), 69); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over maxLen: %v", err)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range stringSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := AppendString(nil, raw, 1<<16)
		if err != nil {
			return
		}
		if len(got) > 1<<16 {
			t.Fatalf("%d bytes, over maxLen", len(got))
		}
		// Whatever AppendString accepts, the parser reads the same way.
		want, perr := parserString(raw)
		if perr != nil {
			t.Fatalf("AppendString accepted %x as %q; the parser fails: %v", raw, got, perr)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%x: AppendString %q, parser %q", raw, got, want)
		}
	})
}

func TestAppendStringLZF(t *testing.T) {
	got, err := AppendString(nil, stringSeeds()[7], 100)
	if err != nil || string(got) != "ababababab" {
		t.Fatalf("%q %v", got, err)
	}
}
