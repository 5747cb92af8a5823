package harness

import (
	"testing"

	"github.com/replicaof/replicaof/destination"
)

// Destination returns a destination over the shards at addrs (plain TCP,
// no AUTH, the even slot split), closed by t.Cleanup.
func Destination(t testing.TB, addrs ...string) *destination.Destination {
	t.Helper()
	return DestinationWith(t, destination.Config{}, addrs...)
}

// DestinationWith is Destination with cfg's other fields (Pool, Map…);
// its Shards are the shards at addrs.
func DestinationWith(t testing.TB, cfg destination.Config, addrs ...string) *destination.Destination {
	t.Helper()
	cfg.Shards = make([]destination.Shard, 0, len(addrs))
	for _, a := range addrs {
		cfg.Shards = append(cfg.Shards, destination.Shard{Addr: a})
	}
	d, err := destination.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}
