package proxy

import (
	"crypto/tls"
	"net"
	"syscall"
	"unsafe"
)

// unsentBytes returns how many bytes written to nc its socket still holds
// (SIOCOUTQ: not yet taken by the peer, or not yet acknowledged), and
// whether it could tell. A TLS connection is asked through its socket.
func unsentBytes(nc net.Conn) (int, bool) {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return 0, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var n int32
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&n)))
	}); err != nil || errno != 0 {
		return 0, false
	}
	return int(n), true
}
