package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"syscall"
	"unsafe"
)

// waitReadable blocks until nc has data (or EOF, or an error) without
// reading it, so an idle client holds no read buffer: the runtime poller
// wakes the goroutine, and a MSG_PEEK of one byte tells readiness from a
// spurious wake-up. Connections that are not sockets return at once.
//
// A *tls.Conn is watched through its socket. That is right only when the
// TLS layer holds no plaintext and no whole record, which the caller
// guarantees: it waits only after a Read of nc timed out (a TLS read
// returns an error only once it has consumed every buffered record), or
// before the handshake.
func waitReadable(nc net.Conn) error {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	_, _, _, err = peek(rc)
	return err // data, EOF or a socket error: the next Read reports it
}

// peekByte waits for the first byte of nc and returns it without
// consuming it (MSG_PEEK): the TLS layer or the command reader still
// reads it.
func peekByte(nc net.Conn) (byte, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return 0, errors.New("proxy: cannot peek at this connection")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	b, n, errno, err := peek(rc)
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, errno
	case n == 0:
		return 0, io.EOF
	}
	return b, nil
}

// peek waits, through the runtime poller, until the socket has a byte,
// EOF or an error, and peeks at one byte (MSG_PEEK) without consuming it.
func peek(rc syscall.RawConn) (b byte, n uintptr, errno syscall.Errno, err error) {
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		for {
			n, _, errno = syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), 1,
				syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
			switch errno {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // nothing yet: wait for the poller
			}
			return true
		}
	})
	return buf[0], n, errno, err
}
