package pool

import (
	"context"
	"fmt"

	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/router"
)

// FetchTable asks a server for its command table (COMMAND). Merge the
// result into Builtin so commands this build does not know — newer
// server versions, modules — are routed by their own key specs.
func FetchTable(ctx context.Context, b *Backend) (*router.Table, error) {
	raw, err := b.Do(ctx, resp.AppendCommandString(nil, "COMMAND"), nil)
	if err != nil {
		return nil, fmt.Errorf("pool: COMMAND on %s: %w", b.Addr(), err)
	}
	v, _, err := resp.ParseValue(raw, resp.Limits{})
	if err != nil {
		return nil, fmt.Errorf("pool: COMMAND on %s: %w", b.Addr(), err)
	}
	return router.ParseCommandInfo(v)
}
