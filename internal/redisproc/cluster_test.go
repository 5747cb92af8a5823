package redisproc

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// StartCluster forms a real 3-master, 3-replica cluster with redis-cli:
// every node ok, the first three own the slots, Kill stops them all.
func TestStartCluster(t *testing.T) {
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	cli, err := ClusterCLI()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := StartCluster(ctx, bin, t.TempDir(), "node", 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Kill()
	if len(c.Nodes) != 6 || c.Masters != 3 {
		t.Fatalf("%d nodes, %d masters", len(c.Nodes), c.Masters)
	}
	out, err := exec.CommandContext(ctx, cli, "-p", strconv.Itoa(c.Nodes[0].Port), "cluster", "nodes").Output()
	if err != nil {
		t.Fatal(err)
	}
	masters := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.Contains(f[2], "master") {
			continue
		}
		masters++
		addr, _, _ := strings.Cut(f[1], "@")
		if len(f) < 9 || (addr != c.Nodes[0].Addr && addr != c.Nodes[1].Addr && addr != c.Nodes[2].Addr) {
			t.Fatalf("master %s without slots or not among the first three nodes:\n%s", addr, out)
		}
	}
	if masters != 3 {
		t.Fatalf("%d masters:\n%s", masters, out)
	}
	c.Kill()
	for _, p := range c.Nodes {
		if PingOK(p.Addr) {
			t.Fatalf("%s still answers after Kill", p.Addr)
		}
	}
}
