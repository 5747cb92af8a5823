package router

// SlotCount is the number of hash slots in Redis Cluster's key space.
const SlotCount = 16384

// crcTable is CRC16-XMODEM (CCITT polynomial 0x1021, initial value 0, no
// reflection), the checksum Redis Cluster hashes keys with (src/crc16.c,
// keyHashSlot in src/cluster.c).
var crcTable = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for j := 0; j < 8; j++ {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// CRC16 returns the CRC16-XMODEM checksum of b.
func CRC16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc = crc<<8 ^ crcTable[byte(crc>>8)^c]
	}
	return crc
}

// HashTag returns the part of key that decides its slot: the bytes between
// the first '{' and the next '}' when that span is non-empty, else the whole
// key. So "{user1000}.following" hashes "user1000", "foo{}{bar}" hashes the
// whole key and "foo{{bar}}zap" hashes "{bar".
func HashTag(key []byte) []byte {
	for i, c := range key {
		if c != '{' {
			continue
		}
		for j := i + 1; j < len(key); j++ {
			if key[j] == '}' {
				if j == i+1 {
					return key
				}
				return key[i+1 : j]
			}
		}
		return key
	}
	return key
}

// Slot returns the hash slot of key, 0 to SlotCount-1.
func Slot(key []byte) uint16 {
	return CRC16(HashTag(key)) & (SlotCount - 1)
}
