//go:build !linux

package proxy

import "net"

// unsentBytes is not implemented here: a batch over the hard limit is
// always written.
func unsentBytes(net.Conn) (int, bool) { return 0, false }
