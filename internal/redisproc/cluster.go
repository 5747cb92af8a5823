package redisproc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Cluster is a Redis Cluster of local redis-server processes, formed with
// `redis-cli --cluster create` as an operator forms one: for the demo and
// the benchmarks (the test harness has its own, finer-grained
// harness.StartCluster).
type Cluster struct {
	// Nodes are the servers, in the order given to redis-cli, which makes
	// the first Masters of them the masters.
	Nodes   []*Proc
	Masters int
}

// ClusterCLI returns the redis-cli that forms clusters, or an error saying
// how to install it.
func ClusterCLI() (string, error) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return "", fmt.Errorf("redis-cli not found in PATH (it forms the cluster): %s", InstallHint)
	}
	return cli, nil
}

// StartCluster starts masters*(1+replicasPerMaster) cluster-enabled
// redis-servers of bin, each in its own directory under dir (dir/<name>-<i>)
// with extra arguments, forms them into a cluster with redis-cli (the even
// slot split, replicasPerMaster replicas each), and returns once every
// node reports cluster_state:ok. Each node's cluster bus has a port of its
// own (cluster-port), so a node port above 55535 works too. On error,
// every node started is killed. The caller kills the nodes with Kill.
func StartCluster(ctx context.Context, bin, dir, name string, masters, replicasPerMaster int, extra ...string) (*Cluster, error) {
	if masters < 3 || replicasPerMaster < 0 {
		return nil, fmt.Errorf("redisproc: a cluster needs at least 3 masters (redis-cli), not %d", masters)
	}
	cli, err := ClusterCLI()
	if err != nil {
		return nil, err
	}
	c := &Cluster{Masters: masters}
	ok := false
	defer func() {
		if !ok {
			c.Kill()
		}
	}()
	n := masters * (1 + replicasPerMaster)
	for i := 0; i < n; i++ {
		p, err := startClusterNode(bin, filepath.Join(dir, fmt.Sprintf("%s-%d", name, i)), extra)
		if err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, p)
	}
	args := []string{"--cluster", "create"}
	for _, p := range c.Nodes {
		args = append(args, p.Addr)
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(replicasPerMaster), "--cluster-yes")
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(cctx, cli, args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("redis-cli --cluster create: %w\n%s", err, out)
	}
	for _, p := range c.Nodes {
		for {
			info, err := exec.CommandContext(cctx, cli, "-h", "127.0.0.1", "-p", strconv.Itoa(p.Port), "cluster", "info").Output()
			nodes, err2 := exec.CommandContext(cctx, cli, "-h", "127.0.0.1", "-p", strconv.Itoa(p.Port), "cluster", "nodes").Output()
			if err == nil && err2 == nil && strings.Contains(string(info), "cluster_state:ok") && rolesSettled(string(nodes), masters, n) {
				break
			}
			if cctx.Err() != nil {
				return nil, fmt.Errorf("cluster node %s: cluster not ok, or roles not settled, after a minute:\n%s%s", p.Addr, info, nodes)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	ok = true
	return c, nil
}

// rolesSettled reports whether a node's CLUSTER NODES lists n nodes:
// masters masters with slots, the others replicas.
func rolesSettled(nodes string, masters, n int) bool {
	m, r := 0, 0
	for line := range strings.SplitSeq(strings.TrimSpace(nodes), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) < 8:
			return false
		case strings.Contains(f[2], "master") && len(f) > 8:
			m++
		case strings.Contains(f[2], "slave"):
			r++
		}
	}
	return m == masters && m+r == n
}

// startClusterNode starts one cluster-enabled node in dir, retrying with
// another bus port when the one picked was taken meanwhile.
func startClusterNode(bin, dir string, extra []string) (*Proc, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var bus int
		if bus, err = FreePort(); err != nil {
			return nil, err
		}
		var p *Proc
		p, err = Start(bin, dir, append([]string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-port", strconv.Itoa(bus),
			"--cluster-announce-ip", "127.0.0.1",
			"--cluster-node-timeout", "2000",
			"--repl-diskless-sync-delay", "0",
		}, extra...)...)
		if err == nil {
			return p, nil
		}
		_ = os.Remove(filepath.Join(dir, "nodes.conf"))
	}
	return nil, errors.Join(errors.New("redisproc: cluster node did not start"), err)
}

// Addrs returns the nodes' addresses, masters first.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, p := range c.Nodes {
		out[i] = p.Addr
	}
	return out
}

// Kill stops every node.
func (c *Cluster) Kill() {
	for _, p := range c.Nodes {
		p.Kill()
	}
}
