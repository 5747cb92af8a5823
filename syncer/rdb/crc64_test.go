package rdb

import (
	"hash/crc64"
	"math/rand/v2"
	"strconv"
	"testing"
)

// referenceCRC64 is CRC-64/Jones through hash/crc64, which inverts input
// and output around its update; the slicing version must agree with it.
func referenceCRC64(crc uint64, data []byte) uint64 {
	return ^crc64.Update(^crc, crc64.MakeTable(jonesPoly), data)
}

func TestCRC64MatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 300 {
		b := make([]byte, n*7)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		// In one call, and split at an arbitrary point (streams are
		// checksummed block by block).
		if got, want := CRC64(0, b), referenceCRC64(0, b); got != want {
			t.Fatalf("len %d: %x, want %x", len(b), got, want)
		}
		cut := rng.IntN(len(b) + 1)
		if got, want := CRC64(CRC64(0, b[:cut]), b[cut:]), referenceCRC64(0, b); got != want {
			t.Fatalf("len %d split at %d: %x, want %x", len(b), cut, got, want)
		}
	}
}

func FuzzCRC64(f *testing.F) {
	f.Add([]byte("123456789"), uint64(0))
	f.Add(make([]byte, 77), uint64(0xe9c6d914c4b8d9ca))
	f.Fuzz(func(t *testing.T, b []byte, crc uint64) {
		if got, want := CRC64(crc, b), referenceCRC64(crc, b); got != want {
			t.Fatalf("%x, want %x", got, want)
		}
	})
}

func BenchmarkCRC64(b *testing.B) {
	for _, n := range []int{100, 4096} {
		data := make([]byte, n)
		b.Run("slicing8/"+strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for range b.N {
				CRC64(0, data)
			}
		})
		b.Run("hash-crc64/"+strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			tab := crc64.MakeTable(jonesPoly)
			for range b.N {
				_ = crc64.Update(0, tab, data)
			}
		})
	}
}
