//go:build !linux

package proxy

import "net"

// waitReadable is a no-op where the peek is not implemented: the client
// then keeps its read buffer while idle.
func waitReadable(net.Conn) error { return nil }
