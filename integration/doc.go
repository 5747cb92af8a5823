// Package integration runs replicaof's parts against real redis-server
// processes, and holds the harness other packages' tests share: StartRedis
// (a server on a free loopback port, stopped by t.Cleanup, its log printed
// when the test fails), LoadDataset (a deterministic mixed keyspace) and
// Compare (a logical comparison of two keyspaces: type, value, TTL
// presence, and with CompareOptions.TTLTolerance TTL values, the syncer's
// TTLGrace taken off side B).
//
// Tests never skip when Redis is missing: they fail and say how to install
// it. The binary comes from REDIS_SERVER, else from PATH.
//
//	srcs := integration.StartRedis(t)
//	integration.LoadDataset(ctx, srcs.Client(), "", 1, 1000)
//	diff, err := integration.Compare(ctx, []*redis.Client{a}, []*redis.Client{b}, integration.CompareOptions{})
package integration
