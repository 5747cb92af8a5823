package rdb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand"
	"os"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// rdbWriter builds RDB bytes for tests.
type rdbWriter struct{ b []byte }

func newRDB(version int) *rdbWriter {
	return &rdbWriter{b: []byte(fmt.Sprintf("REDIS%04d", version))}
}

func (w *rdbWriter) raw(b ...byte) *rdbWriter { w.b = append(w.b, b...); return w }

func (w *rdbWriter) len(n uint64) *rdbWriter {
	w.b = appendLen(w.b, n)
	return w
}

func appendLen(b []byte, n uint64) []byte {
	switch {
	case n < 1<<6:
		return append(b, byte(n))
	case n < 1<<14:
		return append(b, byte(n>>8)|0x40, byte(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0x80), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 0x81), n)
}

func (w *rdbWriter) str(s string) *rdbWriter {
	w.len(uint64(len(s)))
	w.b = append(w.b, s...)
	return w
}

func (w *rdbWriter) u64(v uint64) *rdbWriter {
	w.b = binary.LittleEndian.AppendUint64(w.b, v)
	return w
}

// end appends EOF and the CRC64 trailer.
func (w *rdbWriter) end() []byte {
	w.b = append(w.b, opEOF)
	return binary.LittleEndian.AppendUint64(w.b, CRC64(0, w.b))
}

// lpBuild encodes a listpack of strings and ints (7-bit uints or int64).
func lpBuild(elems ...any) []byte {
	b := make([]byte, 6)
	for _, e := range elems {
		start := len(b)
		switch v := e.(type) {
		case string:
			b = append(b, 0x80|byte(len(v)))
			b = append(b, v...)
		case int:
			if v >= 0 && v < 128 {
				b = append(b, byte(v))
			} else {
				b = binary.LittleEndian.AppendUint64(append(b, 0xF4), uint64(v))
			}
		}
		b = append(b, byte(len(b)-start))
	}
	b = append(b, 0xFF)
	binary.LittleEndian.PutUint32(b, uint32(len(b)))
	binary.LittleEndian.PutUint16(b[4:], uint16(len(elems)))
	return b
}

// zlBuild encodes a ziplist of short strings and small ints.
func zlBuild(elems ...any) []byte {
	b := make([]byte, 10)
	prev := 0
	for _, e := range elems {
		start := len(b)
		b = append(b, byte(prev))
		switch v := e.(type) {
		case string:
			b = append(b, byte(len(v)))
			b = append(b, v...)
		case int:
			switch {
			case v >= 0 && v <= 12:
				b = append(b, 0xF1+byte(v))
			case v >= -128 && v < 128:
				b = append(b, 0xFE, byte(int8(v)))
			default:
				b = binary.LittleEndian.AppendUint16(append(b, 0xC0), uint16(int16(v)))
			}
		}
		prev = len(b) - start
	}
	b = append(b, 0xFF)
	binary.LittleEndian.PutUint32(b, uint32(len(b)))
	binary.LittleEndian.PutUint16(b[8:], uint16(len(elems)))
	return b
}

// collect decodes a value into a flat list of strings; zset scores and
// field TTLs are appended as formatted text after their element.
func collect(k *Key) ([]string, error) {
	var out []string
	err := k.Decode(func(c *Chunk) error {
		if c.Kind == KindString || c.Kind == KindModule {
			out = append(out, string(c.Data))
			return nil
		}
		for i, e := range c.Elems {
			out = append(out, string(e))
			if c.Scores != nil {
				out = append(out, fmt.Sprint(c.Scores[i]))
			}
			if c.FieldExpireAtMs != nil && i%2 == 1 {
				out = append(out, fmt.Sprint(c.FieldExpireAtMs[i/2]))
			}
		}
		return nil
	})
	return out, err
}

