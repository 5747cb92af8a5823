package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/proxy"
)

// idleChildEnv makes this test binary, re-executed, the idle clients:
// "addr conns".
const idleChildEnv = "REPLICAOF_IDLE_CHILD"

func init() {
	if spec := os.Getenv(idleChildEnv); spec != "" {
		os.Exit(idleChildMain(spec))
	}
}

// idleChildMain opens conns connections to addr and sends nothing on
// them; it prints "connected <n>", waits for a line on stdin, then sends
// PING on every connection and checks each answers +PONG, printing
// "ok <n>" or "error <what>".
func idleChildMain(spec string) int {
	var addr string
	var conns int
	if _, err := fmt.Sscan(spec, &addr, &conns); err != nil {
		fmt.Println("error spec:", err)
		return 2
	}
	cs := make([]net.Conn, 0, conns)
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	for i := 0; i < conns; i++ {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			fmt.Println("error dial", i, err)
			return 1
		}
		cs = append(cs, c)
	}
	fmt.Println("connected", len(cs))
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		fmt.Println("error stdin:", err)
		return 1
	}
	// Every PING is written before any reply is read, so the proxy has
	// every client active at once.
	for i, c := range cs {
		_ = c.SetDeadline(time.Now().Add(time.Minute))
		if _, err := io.WriteString(c, "PING\r\n"); err != nil {
			fmt.Println("error write", i, err)
			return 1
		}
	}
	buf := make([]byte, len("+PONG\r\n"))
	for i, c := range cs {
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "+PONG\r\n" {
			fmt.Printf("error client %d: %q %v\n", i, buf, err)
			return 1
		}
	}
	fmt.Println("ok", len(cs))
	return 0
}

// 10,000 clients connect and stay idle: the proxy keeps serving others,
// holds a few KB per idle client (reported; bounded far above the
// measured cost, so a per-client buffer of 64 KB would fail it), and
// every idle client is answered when it speaks. On both drivers: event
// loops (proxy.loops: auto, the default) and a goroutine per client.
func TestProxyIdleClients(t *testing.T) {
	t.Run("loops", func(t *testing.T) { idleClients(t, proxy.LoopsAuto) })
	t.Run("goroutines", func(t *testing.T) { idleClients(t, 0) })
}

func idleClients(t *testing.T, loops int) {
	const conns = 10000
	ctx := harness.Context(t, 4*time.Minute)
	shard := harness.StartRedis(t)
	p, err := proxy.New(proxy.Config{Listen: "127.0.0.1:0", Destination: harness.Destination(t, shard.Addr), MaxClients: 2 * conns,
		Loops: loops})
	if err != nil {
		t.Fatal(err)
	}
	pctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- p.Serve(pctx) }()
	defer func() { stop(); <-served }()

	debug.FreeOSMemory()
	before := rssBytes()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", idleChildEnv, p.Addr(), conns))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != fmt.Sprint("connected ", conns) {
		t.Fatalf("idle clients: %q %v", line, err)
	}

	// Another client is served with 10,000 idle ones connected.
	other := harness.DialRaw(t, p.Addr().String())
	other.Send("PING\r\n")
	other.Expect("+PONG\r\n")
	debug.FreeOSMemory()
	idle := rssBytes()
	per := (idle - before) / conns
	t.Logf("%d idle clients: resident set %d MB before, %d MB with them connected: %d KB per client (both ends' sockets are in the kernel, the client side in another process)",
		conns, before>>20, idle>>20, per>>10)
	if per > 48<<10 {
		t.Fatalf("idle clients cost %d KB each", per>>10)
	}

	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	line, err = out.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != fmt.Sprint("ok ", conns) {
		t.Fatalf("idle clients speaking: %q %v", line, err)
	}
	other.Send("PING\r\n")
	other.Expect("+PONG\r\n")
}
