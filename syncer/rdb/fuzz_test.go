package rdb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
)

// fuzzOptions are small limits, so that hostile lengths show up as errors
// quickly instead of large allocations.
var fuzzOptions = Options{MaxRawPayload: 4 << 10, MaxBulk: 64 << 10, ChunkElems: 5, ChunkBytes: 256}

// miniRDBs cuts a fixture into one small RDB per key (header, key, EOF,
// CRC), good fuzz seeds.
func miniRDBs(t testing.TB, path string, maxRaw int) [][]byte {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := NewParser(bytes.NewReader(data), Options{})
	var out [][]byte
	for {
		e, err := p.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		k, ok := e.(*Key)
		if !ok {
			continue
		}
		raw, err := k.Raw()
		if err != nil || len(raw) > maxRaw {
			continue
		}
		b := fmt.Appendf(nil, "REDIS%04d", p.Version())
		if k.ExpireAtMs >= 0 {
			b = binary.LittleEndian.AppendUint64(append(b, opExpireTimeMs), uint64(k.ExpireAtMs))
		}
		b = append(b, k.Type)
		b = appendLen(b, uint64(len(k.Key)))
		b = append(b, k.Key...)
		b = append(b, raw...)
		b = append(b, opEOF)
		out = append(out, binary.LittleEndian.AppendUint64(b, CRC64(0, b)))
	}
}

func FuzzParser(f *testing.F) {
	for _, path := range fixtures(f, "*-empty.rdb") {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, name := range []string{"redis-5.0.14", "redis-7.0.15", "redis-7.4.1"} {
		for _, b := range miniRDBs(f, fixtures(f, name+"-alltypes.rdb")[0], 2048) {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Feed in two halves to cross the buffer boundary.
		half := len(data) / 2
		r := io.MultiReader(bytes.NewReader(data[:half]), bytes.NewReader(data[half:]))
		p := NewParser(r, fuzzOptions)
		for i := 0; ; i++ {
			e, err := p.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				var pe *ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("error %v (%T) is not a *ParseError", err, err)
				}
				return
			}
			k, ok := e.(*Key)
			if !ok {
				continue
			}
			switch i % 3 {
			case 0:
				raw, err := k.Raw()
				if err == nil && len(raw) > fuzzOptions.MaxRawPayload {
					t.Fatalf("raw payload of %d bytes over the limit", len(raw))
				}
				_ = k.Decode(checkChunk(t))
			case 1:
				_ = k.Decode(checkChunk(t))
			}
		}
	})
}

// checkChunk asserts chunk bounds.
func checkChunk(t *testing.T) func(*Chunk) error {
	return func(c *Chunk) error {
		n := len(c.Elems)
		if c.Kind == KindHash {
			n /= 2
		}
		if n > fuzzOptions.ChunkElems || len(c.Entries) > fuzzOptions.ChunkElems ||
			len(c.Pending) > fuzzOptions.ChunkElems || len(c.ConsumerPending) > fuzzOptions.ChunkElems {
			t.Fatalf("chunk over ChunkElems: %d elems", n)
		}
		if c.Kind == KindString && len(c.Data) > fuzzOptions.ChunkBytes+264 {
			t.Fatalf("string piece of %d bytes", len(c.Data))
		}
		return nil
	}
}
