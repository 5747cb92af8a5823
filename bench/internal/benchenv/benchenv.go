package benchenv

import (
	"context"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/replicaof/replicaof/internal/redisproc"
)

// Servers starts redis-servers, each in a directory of its own under Dir.
// Close kills every one still running and removes Dir.
type Servers struct {
	Dir   string
	bin   string
	procs []*redisproc.Proc
}

// NewServers finds redis-server and makes a temporary directory whose
// name starts with prefix.
func NewServers(prefix string) (*Servers, error) {
	bin, err := redisproc.Binary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	return &Servers{Dir: dir, bin: bin}, nil
}

// Start starts a redis-server in Dir/name with the extra arguments.
func (s *Servers) Start(name string, extra ...string) (*redisproc.Proc, error) {
	d := filepath.Join(s.Dir, name)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return nil, err
	}
	p, err := redisproc.Start(s.bin, d, extra...)
	if err == nil {
		s.procs = append(s.procs, p)
	}
	return p, err
}

// StartCluster forms a Redis Cluster of masters*(1+replicas) nodes in
// Dir/name-<i> with redisproc.StartCluster (redis-cli --cluster create).
func (s *Servers) StartCluster(ctx context.Context, name string, masters, replicas int, extra ...string) (*redisproc.Cluster, error) {
	c, err := redisproc.StartCluster(ctx, s.bin, s.Dir, name, masters, replicas, extra...)
	if err == nil {
		s.procs = append(s.procs, c.Nodes...)
	}
	return c, err
}

// Close kills the servers and removes Dir.
func (s *Servers) Close() {
	for _, p := range s.procs {
		p.Kill()
	}
	os.RemoveAll(s.Dir)
}

// CPUProfile writes a CPU profile to path until stop is called; with an
// empty path it does nothing.
func CPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// PeakRSS reads VmHWM (peak resident set) of process pid, or of this
// process for pid 0, in bytes; 0 if unknown.
func PeakRSS(pid int) int64 {
	path := "/proc/self/status"
	if pid > 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/status"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
