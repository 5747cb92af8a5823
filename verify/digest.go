package verify

import (
	"encoding/binary"
	"errors"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// ordered digests a sequence whose order is part of the value (a list, a
// sorted set in rank order, a stream's entries, a string's chunks): each
// element is written length-prefixed into one running xxhash, so ["ab"] and
// ["a","b"] differ. Its memory does not grow with the value.
type ordered struct {
	d   xxhash.Digest
	n   int64
	buf [binary.MaxVarintLen64]byte
}

func (o *ordered) reset() { o.d.Reset(); o.n = 0 }

func (o *ordered) add(s string) {
	o.n++
	o.d.Write(binary.AppendUvarint(o.buf[:0], uint64(len(s))))
	o.d.WriteString(s)
}

// raw writes bytes with no framing: the chunks of one string value.
func (o *ordered) raw(s string) { o.d.WriteString(s) }

// unordered digests a collection whose order is the server's business (a
// set's members, a hash's fields): the sum of each element's own hash, and
// the count. Sum is commutative, so any SSCAN/HSCAN order gives the same
// digest, and nothing but the running sum is kept. An element returned twice
// by a scan counts twice; callers compare n with SCARD/HLEN to notice.
type unordered struct {
	sum uint64
	n   int64
	h   ordered // scratch for one element's hash
}

func (u *unordered) add(parts ...string) {
	u.h.reset()
	for _, p := range parts {
		u.h.add(p)
	}
	u.sum += u.h.d.Sum64()
	u.n++
}

// final mixes a collection digest with its type tag and count.
func final(tag string, n int64, v uint64) uint64 {
	var b [64]byte
	out := append(b[:0], tag...)
	out = binary.AppendVarint(out, n)
	out = binary.LittleEndian.AppendUint64(out, v)
	return xxhash.Sum64(out)
}

// errStreamID is returned by nextStreamID for text that is not ms-seq.
var errStreamID = errors.New("verify: malformed stream ID")

// nextStreamID returns the smallest stream ID greater than id ("ms-seq"),
// for XRANGE paging that works on servers older than 6.2 (which lack the
// exclusive "(" form). ok is false when id is the largest possible ID.
func nextStreamID(id string) (next string, ok bool, err error) {
	i := strings.IndexByte(id, '-')
	if i <= 0 || i == len(id)-1 {
		return "", false, errStreamID
	}
	ms, err1 := strconv.ParseUint(id[:i], 10, 64)
	seq, err2 := strconv.ParseUint(id[i+1:], 10, 64)
	if err1 != nil || err2 != nil {
		return "", false, errStreamID
	}
	switch {
	case seq < ^uint64(0):
		seq++
	case ms < ^uint64(0):
		ms, seq = ms+1, 0
	default:
		return "", false, nil
	}
	return strconv.FormatUint(ms, 10) + "-" + strconv.FormatUint(seq, 10), true, nil
}

// parseKeyspace reads the "# Keyspace" section of INFO: lines like
// "db0:keys=12,expires=3,avg_ttl=0". It returns the key count per database
// and ignores every other line.
func parseKeyspace(info string) map[int]int64 {
	out := map[int]int64{}
	for len(info) > 0 {
		line := info
		if i := strings.IndexByte(info, '\n'); i >= 0 {
			line, info = info[:i], info[i+1:]
		} else {
			info = ""
		}
		line = strings.TrimSuffix(line, "\r")
		rest, ok := strings.CutPrefix(line, "db")
		if !ok {
			continue
		}
		num, fields, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		db, err := strconv.Atoi(num)
		if err != nil || db < 0 || strconv.Itoa(db) != num {
			continue
		}
		for _, f := range strings.Split(fields, ",") {
			if v, ok := strings.CutPrefix(f, "keys="); ok {
				if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
					out[db] += n
				}
			}
		}
	}
	return out
}
