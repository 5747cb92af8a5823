package rdb

import (
	"bytes"
	"io"
	"os"
	"testing"
)

// largestFixture returns the biggest *-alltypes.rdb.
func largestFixture(b *testing.B) []byte {
	var best []byte
	for _, path := range fixtures(b, "*-alltypes.rdb") {
		data, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		if len(data) > len(best) {
			best = data
		}
	}
	return best
}

func BenchmarkParse(b *testing.B) {
	data := largestFixture(b)
	modes := []struct {
		name string
		fn   func(*Key) error
	}{
		{"skip", func(*Key) error { return nil }},
		{"raw", func(k *Key) error {
			_, err := k.Raw()
			if err == ErrRawTooLarge {
				err = nil
			}
			return err
		}},
		{"decode", func(k *Key) error { return k.Decode(func(*Chunk) error { return nil }) }},
	}
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			p := NewParser(nil, Options{})
			for b.Loop() {
				p.Reset(bytes.NewReader(data))
				for {
					e, err := p.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					if k, ok := e.(*Key); ok {
						if err := m.fn(k); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
		})
	}
}
