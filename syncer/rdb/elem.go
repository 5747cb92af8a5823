package rdb

import "strconv"

// elem is one element of a packed encoding: either a byte string (a view
// into the blob) or an integer.
type elem struct {
	s     []byte
	n     int64
	isInt bool
}

// appendTo appends the element's string form: integers in decimal, as Redis
// returns them.
func (e elem) appendTo(dst []byte) []byte {
	if e.isInt {
		return strconv.AppendInt(dst, e.n, 10)
	}
	return append(dst, e.s...)
}

// int returns the element as an integer, parsing strings.
func (e elem) int() (int64, bool) {
	if e.isInt {
		return e.n, true
	}
	n, err := strconv.ParseInt(string(e.s), 10, 64)
	return n, err == nil
}

// float returns the element as a float64 (zset scores are stored as text or
// integers inside packed encodings).
func (e elem) float() (float64, bool) {
	if e.isInt {
		return float64(e.n), true
	}
	f, err := strconv.ParseFloat(string(e.s), 64)
	return f, err == nil
}

// blobError describes a malformed packed encoding. off is the position
// inside the (decompressed) blob.
type blobError struct {
	what string
	off  int
}

func (e *blobError) Error() string {
	return e.what + " at blob offset " + strconv.Itoa(e.off)
}
