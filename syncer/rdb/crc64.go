package rdb

import (
	"encoding/binary"
	"hash/crc64"
)

// Redis uses CRC-64/Jones: polynomial 0xad93d23594c935a9 reflected, init 0,
// no final xor (src/crc64.c). Go's table for the reflected polynomial
// matches; Go inverts input and output, which the wrappers undo.
var jonesTable = crc64.MakeTable(0x95AC9329AC4BC9B5)

// CRC64 extends crc (0 to start) with data using the Redis CRC-64/Jones
// checksum, as used by RDB trailers and DUMP payloads.
func CRC64(crc uint64, data []byte) uint64 {
	return ^crc64.Update(^crc, jonesTable, data)
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
