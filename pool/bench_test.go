package pool_test

import (
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/pool"
)

// redisBenchmarkGET runs `redis-benchmark -P 16 -t get` against addr and
// returns its requests per second: the reference the pipelined backend is
// measured against, in the same run, on the same server.
func redisBenchmarkGET(b *testing.B, port, clients, pipeline, n int) float64 {
	bin, err := exec.LookPath("redis-benchmark")
	if err != nil {
		b.Fatalf("redis-benchmark not found: %s", harness.InstallHint)
	}
	out, err := exec.Command(bin, "-h", "127.0.0.1", "-p", strconv.Itoa(port),
		"-c", strconv.Itoa(clients), "-P", strconv.Itoa(pipeline), "-n", strconv.Itoa(n),
		"-t", "get", "-q", "--csv").CombinedOutput()
	if err != nil {
		b.Fatalf("redis-benchmark: %v: %s", err, out)
	}
	m := regexp.MustCompile(`"GET","([0-9.]+)"`).FindSubmatch(out)
	if m == nil {
		b.Fatalf("cannot read redis-benchmark output: %s", out)
	}
	rps, _ := strconv.ParseFloat(string(m[1]), 64)
	return rps
}

// BenchmarkBackendPipeline drives GETs through the pipelined backend the
// way redis-benchmark -c 50 -P 16 does (50 callers, 16 commands per batch)
// and reports its ops/s next to redis-benchmark's on the same server.
func BenchmarkBackendPipeline(b *testing.B) {
	const callers, depth = 50, 16
	srv := harness.StartRedis(b)
	ctx := context.Background()
	if err := srv.Client().Set(ctx, "key:__rand_int__", "xxx", 0).Err(); err != nil {
		b.Fatal(err)
	}
	ref := redisBenchmarkGET(b, srv.Port, callers, depth, 1000000)

	bk := pool.NewBackend(pool.Config{Addr: srv.Addr, Conns: 2})
	defer bk.Close()
	req := cmd("GET", "key:__rand_int__")
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	batches := (b.N + depth - 1) / depth
	work := make(chan struct{}, batches)
	for i := 0; i < batches; i++ {
		work <- struct{}{}
	}
	close(work)
	for g := 0; g < callers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			calls := make([]*pool.Call, depth)
			for i := range calls {
				calls[i] = &pool.Call{Req: req}
			}
			for range work {
				bk.Pipeline(ctx, calls)
				for _, c := range calls {
					if c.Err != nil || len(c.Reply) != 9 {
						b.Errorf("reply %q %v", c.Reply, c.Err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	ops := float64(batches*depth) / elapsed.Seconds()
	b.ReportMetric(ops, "ops/s")
	b.ReportMetric(ref, "redis-benchmark-ops/s")
	b.ReportMetric(ops/ref, "ratio")
}
