package apply

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/syncer/rdb"
)

// The Destination (package destination) is shared by every source's
// Applier; what only the syncer sends through it lives here: the flush
// before a full sync, RESTORE probes, checkpoints (checkpoint.go) and the
// lease's fence (fence.go).

// FlushAll empties every shard: FLUSHALL, and FUNCTION FLUSH where the
// shard has functions. The supervisor calls it once before the sources'
// snapshots load.
func FlushAll(ctx context.Context, d *destination.Destination) error {
	infos, err := d.Info(ctx)
	if err != nil {
		return err
	}
	epoch, err := d.FenceEpoch()
	if err != nil {
		return err
	}
	if d.Cluster() {
		return flushCluster(ctx, d, infos, epoch)
	}
	return d.Each(func(shard int) error {
		if epoch > 0 {
			// The fence key goes with the flush, in one transaction.
			b := &batch{}
			b.reset(shard, 0)
			b.commandString("MULTI")
			b.commandString("FLUSHALL")
			b.commandString("SET", FenceKey, strconv.FormatInt(epoch, 10))
			restoreCommands(d, b, shard)
			b.commandString("EXEC")
			b.markExec(1)
			if err := b.sendGuarded(ctx, d, b.seal(), epoch); err != nil {
				return err
			}
		} else if _, err := d.Do(ctx, shard, 0, "FLUSHALL"); err != nil {
			return err
		}
		if infos[shard].Functions {
			if _, err := d.Do(ctx, shard, 0, "FUNCTION", "FLUSH"); err != nil {
				return err
			}
		}
		return nil
	})
}

// probeRestore asks shard whether its RESTORE accepts payloads of
// rdbVersion, with a throwaway string key under the reserved prefix.
func probeRestore(ctx context.Context, d *destination.Destination, shard, rdbVersion int) (bool, error) {
	payload := rdb.AppendDumpPayload(nil, rdb.TypeString, []byte{1, 'x'}, uint16(rdbVersion))
	key := probeKey(d, shard)
	req := resp.AppendCommand(nil, []byte("RESTORE"), []byte(key), []byte("0"), payload, []byte("REPLACE"))
	reply, err := probeDo(ctx, d, shard, req)
	if err != nil {
		return false, fmt.Errorf("apply: shard %d (%s): %w", shard, d.Addr(shard), err)
	}
	if e := resp.ReplyError(reply); e != nil {
		if isVersionError(e.Error()) {
			return false, nil
		}
		return false, d.Refused(shard, 0, req, e.Error())
	}
	_, err = d.Do(ctx, shard, 0, "DEL", key)
	return err == nil, err
}

func isVersionError(reply string) bool {
	return strings.Contains(reply, "payload version or checksum are wrong")
}
