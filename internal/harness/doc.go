// Package harness is the test harness every package's tests share: real
// redis-server processes on free 127.0.0.1 ports (StartRedis; on top of
// internal/redisproc), Redis Clusters (StartCluster), a deterministic mixed
// keyspace (LoadDataset), a workload with exact counters (Workload), a
// logical comparison of two keyspaces (Compare: type, value, TTL presence,
// and with CompareOptions.TTLTolerance TTL values, the syncer's TTLGrace
// taken off side B) and a TCP proxy that injects faults (FaultProxy).
//
// Every process, client and listener it starts is stopped by t.Cleanup;
// a server's log is printed when its test fails. Tests never skip when
// Redis is missing: they fail and say how to install it. The binary comes
// from REDIS_SERVER, else from PATH. Only _test.go files and test-only
// tools import this package.
//
//	srcs := harness.StartRedis(t)
//	harness.LoadDataset(ctx, srcs.Client(), "", 1, 1000)
//	diff, err := harness.Compare(ctx, []*redis.Client{a}, []*redis.Client{b}, harness.CompareOptions{})
package harness
