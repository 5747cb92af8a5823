// Package redisproc starts and stops redis-server processes on loopback
// ports, for the demo, the benchmarks and the test harness; StartCluster
// forms a Redis Cluster of them with redis-cli.
package redisproc

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// InstallHint says how to get redis-server.
const InstallHint = "install it with `apt-get install -y redis-server redis-tools` (or set REDIS_SERVER to its path)"

// ErrNotFound means no redis-server binary was found.
var ErrNotFound = errors.New("redis-server not found in PATH: " + InstallHint)

// Binary returns the redis-server to run: $REDIS_SERVER, else from PATH.
func Binary() (string, error) {
	if bin := os.Getenv("REDIS_SERVER"); bin != "" {
		return bin, nil
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", ErrNotFound
	}
	return bin, nil
}

// Proc is one redis-server process bound to 127.0.0.1.
type Proc struct {
	Addr string
	Port int
	Dir  string

	bin    string
	args   []string
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start runs bin on a free 127.0.0.1 port with dir as its working
// directory (log in dir/redis.log) and extra `--name value` arguments, and
// waits until it answers PING. It retries on another port if the chosen
// one was taken meanwhile.
func Start(bin, dir string, extra ...string) (*Proc, error) {
	p := &Proc{bin: bin, Dir: dir, args: extra}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var port int
		if port, err = FreePort(); err != nil {
			return nil, err
		}
		p.Port, p.Addr = port, net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err = p.start(); err == nil {
			return p, nil
		}
	}
	return nil, err
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// LogPath is where the server logs.
func (p *Proc) LogPath() string { return filepath.Join(p.Dir, "redis.log") }

func (p *Proc) start() error {
	args := []string{
		"--bind", "127.0.0.1", "--port", strconv.Itoa(p.Port),
		"--dir", p.Dir, "--logfile", p.LogPath(),
		"--save", "", "--appendonly", "no",
		"--protected-mode", "no", "--daemonize", "no",
	}
	cmd := exec.Command(p.bin, append(args, p.args...)...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w (%s)", p.bin, err, InstallHint)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("redis-server on port %d exited at start", p.Port)
		default:
		}
		if PingOK(p.Addr) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.Kill()
	return fmt.Errorf("redis-server on port %d not ready after 10s", p.Port)
}

// PingOK reports whether a server at addr answers PING (or asks for AUTH).
func PingOK(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	return bytes.HasPrefix(buf[:n], []byte("+PONG")) || bytes.HasPrefix(buf[:n], []byte("-NOAUTH"))
}

// Kill stops the server with SIGKILL and waits for it to exit.
func (p *Proc) Kill() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// Restart kills the server and starts it again on the same port and
// directory, retrying while the port lingers.
func (p *Proc) Restart() error {
	p.Kill()
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if err = p.start(); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// Log returns the server's log so far.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.LogPath())
	return string(b)
}

// Signal sends sig to the server (SIGSTOP and SIGCONT pause and resume
// it in fault tests).
func (p *Proc) Signal(sig os.Signal) error {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil {
		return errors.New("redisproc: not running")
	}
	return cmd.Process.Signal(sig)
}
