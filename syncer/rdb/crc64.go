package rdb

import "encoding/binary"

// Redis uses CRC-64/Jones: polynomial 0xad93d23594c935a9, reflected (hence
// 0x95ac9329ac4bc9b5 below), init 0, no final xor (src/crc64.c; check
// value crc64("123456789") = 0xe9c6d914c4b8d9ca, from its self-test).
//
// It is computed here slicing-by-8, eight bytes per step. hash/crc64 gives
// the same result but only uses its fast path for its own two polynomials:
// for ours it compares 2 KiB tables on every call of 64 bytes or more and
// rebuilds a slicing table on every call of 2 KiB or more, which made the
// checksum of DUMP payloads the largest CPU cost of loading a snapshot.
const jonesPoly = 0x95ac9329ac4bc9b5

// crcTable[0] is the byte-at-a-time table; crcTable[k][b] is the CRC of
// byte b followed by k zero bytes.
var crcTable = func() *[8][256]uint64 {
	t := new([8][256]uint64)
	for i := range 256 {
		c := uint64(i)
		for range 8 {
			if c&1 == 1 {
				c = c>>1 ^ jonesPoly
			} else {
				c >>= 1
			}
		}
		t[0][i] = c
	}
	for i := range 256 {
		c := t[0][i]
		for k := 1; k < 8; k++ {
			c = t[0][c&0xff] ^ c>>8
			t[k][i] = c
		}
	}
	return t
}()

// CRC64 extends crc (0 to start) with data using the Redis CRC-64/Jones
// checksum, as used by RDB trailers and DUMP payloads.
func CRC64(crc uint64, data []byte) uint64 {
	t := crcTable
	for len(data) >= 8 {
		crc ^= binary.LittleEndian.Uint64(data)
		crc = t[7][crc&0xff] ^ t[6][crc>>8&0xff] ^ t[5][crc>>16&0xff] ^ t[4][crc>>24&0xff] ^
			t[3][crc>>32&0xff] ^ t[2][crc>>40&0xff] ^ t[1][crc>>48&0xff] ^ t[0][crc>>56]
		data = data[8:]
	}
	for _, b := range data {
		crc = t[0][byte(crc)^b] ^ crc>>8
	}
	return crc
}

// AppendDumpPayload appends to dst the DUMP/RESTORE payload of one value:
// the RDB type byte, object (the serialized value exactly as in an RDB file,
// as returned by Key.Raw), rdbVersion as 2 bytes little-endian, then the
// CRC64 of all of those as 8 bytes little-endian (src/cluster.c
// createDumpPayload). Earlier content of dst is not covered by the CRC.
func AppendDumpPayload(dst []byte, rdbType byte, object []byte, rdbVersion uint16) []byte {
	start := len(dst)
	dst = append(dst, rdbType)
	dst = append(dst, object...)
	dst = binary.LittleEndian.AppendUint16(dst, rdbVersion)
	crc := CRC64(0, dst[start:])
	return binary.LittleEndian.AppendUint64(dst, crc)
}