func TestSyntheticTypes(t *testing.T) {
	zipmap := []byte{2, 1, 'f', 1, 0, 'v', 1, 'g', 2, 1, 'w', 'w', 0, 0xFF}
	tests := []struct {
		name string
		typ  byte
		body func(w *rdbWriter)
		want []string
	}{
		{"list-plain", TypeList, func(w *rdbWriter) { w.len(2).str("a").str("b") }, []string{"a", "b"}},
		{"list-ziplist", TypeListZiplist, func(w *rdbWriter) {
			w.str(string(zlBuild("x", 5, 300, -2, "longer")))
		}, []string{"x", "5", "300", "-2", "longer"}},
		{"hash-zipmap", TypeHashZipmap, func(w *rdbWriter) { w.str(string(zipmap)) }, []string{"f", "v", "g", "ww"}},
		{"zset-v1", TypeZSet, func(w *rdbWriter) {
			w.len(3).str("a").raw(3, '1', '.', '5').str("b").raw(254).str("c").raw(255)
		}, []string{"a", "1.5", "b", "+Inf", "c", "-Inf"}},
		{"hash-metadata-pre-ga", TypeHashMetadataPreGA, func(w *rdbWriter) {
			w.len(2).len(0).str("f1").str("v1").len(1234).str("f2").str("v2")
		}, []string{"f1", "v1", "0", "f2", "v2", "1234"}},
		{"hash-metadata", TypeHashMetadata, func(w *rdbWriter) {
			w.u64(1000).len(2).len(0).str("f1").str("v1").len(5).str("f2").str("v2")
		}, []string{"f1", "v1", "0", "f2", "v2", "1004"}},
		{"hash-listpack-ex-pre-ga", TypeHashListpackExPreGA, func(w *rdbWriter) {
			w.str(string(lpBuild("f", "v", 0, "g", "w", 1700000000000)))
		}, []string{"f", "v", "0", "g", "w", "1700000000000"}},
		{"quicklist2-plain-and-packed", TypeListQuicklist2, func(w *rdbWriter) {
			w.len(2).len(1).str("plain-node").len(2).str(string(lpBuild("p", 7)))
		}, []string{"plain-node", "p", "7"}},
		{"quicklist1", TypeListQuicklist, func(w *rdbWriter) {
			w.len(2).str(string(zlBuild("a"))).str(string(zlBuild(1, "b")))
		}, []string{"a", "1", "b"}},
		{"set-intset16", TypeSetIntset, func(w *rdbWriter) {
			w.str(string([]byte{2, 0, 0, 0, 2, 0, 0, 0, 0xFF, 0xFF, 7, 0}))
		}, []string{"-1", "7"}},
		{"string-int16", TypeString, func(w *rdbWriter) { w.raw(0xC1, 0x30, 0xF8) }, []string{"-2000"}},
		{"module", TypeModule2, func(w *rdbWriter) {
			w.len(12345).len(modUInt).len(5).len(modString).str("x").
				len(modDouble).u64(0).len(modFloat).raw(0, 0, 0, 0).len(modSInt).len(3).len(modEOF)
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newRDB(9).raw(opSelectDB).len(2).raw(opExpireTime).raw(1, 0, 0, 0).
				raw(opIdle).len(77).raw(opFreq, 9).raw(tc.typ).str("k")
			valStart := len(w.b)
			tc.body(w)
			value := append([]byte(nil), w.b[valStart:]...)
			data := w.raw(TypeString).str("after").str("v").end()

			for _, rd := range []func(io.Reader) io.Reader{iotest.OneByteReader, iotest.HalfReader} {
				p := NewParser(rd(bytes.NewReader(data)), Options{ChunkElems: 2})
				e, err := p.Next()
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := e.(*SelectDB); !ok {
					t.Fatalf("got %T, want *SelectDB", e)
				}
				e, err = p.Next()
				if err != nil {
					t.Fatal(err)
				}
				k := e.(*Key)
				if k.DB != 2 || string(k.Key) != "k" || k.ExpireAtMs != 1000 || k.Idle != 77 || k.Freq != 9 {
					t.Errorf("key %+v", k)
				}
				raw, err := k.Raw()
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(raw, value) {
					t.Errorf("raw %x, want %x", raw, value)
				}
				if id, ok := k.ModuleID(); tc.typ == TypeModule2 && (!ok || id != 12345) || tc.typ != TypeModule2 && ok {
					t.Errorf("ModuleID = %d, %v", id, ok)
				}
				got, err := collect(k)
				if err != nil {
					t.Fatal(err)
				}
				if tc.typ == TypeModule2 {
					want := []string{string(value[len(appendLen(nil, 12345)):])}
					if !reflect.DeepEqual(got, want) {
						t.Errorf("module payload %q, want %q", got, want)
					}
				} else if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("decoded %q, want %q", got, tc.want)
				}
				if err := k.Decode(func(*Chunk) error { return nil }); !errors.Is(err, ErrConsumed) {
					t.Errorf("second Decode: %v, want ErrConsumed", err)
				}
				e, err = p.Next()
				if err != nil {
					t.Fatal(err)
				}
				if k := e.(*Key); string(k.Key) != "after" || k.ExpireAtMs != -1 || k.Idle != -1 || k.Freq != -1 {
					t.Errorf("next key %+v", k)
				}
				if e, err = p.Next(); err != nil {
					t.Fatal(err)
				}
				if _, ok := e.(*End); !ok {
					t.Fatalf("got %T, want *End", e)
				}
			}
		})
	}
}

