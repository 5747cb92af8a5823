package rdb

// LZF decompression (liblzf format, src/lzf_d.c). A control byte below 32
// starts a literal run of ctrl+1 bytes; otherwise the top 3 bits are a match
// length (7 means an extra length byte follows), the low 5 bits and the next
// byte a back-reference distance minus one, and the match copies length+2
// bytes.

// lzfWindow is the farthest back a match can reach: 13 bits of distance.
const lzfWindow = 1 << 13

// lzfDecompress appends the decompression of in to dst and fails unless the
// output is exactly ulen bytes. Memory grows only with real output.
func lzfDecompress(dst, in []byte, ulen int) ([]byte, error) {
	start := len(dst)
	limit := start + ulen
	ip := 0
	for ip < len(in) {
		ctrl := int(in[ip])
		ip++
		if ctrl < 32 {
			n := ctrl + 1
			if ip+n > len(in) {
				return dst, &blobError{"lzf: literal past input end", ip}
			}
			if len(dst)+n > limit {
				return dst, &blobError{"lzf: output longer than declared", ip}
			}
			dst = append(dst, in[ip:ip+n]...)
			ip += n
			continue
		}
		n := ctrl >> 5
		if n == 7 {
			if ip >= len(in) {
				return dst, &blobError{"lzf: truncated match", ip}
			}
			n += int(in[ip])
			ip++
		}
		if ip >= len(in) {
			return dst, &blobError{"lzf: truncated match", ip}
		}
		ref := len(dst) - ((ctrl & 0x1f) << 8) - 1 - int(in[ip])
		ip++
		n += 2
		if ref < start {
			return dst, &blobError{"lzf: back-reference before output start", ip}
		}
		if len(dst)+n > limit {
			return dst, &blobError{"lzf: output longer than declared", ip}
		}
		for i := 0; i < n; i++ { // byte by byte: source and target may overlap
			dst = append(dst, dst[ref+i])
		}
	}
	if len(dst) != limit {
		return dst, &blobError{"lzf: output shorter than declared", ip}
	}
	return dst, nil
}
