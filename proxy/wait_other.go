//go:build !linux

package proxy

import "net"

// waitReadable is a no-op where the peek is not implemented: the client
// then keeps its read buffer while idle.
func waitReadable(net.Conn) error { return nil }

// peekByte is not implemented here: with proxy.tls.mode replication every
// client is taken for a TLS client.
func peekByte(net.Conn) (byte, error) { return tlsHandshakeRecord, nil }
