package rdb

import "encoding/binary"

// Listpack layout (src/listpack.c): u32 LE total bytes, u16 LE element
// count (65535 = unknown), entries, 0xFF. Each entry is encoding+data
// followed by a 1..5 byte "backlen" holding the entry size for backward
// walks.

const (
	lpHeaderSize = 6
	lpEOF        = 0xFF
)

// lpEach calls fn for every element of the listpack lp, in order.
func lpEach(lp []byte, fn func(elem) error) error {
	it, err := newLpIter(lp)
	if err != nil {
		return err
	}
	for {
		e, ok, err := it.next()
		if err != nil || !ok {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

// lpIter walks a listpack forward.
type lpIter struct {
	lp    []byte
	p     int
	count int // from the header, 0xFFFF = unknown
	seen  int
}

func newLpIter(lp []byte) (lpIter, error) {
	if len(lp) < lpHeaderSize+1 {
		return lpIter{}, &blobError{"listpack: too short", 0}
	}
	if int(binary.LittleEndian.Uint32(lp)) != len(lp) {
		return lpIter{}, &blobError{"listpack: total bytes mismatch", 0}
	}
	if lp[len(lp)-1] != lpEOF {
		return lpIter{}, &blobError{"listpack: missing terminator", len(lp) - 1}
	}
	return lpIter{lp: lp, p: lpHeaderSize, count: int(binary.LittleEndian.Uint16(lp[4:]))}, nil
}

// next returns the next element; ok is false at the end.
func (it *lpIter) next() (e elem, ok bool, err error) {
	lp, p := it.lp, it.p
	if p >= len(lp) {
		return e, false, &blobError{"listpack: entry past end", p}
	}
	b := lp[p]
	if b == lpEOF {
		if p != len(lp)-1 {
			return e, false, &blobError{"listpack: terminator before end", p}
		}
		if it.count != 0xFFFF && it.count != it.seen {
			return e, false, &blobError{"listpack: element count mismatch", 4}
		}
		return e, false, nil
	}
	var size int // encoding + data bytes
	switch {
	case b&0x80 == 0: // 0xxxxxxx: 7-bit unsigned int
		e, size = elem{n: int64(b), isInt: true}, 1
	case b&0xC0 == 0x80: // 10xxxxxx: 6-bit string length
		n := int(b & 0x3F)
		size = 1 + n
		if p+size > len(lp) {
			return e, false, &blobError{"listpack: string past end", p}
		}
		e = elem{s: lp[p+1 : p+size]}
	case b&0xE0 == 0xC0: // 110xxxxx yyyyyyyy: 13-bit signed int
		if p+2 > len(lp) {
			return e, false, &blobError{"listpack: int past end", p}
		}
		v := int64(b&0x1F)<<8 | int64(lp[p+1])
		if v >= 1<<12 {
			v -= 1 << 13
		}
		e, size = elem{n: v, isInt: true}, 2
	case b&0xF0 == 0xE0: // 1110xxxx yyyyyyyy: 12-bit string length
		if p+2 > len(lp) {
			return e, false, &blobError{"listpack: length past end", p}
		}
		n := int(b&0x0F)<<8 | int(lp[p+1])
		size = 2 + n
		if p+size > len(lp) {
			return e, false, &blobError{"listpack: string past end", p}
		}
		e = elem{s: lp[p+2 : p+size]}
	case b == 0xF0: // 32-bit string length
		if p+5 > len(lp) {
			return e, false, &blobError{"listpack: length past end", p}
		}
		n := uint64(binary.LittleEndian.Uint32(lp[p+1:]))
		if uint64(p)+5+n > uint64(len(lp)) {
			return e, false, &blobError{"listpack: string past end", p}
		}
		size = 5 + int(n)
		e = elem{s: lp[p+5 : p+size]}
	case b >= 0xF1 && b <= 0xF4: // int16, int24, int32, int64 LE
		w := [...]int{2, 3, 4, 8}[b-0xF1]
		if p+1+w > len(lp) {
			return e, false, &blobError{"listpack: int past end", p}
		}
		e, size = elem{n: leInt(lp[p+1 : p+1+w]), isInt: true}, 1+w
	default:
		return e, false, &blobError{"listpack: bad encoding byte", p}
	}
	bl := lpBacklenSize(size)
	if p+size+bl > len(lp) {
		return e, false, &blobError{"listpack: backlen past end", p}
	}
	it.p = p + size + bl
	it.seen++
	return e, true, nil
}

// lpBacklenSize is the size of the backlen field for an entry of l bytes.
func lpBacklenSize(l int) int {
	switch {
	case l <= 127:
		return 1
	case l < 16383:
		return 2
	case l < 2097151:
		return 3
	case l < 268435455:
		return 4
	}
	return 5
}

// leInt decodes a signed little-endian integer of 1..8 bytes.
func leInt(b []byte) int64 {
	var u uint64
	for i := len(b) - 1; i >= 0; i-- {
		u = u<<8 | uint64(b[i])
	}
	shift := 64 - 8*uint(len(b))
	return int64(u<<shift) >> shift
}
