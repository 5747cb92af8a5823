// Package harness is the test harness every package's tests share, on
// top of internal/redisproc:
//
//   - servers: StartRedis (one redis-server on a free 127.0.0.1 port, its
//     own directory), StartServers (n alike, e.g. a destination's shards;
//     Addrs and Clients list them), StartReplica (a --replicaof replica),
//     StartCluster and StartClusterWith (a Redis Cluster with replicas,
//     optionally a password or TLS; Failover, KillMaster,
//     KillMasterLosingWrites, whose promoted replica misses the master's
//     last acknowledged writes, and Reshard, which moves slots with
//     `redis-cli --cluster reshard`);
//   - data: LoadDataset (a deterministic mixed keyspace), LoadBigKeys (one
//     big key of each type), Workload (a
//     mixed write load with exact counters), Compare and RequireEqual (a
//     logical comparison of two keyspaces: type, value, TTL presence, and
//     with CompareOptions.TTLTolerance TTL values, the syncer's TTLGrace
//     taken off side B), InfoField and InfoFields (INFO output);
//   - connections and faults: DialRaw (a raw RESP connection), FaultProxy
//     (a TCP proxy that cuts, pauses or slows a link, or drops a byte);
//   - test plumbing: Logger and LogWriter (slog to t.Log), WaitFor (poll a
//     condition with a deadline), Context (a context bounded by the test).
//
// Callers build their own shard maps and destinations over the servers.
// Every process, client, listener and connection it starts is stopped by
// t.Cleanup; a server's log is printed when its test fails. Tests never
// skip when Redis is missing: they fail and say how to install it. The
// binary comes from REDIS_SERVER, else from PATH. Only _test.go files and
// test-only tools import this package.
//
//	srcs := harness.StartRedis(t)
//	harness.LoadDataset(ctx, srcs.Client(), "", 1, 1000)
//	diff, err := harness.Compare(ctx, []*redis.Client{a}, []*redis.Client{b}, harness.CompareOptions{})
package harness
