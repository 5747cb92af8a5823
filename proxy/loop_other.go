//go:build !linux

package proxy

import "net"

// Event loops need Linux (epoll): elsewhere every client is served on a
// goroutine of its own, whatever Config.Loops says.

type loops struct{}

type loopState struct{}

func (s *Server) loopsUsable() bool { return false }

func (s *Server) startLoops(int) (*loops, error) { return nil, nil }

func (*loops) attach(*client, net.Conn) bool { return false }

func (*loops) stop() {}
