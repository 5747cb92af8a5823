package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"testing"
)

// The records are JSON, deterministic, of the asked-for size on average,
// and compress like real data: well, but far from to nothing.
func TestRecords(t *testing.T) {
	a, b := newRecords(1, 1024), newRecords(1, 1024)
	var all bytes.Buffer
	var key, val, key2, val2 []byte
	const n = 2000
	for i := 0; i < n; i++ {
		key, val = a.next(key[:0], val[:0])
		key2, val2 = b.next(key2[:0], val2[:0])
		if !bytes.Equal(key, key2) || !bytes.Equal(val, val2) {
			t.Fatalf("record %d differs between two generators with the same seed", i)
		}
		if !json.Valid(val) {
			t.Fatalf("record %d is not JSON: %s", i, val)
		}
		if len(val) < 400 || len(val) > 1800 {
			t.Fatalf("record %d: %d bytes, want 512-1536 give or take an item", i, len(val))
		}
		all.Write(val)
	}
	avg := all.Len() / n
	if avg < 900 || avg > 1150 {
		t.Errorf("average value %d bytes, want about 1024", avg)
	}
	var z bytes.Buffer
	w, _ := gzip.NewWriterLevel(&z, 6)
	w.Write(all.Bytes())
	w.Close()
	if r := float64(z.Len()) / float64(all.Len()); r < 0.1 || r > 0.5 {
		t.Errorf("gzip -6 ratio %.3f, want realistic text (0.1-0.5)", r)
	}
}

func FuzzAppendCents(f *testing.F) {
	for _, c := range []int64{0, 5, 10, 99, 100, 1999, 123456} {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, c int64) {
		if c < 0 {
			return
		}
		var v float64
		b := appendCents(nil, c)
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("appendCents(%d) = %q: %v", c, b, err)
		}
		if len(b) < 4 || b[len(b)-3] != '.' {
			t.Fatalf("appendCents(%d) = %q, want two decimals", c, b)
		}
	})
}
