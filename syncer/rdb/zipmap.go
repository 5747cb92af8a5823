package rdb

import "encoding/binary"

// Zipmap layout (src/zipmap.c, RDB type 9 only): 1-byte count, then entries
// <len>key<len><free>value<free bytes>, 0xFF. <len> is one byte below 254,
// or 254 followed by a u32 (host order; little-endian in practice).

func zipmapEach(zm []byte, fn func(elem) error) error {
	if len(zm) < 2 {
		return &blobError{"zipmap: too short", 0}
	}
	p := 1
	readLen := func() (int, bool) {
		if p >= len(zm) {
			return 0, false
		}
		b := zm[p]
		if b < 254 {
			p++
			return int(b), true
		}
		if b != 254 || p+5 > len(zm) {
			return 0, false
		}
		n := binary.LittleEndian.Uint32(zm[p+1:])
		p += 5
		if uint64(n) > uint64(len(zm)) {
			return 0, false
		}
		return int(n), true
	}
	for {
		if p >= len(zm) {
			return &blobError{"zipmap: missing terminator", p}
		}
		if zm[p] == 0xFF {
			if p != len(zm)-1 {
				return &blobError{"zipmap: terminator before end", p}
			}
			return nil
		}
		kl, ok := readLen()
		if !ok || p+kl > len(zm) {
			return &blobError{"zipmap: bad key", p}
		}
		key := zm[p : p+kl]
		p += kl
		vl, ok := readLen()
		if !ok || p >= len(zm) {
			return &blobError{"zipmap: bad value", p}
		}
		free := int(zm[p])
		p++
		if p+vl+free > len(zm) {
			return &blobError{"zipmap: value past end", p}
		}
		val := zm[p : p+vl]
		p += vl + free
		if err := fn(elem{s: key}); err != nil {
			return err
		}
		if err := fn(elem{s: val}); err != nil {
			return err
		}
	}
}
