// Package metrics exports replicaof's state as OpenTelemetry instruments,
// served in the Prometheus text format on the admin listener's /metrics.
//
// Per-source series come from observable instruments whose one callback
// reads the supervisor's Status once per scrape (metrics keeps no copy of
// the syncer's state); every series carries the labels source (the
// source's name) and uid:
//
//	replicaof_syncer_status                       0 in sync, 1 syncing, 2 out of sync / stopped
//	replicaof_syncer_lag_seconds                  write on the source → applied on the destination
//	replicaof_syncer_snapshot_size_bytes          the snapshot (RDB) size, absent while unknown
//	replicaof_syncer_snapshot_transferred_bytes   snapshot bytes received so far
//	replicaof_syncer_snapshot_progress_ratio      0..1 of the snapshot loaded
//	replicaof_syncer_keys_loaded                  keys loaded from the snapshot
//	replicaof_syncer_source_offset_bytes          the source's replication offset
//	replicaof_syncer_applied_offset_bytes         the offset applied on the destination
//	replicaof_syncer_full_syncs_total             full synchronizations
//	replicaof_syncer_partial_syncs_total          partial resynchronizations (PSYNC continue)
//	replicaof_syncer_retries_total                reconnects after errors
//	replicaof_syncer_cross_shard_emulated_total   commands spanning destination shards, emulated
//	replicaof_syncer_errors_total                 distinct errors seen (see ErrorCounter)
//	replicaof_syncer_last_update_timestamp_seconds  when a command of the source was last applied
//	replicaof_syncer_last_error_timestamp_seconds   when its last error happened
//	replicaof_syncer_source_info{uri}             1, with the redacted URL as a label
//	replicaof_syncer_unsupported_keys{type}       keys left out since the last full sync (unsupported_keys: skip)
//	replicaof_syncer_dropped_commands             stream commands dropped with them
//	replicaof_destination_status                  the aggregate, coded as replicaof_syncer_status
//	replicaof_destination_flushes_total           destination flushes (start, restart)
//
// Proxy and shard series are fed by the hooks ProxyObserver and
// ShardObserver, which the proxy, the router's backends and the appliers
// call on their hot paths (no allocation per call):
//
//	replicaof_proxy_connections, replicaof_proxy_connections_accepted_total
//	replicaof_proxy_commands_total{command,result}, replicaof_proxy_command_duration_seconds{command}
//	replicaof_shard_pipeline_depth{shard}, replicaof_shard_pipeline_duration_seconds{shard}
//	replicaof_shard_pipeline_failures_total{shard}, replicaof_shard_up{shard}
//	replicaof_syncer_commands_applied_total{source,shard}
//
// Destination nodes as the proxy sees them (with proxy.read_from, its
// replicas too) are read at each scrape from the function given to
// Provider.SetNodes:
//
//	replicaof_proxy_node_reads_total{shard,addr,role}   reads sent to a node (role primary or replica)
//	replicaof_proxy_node_up{shard,addr,role}            1 while it serves reads
//	replicaof_proxy_replica_lag_seconds{shard,addr}     a replica's lag, measured as time
//	replicaof_proxy_replica_out_of_rotation_total{shard,addr,reason}  stale, link_down or error
//	replicaof_destination_node{shard,addr,role}         1 per destination node (a cluster's replicas too)
//	replicaof_destination_node_slots{shard,addr}        slots a primary owns in the current map
//
// On a Redis Cluster destination shard is the group (a master and its
// replicas) and a primary is the group's current master: the per-shard
// series (replicaof_shard_*) follow the group across failovers, and
// replicaof_destination_node says which node is its master now. The
// proxy_node series leave out the cluster replicas the proxy does not
// read from (proxy.read_from primary).
//
// The Go runtime's and the process's collectors are registered too.
//
// Use:
//
//	m, err := metrics.New(metrics.Config{Source: sup, Version: version})
//	if err != nil { … }
//	defer m.Shutdown(ctx)
//	admin.New(admin.Config{Controller: sup, Extra: map[string]http.Handler{"/metrics": m.Handler()}})
package metrics
