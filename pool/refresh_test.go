package pool_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/router"
)

// The table fetched from a live server at run time describes every command
// exactly as the generated one does (same server version here), so the
// runtime refresh and go generate agree.
func TestFetchTableMatchesBuiltin(t *testing.T) {
	srv := harness.StartRedis(t)
	b := pool.NewBackend(pool.Config{Addr: srv.Addr})
	defer b.Close()
	live, err := pool.FetchTable(harness.Context(t, time.Minute), b)
	if err != nil {
		t.Fatal(err)
	}
	info, err := srv.Client().InfoMap(harness.Context(t, time.Minute), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	if v := info["Server"]["redis_version"]; v != router.BuiltinVersion {
		// Another server version: only ask that it knows every builtin command.
		for _, c := range router.Builtin.Commands() {
			if live.LookupName(c.Name) == nil {
				t.Errorf("redis %s lacks %s", v, c.Name)
			}
		}
		return
	}
	if live.Len() != router.Builtin.Len() {
		t.Fatalf("live table has %d commands, builtin %d", live.Len(), router.Builtin.Len())
	}
	for _, c := range router.Builtin.Commands() {
		if got := live.LookupName(c.Name); !reflect.DeepEqual(got, c) {
			t.Errorf("%s: live %+v, builtin %+v", c.Name, got, c)
		}
	}
}
