package rdb

import "encoding/binary"

// Intset layout (src/intset.h): u32 LE element width (2, 4 or 8), u32 LE
// count, then count sorted little-endian signed integers.

func intsetEach(is []byte, fn func(elem) error) error {
	if len(is) < 8 {
		return &blobError{"intset: too short", 0}
	}
	w := binary.LittleEndian.Uint32(is)
	if w != 2 && w != 4 && w != 8 {
		return &blobError{"intset: bad width", 0}
	}
	n := uint64(binary.LittleEndian.Uint32(is[4:]))
	if 8+n*uint64(w) != uint64(len(is)) {
		return &blobError{"intset: size mismatch", 4}
	}
	for p := 8; p < len(is); p += int(w) {
		if err := fn(elem{n: leInt(is[p : p+int(w)]), isInt: true}); err != nil {
			return err
		}
	}
	return nil
}
