package destination

// KeyPrefix starts every key replicaof keeps for itself on the
// destination (checkpoints, the marker, the probe, the lease and fence,
// cross-shard staging). The proxy hides such keys from clients, verify
// ignores them and the syncer never replicates a source's own.
const KeyPrefix = "__replicaof:"

// Keys under KeyPrefix that this package writes.
const (
	// ProbeKey is the throwaway key of RESTORE probes.
	ProbeKey = KeyPrefix + "probe"
	// MarkerKey is set on every shard after a flush (Mark) and rewritten
	// after keyless commands: a shard without it lost its data.
	MarkerKey = KeyPrefix + "marker"
)
