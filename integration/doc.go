// Package integration holds replicaof's end-to-end and fault suites: the
// syncer, proxy and CLI parts run together against real redis-server
// processes and Redis Clusters, each test ending in a key-by-key
// comparison of sources and destination. It has no code of its own
// besides its tests: the servers, clusters, datasets, workloads, the
// comparator and the fault proxy come from internal/harness.
//
// Tests never skip when Redis is missing: they fail and say how to install
// it. The binary comes from REDIS_SERVER, else from PATH.
package integration
