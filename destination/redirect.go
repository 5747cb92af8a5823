package destination

import (
	"bytes"
	"net"
	"strconv"

	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/router"
)

// Redirect is a Redis Cluster node's answer that a command's slot is
// served elsewhere: -MOVED <slot> <host:port> (the slot has moved: update
// the map, send it there) or -ASK <slot> <host:port> (the slot is being
// migrated and the key may be there already: send ASKING and that one
// command there, leave the map alone).
type Redirect struct {
	Ask  bool
	Slot uint16
	// Addr is the target as host:port (an IPv6 host in brackets); the
	// host is empty when the target's address is not known to the node
	// that answered (then it is that node's host; Do does so).
	Addr string
}

// From returns r with an empty host filled in: a node that does not know
// the target's address names only its port, and the target is then on
// the host of the node that answered (answeredBy, host:port).
func (r Redirect) From(answeredBy string) Redirect {
	if host, port, _ := net.SplitHostPort(r.Addr); host == "" {
		h, _, _ := net.SplitHostPort(answeredBy)
		r.Addr = net.JoinHostPort(h, port)
	}
	return r
}

// Asking is the raw ASKING command sent before the one command an ASK
// redirect names.
var Asking = resp.AppendCommandString(nil, "ASKING")

// ParseRedirect recognizes a raw -MOVED or -ASK reply. It is pure and
// cheap: the proxy calls it on error replies.
func ParseRedirect(reply []byte) (Redirect, bool) {
	var r Redirect
	line, ok := errorLine(reply)
	if !ok {
		return r, false
	}
	switch {
	case bytes.HasPrefix(line, []byte("MOVED ")):
		line = line[len("MOVED "):]
	case bytes.HasPrefix(line, []byte("ASK ")):
		line = line[len("ASK "):]
		r.Ask = true
	default:
		return r, false
	}
	sp := bytes.IndexByte(line, ' ')
	if sp < 1 || sp > 5 {
		return r, false
	}
	slot := 0
	for _, c := range line[:sp] {
		if c < '0' || c > '9' {
			return r, false
		}
		slot = slot*10 + int(c-'0')
	}
	if slot >= router.SlotCount {
		return r, false
	}
	addr := line[sp+1:]
	// Redis writes host:port without brackets, IPv6 hosts included: the
	// port follows the last colon.
	c := bytes.LastIndexByte(addr, ':')
	if c < 0 || bytes.IndexByte(addr, ' ') >= 0 {
		return r, false
	}
	host, port := addr[:c], addr[c+1:]
	if p, err := strconv.Atoi(string(port)); err != nil || p <= 0 || p > 65535 || len(port) > 5 || port[0] == '+' {
		return r, false
	}
	host = bytes.TrimSuffix(bytes.TrimPrefix(host, []byte("[")), []byte("]"))
	if bytes.ContainsAny(host, "[]") {
		return r, false
	}
	r.Slot = uint16(slot)
	r.Addr = net.JoinHostPort(string(host), string(port))
	return r, true
}

// IsTryAgain reports a -TRYAGAIN reply: a multi-key command whose keys
// are split by a slot migration in progress; nothing was done, it may be
// sent again later.
func IsTryAgain(reply []byte) bool { return isCode(reply, "TRYAGAIN") }

// IsClusterDown reports a -CLUSTERDOWN reply: the cluster cannot serve
// the slot now (a master failed and no replica took over yet); nothing
// was done, it may be sent again later.
func IsClusterDown(reply []byte) bool { return isCode(reply, "CLUSTERDOWN") }

// isCode reports an error reply whose code is code.
func isCode(reply []byte, code string) bool {
	line, ok := errorLine(reply)
	return ok && bytes.HasPrefix(line, []byte(code)) &&
		(len(line) == len(code) || line[len(code)] == ' ')
}

// errorLine returns an error reply's text without '-' and CRLF.
func errorLine(reply []byte) ([]byte, bool) {
	if len(reply) < 1 || reply[0] != '-' {
		return nil, false
	}
	line := reply[1:]
	if i := bytes.IndexByte(line, '\r'); i >= 0 {
		line = line[:i]
	}
	return line, true
}