func TestSyntheticOpcodes(t *testing.T) {
	data := newRDB(12).
		raw(opModuleAux).len(99).len(modUInt).len(2).len(modString).str("aux").len(modEOF).
		raw(opFunctionPreGA).str("lib").str("LUA").len(1).str("desc").str("return 1").
		raw(opFunctionPreGA).str("lib2").str("LUA").len(0).str("return 2").
		raw(opSlotInfo).len(100).len(5).len(1).
		raw(opAux).str("k").raw(0xC0, 0xFB).
		end()
	p := NewParser(bytes.NewReader(data), Options{})
	var got []string
	for {
		e, err := p.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch e := e.(type) {
		case *ModuleAux:
			got = append(got, fmt.Sprintf("modaux %d %d %x", e.ModuleID, e.When, e.Payload))
		case *Function:
			got = append(got, fmt.Sprintf("fn %v %s %s %q %s", e.PreGA, e.Name, e.Engine, e.Description, e.Code))
		case *SlotInfo:
			got = append(got, fmt.Sprintf("slot %d %d %d", e.Slot, e.Size, e.ExpiresSize))
		case *Aux:
			got = append(got, fmt.Sprintf("aux %s=%s", e.Key, e.Value))
		case *End:
			got = append(got, "end")
		}
	}
	want := []string{
		"modaux 99 2 05036175780" + "0",
		`fn true lib LUA "desc" return 1`,
		`fn true lib2 LUA "" return 2`,
		"slot 100 5 1",
		"aux k=-5",
		"end",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestModuleName(t *testing.T) {
	// "ReJSON-RL" with encver 3, packed as in src/module.c.
	const cset = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var id uint64
	for _, c := range "ReJSON-RL" {
		id = id<<6 | uint64(strings.IndexRune(cset, c))
	}
	id = id<<10 | 3
	if name, ver := ModuleName(id); name != "ReJSON-RL" || ver != 3 {
		t.Errorf("ModuleName = %q %d", name, ver)
	}
}

func TestOldVersionNoChecksum(t *testing.T) {
	data := newRDB(4).raw(TypeString).str("k").str("v").raw(opEOF).b
	p := NewParser(bytes.NewReader(data), Options{})
	for {
		_, err := p.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// lzfLiteralsAndMatches builds an LZF stream: literal runs of random bytes
// and far back-references, plus the expected output.
func lzfLiteralsAndMatches(rng *rand.Rand, rounds int) (comp, plain []byte) {
	for i := 0; i < rounds; i++ {
		lit := make([]byte, 32)
		rng.Read(lit)
		comp = append(comp, 31)
		comp = append(comp, lit...)
		plain = append(plain, lit...)
		if len(plain) >= 100 {
			dist := 1 + rng.Intn(min(len(plain), lzfWindow))
			n := 3 + rng.Intn(262) // 3..264
			l := n - 2
			if l >= 7 {
				comp = append(comp, byte(7<<5|(dist-1)>>8), byte(l-7), byte(dist-1))
			} else {
				comp = append(comp, byte(l<<5|(dist-1)>>8), byte(dist-1))
			}
			for j := 0; j < n; j++ {
				plain = append(plain, plain[len(plain)-dist])
			}
		}
	}
	return comp, plain
}

func TestLZFStreaming(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	comp, plain := lzfLiteralsAndMatches(rng, 3000)
	block, err := lzfDecompress(nil, comp, len(plain))
	if err != nil || !bytes.Equal(block, plain) {
		t.Fatalf("block decompress: %v", err)
	}
	w := newRDB(9).raw(TypeString).str("big").raw(0xC3).len(uint64(len(comp))).len(uint64(len(plain)))
	data := w.raw(comp...).end()
	for _, chunk := range []int{100, 4096, 1 << 20} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			p := NewParser(iotest.HalfReader(bytes.NewReader(data)), Options{ChunkBytes: chunk})
			e, err := p.Next()
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			err = e.(*Key).Decode(func(c *Chunk) error {
				if c.Offset != int64(len(got)) || c.Size != int64(len(plain)) || len(c.Data) > chunk+264 {
					return fmt.Errorf("chunk off %d size %d len %d", c.Offset, c.Size, len(c.Data))
				}
				got = append(got, c.Data...)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, plain) {
				t.Fatal("decompressed value differs")
			}
			if _, err := p.Next(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestHugeStringChunked checks that a plain string larger than the raw
// limit is handed out in bounded pieces after Raw declines it.
func TestHugeStringChunked(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 300<<10) // 4.8 MiB
	data := newRDB(11).raw(TypeString).str("big").str(string(big)).end()
	p := NewParser(bytes.NewReader(data), Options{MaxRawPayload: 1 << 20, ChunkBytes: 64 << 10})
	e, err := p.Next()
	if err != nil {
		t.Fatal(err)
	}
	k := e.(*Key)
	if _, err := k.Raw(); !errors.Is(err, ErrRawTooLarge) {
		t.Fatalf("Raw: %v, want ErrRawTooLarge", err)
	}
	var n int
	err = k.Decode(func(c *Chunk) error {
		if len(c.Data) > 64<<10 || !bytes.Equal(c.Data, big[n:n+len(c.Data)]) {
			return fmt.Errorf("bad piece at %d (%d bytes)", n, len(c.Data))
		}
		n += len(c.Data)
		return nil
	})
	if err != nil || n != len(big) {
		t.Fatalf("decode: %v, %d bytes", err, n)
	}
	if e, err := p.Next(); err != nil {
		t.Fatal(err)
	} else if _, ok := e.(*End); !ok {
		t.Fatalf("got %T", e)
	}
}

func TestCallbackErrorIsSticky(t *testing.T) {
	data := newRDB(9).raw(TypeList).str("l").len(2).str("a").str("b").end()
	p := NewParser(bytes.NewReader(data), Options{ChunkElems: 1})
	e, err := p.Next()
	if err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop")
	if err := e.(*Key).Decode(func(*Chunk) error { return stop }); err != stop {
		t.Fatalf("Decode: %v, want stop", err)
	}
	for range 2 {
		if _, err := p.Next(); err != stop {
			t.Fatalf("Next after failed Decode: %v, want stop", err)
		}
	}
}

func TestBadInput(t *testing.T) {
	good := newRDB(9).raw(TypeString).str("k").str("v").end()
	corruptCRC := append([]byte(nil), good...)
	corruptCRC[len(corruptCRC)-1] ^= 1
	zeroCRC := append(append([]byte(nil), good[:len(good)-8]...), make([]byte, 8)...)
	tests := []struct {
		name string
		data []byte
		opts Options
		want error // nil: parses fine
	}{
		{"good", good, Options{}, nil},
		{"zero-checksum", zeroCRC, Options{}, nil},
		{"bad-checksum", corruptCRC, Options{}, ErrChecksum},
		{"bad-checksum-ignored", corruptCRC, Options{IgnoreChecksum: true}, nil},
		{"not-rdb", []byte("HELLO0009"), Options{}, ErrHeader},
		{"bad-digits", []byte("REDIS00x9"), Options{}, ErrHeader},
		{"future-version", []byte("REDIS0013\xff"), Options{}, ErrVersion},
		{"empty", nil, Options{}, ErrTruncated},
		{"unknown-opcode", newRDB(9).raw(0xF0).end(), Options{}, ErrUnknownType},
		{"module-pre-ga", newRDB(9).raw(TypeModulePreGA).str("k").end(), Options{}, ErrUnknownType},
		{"huge-string", newRDB(9).raw(TypeString).str("k").len(1 << 40).end(), Options{}, ErrTruncated},
		{"huge-member", newRDB(9).raw(TypeSet).str("k").len(1).len(1 << 40).end(), Options{}, ErrTooLarge},
		{"huge-key", newRDB(9).raw(TypeSet).len(1 << 62).end(), Options{}, ErrTooLarge},
		{"bulk-over-limit", newRDB(9).raw(TypeString).str("kkkkkkkkkk").str("v").end(), Options{MaxBulk: 4}, ErrTooLarge},
		{"length-past-end", newRDB(9).raw(TypeSet).str("k").len(1).len(1000).raw('x').b, Options{}, ErrTruncated},
		{"bad-lzf", newRDB(9).raw(TypeString).str("k").raw(0xC3).len(2).len(10).raw(0x20, 0x05).end(), Options{}, ErrCorrupt},
		{"bad-listpack", newRDB(9).raw(TypeSetListpack).str("k").str("\x07\x00\x00\x00\x01\x00\xff").end(), Options{}, ErrCorrupt},
		{"bad-quicklist-container", newRDB(11).raw(TypeListQuicklist2).str("k").len(1).len(3).str("x").end(), Options{}, ErrCorrupt},
		{"bad-length-byte", newRDB(9).raw(TypeString).raw(0x82).end(), Options{}, ErrCorrupt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseAll(bytes.NewReader(tc.data), tc.opts, modeDecode)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *ParseError", err)
			}
		})
	}
}

// TestTruncatedEverywhere cuts a fixture at many offsets: every prefix must
// fail with ErrTruncated (never panic, never succeed).
func TestTruncatedEverywhere(t *testing.T) {
	data, err := os.ReadFile(fixtures(t, "redis-7.4.1-alltypes.rdb")[0])
	if err != nil {
		t.Fatal(err)
	}
	for cut := 0; cut < len(data); cut += 1 + cut/50 {
		_, err := parseAll(bytes.NewReader(data[:cut]), Options{}, modeRawDecode)
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("cut at %d: %v, want ErrTruncated", cut, err)
		}
	}
}

func TestCRC64CheckValue(t *testing.T) {
	// src/crc64.c test vector.
	if got := CRC64(0, []byte("123456789")); got != 0xe9c6d914c4b8d9ca {
		t.Errorf("CRC64 = %x", got)
	}
	if got := CRC64(CRC64(0, []byte("1234")), []byte("56789")); got != 0xe9c6d914c4b8d9ca {
		t.Errorf("chained CRC64 = %x", got)
	}
}
