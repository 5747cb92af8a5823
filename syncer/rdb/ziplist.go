package rdb

import "encoding/binary"

// Ziplist layout (src/ziplist.c): u32 LE total bytes, u32 LE tail offset,
// u16 LE count, entries, 0xFF. Entry: prevlen (1 byte, or 0xFE + u32 LE),
// encoding, data.

const zlHeaderSize = 10

func zlEach(zl []byte, fn func(elem) error) error {
	if len(zl) < zlHeaderSize+1 {
		return &blobError{"ziplist: too short", 0}
	}
	if int(binary.LittleEndian.Uint32(zl)) != len(zl) {
		return &blobError{"ziplist: total bytes mismatch", 0}
	}
	if zl[len(zl)-1] != 0xFF {
		return &blobError{"ziplist: missing terminator", len(zl) - 1}
	}
	count := int(binary.LittleEndian.Uint16(zl[8:]))
	p := zlHeaderSize
	seen := 0
	need := func(n int) bool { return p+n <= len(zl)-1 }
	for zl[p] != 0xFF {
		// prevlen
		if zl[p] == 0xFE {
			if !need(5) {
				return &blobError{"ziplist: prevlen past end", p}
			}
			p += 5
		} else {
			p++
		}
		if !need(1) {
			return &blobError{"ziplist: entry past end", p}
		}
		b := zl[p]
		var e elem
		var strLen, hdr int
		isStr := true
		switch b >> 6 {
		case 0: // 00pppppp
			strLen, hdr = int(b&0x3F), 1
		case 1: // 01pppppp qqqqqqqq, big-endian
			if !need(2) {
				return &blobError{"ziplist: length past end", p}
			}
			strLen, hdr = int(b&0x3F)<<8|int(zl[p+1]), 2
		case 2: // 10000000 + u32 big-endian
			if b != 0x80 || !need(5) {
				return &blobError{"ziplist: bad string encoding", p}
			}
			n := binary.BigEndian.Uint32(zl[p+1:])
			if uint64(n) > uint64(len(zl)) {
				return &blobError{"ziplist: string past end", p}
			}
			strLen, hdr = int(n), 5
		default:
			isStr = false
			w := 0
			switch b {
			case 0xC0:
				w = 2
			case 0xD0:
				w = 4
			case 0xE0:
				w = 8
			case 0xF0:
				w = 3
			case 0xFE:
				w = 1
			default:
				if b < 0xF1 || b > 0xFD {
					return &blobError{"ziplist: bad encoding byte", p}
				}
				e = elem{n: int64(b&0x0F) - 1, isInt: true}
			}
			if w > 0 {
				if !need(1 + w) {
					return &blobError{"ziplist: int past end", p}
				}
				e = elem{n: leInt(zl[p+1 : p+1+w]), isInt: true}
			}
			p += 1 + w
		}
		if isStr {
			if !need(hdr + strLen) {
				return &blobError{"ziplist: string past end", p}
			}
			e = elem{s: zl[p+hdr : p+hdr+strLen]}
			p += hdr + strLen
		}
		seen++
		if err := fn(e); err != nil {
			return err
		}
	}
	if p != len(zl)-1 {
		return &blobError{"ziplist: terminator before end", p}
	}
	if count != 0xFFFF && count != seen {
		return &blobError{"ziplist: element count mismatch", 8}
	}
	return nil
}
