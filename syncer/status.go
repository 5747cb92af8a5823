package syncer

import "time"

// Sync states of a source, as the reproduced product names them.
const (
	StateSyncing = "syncing" // loading its snapshot (or reconnecting)
	StateSynced  = "synced"  // applying its stream
	StateStopped = "stopped" // not syncing: stopped by the user or by an error
)

// Phases of a source: what its sync is doing now, finer than SyncState.
// A source with several links is in the least advanced phase of any link.
const (
	PhaseConnecting = "connecting"           // dialing, authenticating, PSYNC sent (or retrying)
	PhaseWaiting    = "waiting-for-snapshot" // PSYNC sent or +FULLRESYNC received: the source forks and writes its snapshot
	PhaseLoading    = "loading"              // the snapshot flows into the destination
	PhaseStreaming  = "streaming"            // applying the command stream
	PhaseStopped    = "stopped"              // not syncing
)

// phaseRank orders the running phases, least advanced first.
var phaseRank = map[string]int{PhaseConnecting: 0, PhaseWaiting: 1, PhaseLoading: 2, PhaseStreaming: 3}

// The coarse status field of the REST API, per source.
const (
	StatusInSync    = "in-sync"
	StatusSyncing   = "syncing"
	StatusOutOfSync = "out-of-sync"
)

// SourceStatus is one source's row of GET /v1/status.
type SourceStatus struct {
	UID            int    `json:"uid"`
	Name           string `json:"name"`
	URI            string `json:"uri"`             // redacted
	Kind           string `json:"kind,omitempty"`  // redis, cluster or replicaof, once discovered
	Links          int    `json:"links,omitempty"` // replication links: 1, or one per master / proxy shard
	Status         string `json:"status"`
	SyncState      string `json:"sync_state"`
	Phase          string `json:"phase"`    // connecting, waiting-for-snapshot, loading, streaming or stopped
	Progress       int    `json:"progress"` // percent of the snapshot loaded
	RDBSize        int64  `json:"rdb_size"` // -1 while unknown (diskless transfer)
	RDBTransferred int64  `json:"rdb_transferred"`
	KeysLoaded     int64  `json:"keys_loaded"`
	LagMS          int64  `json:"lag_ms"`
	LastUpdate     string `json:"last_update,omitempty"` // RFC 3339: last command from it applied
	LastError      string `json:"last_error"`
	LastErrorTime  string `json:"last_error_time,omitempty"`
	Retries        int    `json:"retries"`
	FullSyncs      int    `json:"full_syncs"`
	PartialSyncs   int    `json:"partial_syncs"`
	SourceOffset   int64  `json:"source_offset"`
	AppliedOffset  int64  `json:"applied_offset"`
	// BytesReceived is what the links received from the source, snapshot
	// and stream, since start; WireBytes the same as read from the
	// connection, before gzip decompression (smaller with compression)
	// but after TLS decryption (TLS records add a few percent on the
	// network).
	BytesReceived int64 `json:"bytes_received"`
	WireBytes     int64 `json:"wire_bytes"`
	// CrossShardEmulated counts the source's commands (a MULTI/EXEC block
	// counts once) whose keys spanned destination shards and that were
	// emulated (replica_of.cross_shard: emulate), since sync started.
	CrossShardEmulated int64 `json:"cross_shard_emulated"`
	// UnsupportedKeys counts, per type ("module ReJSON-RL (encver 3)"),
	// the source's keys left out since its last full sync because the
	// destination cannot take them (replica_of.unsupported_keys: skip);
	// DroppedCommands the stream commands dropped with them.
	UnsupportedKeys map[string]int64 `json:"unsupported_keys,omitempty"`
	DroppedCommands int64            `json:"dropped_commands,omitempty"`
}

// Status is GET /v1/status: the destination's aggregate state and every
// source.
type Status struct {
	Status string `json:"status"` // stopped if any source is, else syncing if any is, else synced
	// Role is "active" (this instance syncs) or "standby" (another
	// instance holds the destination's lease; replica_of.lease).
	Role string `json:"role"`
	// Active is the admin address of the instance holding the lease
	// (this one's when active; "" when unknown or without HA).
	Active  string         `json:"active,omitempty"`
	Sources []SourceStatus `json:"sources"`
}

// aggregate derives the destination status from its sources'.
func aggregate(sources []SourceStatus) string {
	state := StateSynced
	for _, s := range sources {
		switch s.SyncState {
		case StateStopped:
			return StateStopped
		case StateSyncing:
			state = StateSyncing
		}
	}
	return state
}

func coarse(state string) string {
	switch state {
	case StateSynced:
		return StatusInSync
	case StateSyncing:
		return StatusSyncing
	}
	return StatusOutOfSync
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
