package syncer

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/syncer/apply"
	"github.com/replicaof/replicaof/syncer/rdb"
)

// TestStatusUnsupportedKeys: a source's status sums its links' skipped
// keys per type and their dropped commands.
func TestStatusUnsupportedKeys(t *testing.T) {
	ctx := harness.Context(t, time.Minute)
	shard := harness.StartRedis(t)
	d, err := destination.New(destination.Config{Shards: []destination.Shard{{Addr: shard.Addr}}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// RDB 9: a string and a value of module type id 1<<10|2 (a name of
	// "AAAAAAAAB", encver 2), which the shard has not loaded.
	file := []byte("REDIS0009")
	file = append(file, 0xFE, 0, rdb.TypeString, 1, 'a', 1, '1')
	file = append(file, rdb.TypeModule2, 1, 'm', 0x81)
	file = binary.BigEndian.AppendUint64(file, 1<<10|2)
	file = append(file, 2, 5, 0, 0xFF) // UINT 5, EOF; end of file
	file = binary.LittleEndian.AppendUint64(file, rdb.CRC64(0, file))

	src := newSource(1, config.Source{Name: "s"})
	var parts []*part
	for _, id := range []string{"shard:0", "shard:1"} {
		a := apply.New(d, apply.Options{SkipUnsupported: true})
		if err := apply.FlushAll(ctx, d); err != nil {
			t.Fatal(err)
		}
		if err := a.FullSync(ctx, "id", 0, int64(len(file)), bytes.NewReader(file)); err != nil {
			t.Fatal(err)
		}
		p := newPart(id, shard.Addr)
		p.setLink(nil, a)
		parts = append(parts, p)
	}
	src.setParts(KindReplicaof, parts)
	st := src.status(time.Now())
	name, ver := rdb.ModuleName(1<<10 | 2)
	typ := "module " + name + " (encver 2)"
	if ver != 2 || st.UnsupportedKeys[typ] != 2 || len(st.UnsupportedKeys) != 1 || st.KeysLoaded != 2 {
		t.Fatalf("status: unsupported %v, keys loaded %d; want 2 %q and 2", st.UnsupportedKeys, st.KeysLoaded, typ)
	}
}
