// Command proxybench runs a replicaof proxy from flags, for
// bench/proxy/run.sh (there is no `replicaof serve` yet), and opens idle
// clients to measure what they cost.
//
//	proxybench serve -listen 127.0.0.1:6380 -shards 127.0.0.1:7001,127.0.0.1:7002 [-allow-writes]
//	proxybench idle -addr 127.0.0.1:6380 -n 10000   # holds n clients open until killed
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/replicaof/replicaof/bench/internal/benchenv"
	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/proxy"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: proxybench serve|idle [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(ctx, os.Args[2:])
	case "idle":
		err = idle(ctx, os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, "usage: proxybench serve|idle [flags]")
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "proxybench:", err)
		os.Exit(1)
	}
}

func serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := fs.String("listen", proxy.DefaultListen, "address to listen on")
	shards := fs.String("shards", "", "comma-separated shard addresses, in slot order")
	writes := fs.Bool("allow-writes", false, "forward writes")
	password := fs.String("password", "", "client password")
	conns := fs.Int("conns", 0, "connections per shard (0: router default)")
	loops := fs.Int("loops", 0, "proxy.Config.Loops: event loops (0: a goroutine per client, -1: auto, GOMAXPROCS/2)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile to this file")
	readFrom := fs.String("read-from", "", "proxy.read_from: primary, prefer-primary, replica, prefer-replica or any")
	fs.Parse(args)
	rf, err := proxy.ParseReadFrom(*readFrom)
	if err != nil {
		return err
	}
	stop, err := benchenv.CPUProfile(*cpuprofile)
	if err != nil {
		return err
	}
	defer stop()
	var nodes []destination.Shard
	for _, a := range strings.Split(*shards, ",") {
		if a != "" {
			nodes = append(nodes, destination.Shard{Addr: a})
		}
	}
	dest, err := destination.New(destination.Config{Shards: nodes})
	if err != nil {
		return err
	}
	defer dest.Close()
	cfg := proxy.Config{Listen: *listen, AllowWrites: *writes, Password: *password, ReadFrom: rf,
		Destination: dest, Backend: pool.Config{Conns: *conns}, Loops: *loops}
	srv, err := proxy.New(cfg)
	if err != nil {
		return err
	}
	fmt.Printf("proxy listening on %s, pid %d\n", srv.Addr(), os.Getpid())
	// SIGUSR1: collect and return freed memory to the OS now, so the
	// script reads the steady-state RSS of idle clients instead of the
	// peak the scavenger has not given back yet.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	go func() {
		for {
			select {
			case <-usr1:
				debug.FreeOSMemory()
			case <-ctx.Done():
				return
			}
		}
	}()
	return srv.Serve(ctx)
}

func idle(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("idle", flag.ExitOnError)
	addr := fs.String("addr", proxy.DefaultListen, "proxy address")
	n := fs.Int("n", 10000, "clients to open")
	fs.Parse(args)
	conns := make([]net.Conn, 0, *n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < *n; i++ {
		c, err := net.DialTimeout("tcp", *addr, 5*time.Second)
		if err != nil {
			return fmt.Errorf("client %d: %w", i, err)
		}
		conns = append(conns, c)
		// One command each, so every client has been served once.
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "PING\r\n"); err != nil {
			return err
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || line != "+PONG\r\n" {
			return fmt.Errorf("client %d: %q %v", i, line, err)
		}
		_ = c.SetDeadline(time.Time{})
	}
	fmt.Printf("%d idle clients open\n", len(conns))
	<-ctx.Done()
	return nil
}
