package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/replicaof/replicaof/syncer"
)

// The PROGRESS column says what a sync waits for until its snapshot
// flows, then shows a bar, or the bytes received when the size is unknown.
func TestRenderStatusPhases(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	st := syncer.Status{Status: syncer.StateSyncing, Sources: []syncer.SourceStatus{
		{UID: 1, Name: "dialing", SyncState: syncer.StateSyncing, Phase: syncer.PhaseConnecting, RDBSize: -1},
		{UID: 2, Name: "forking", SyncState: syncer.StateSyncing, Phase: syncer.PhaseWaiting, RDBSize: -1},
		{UID: 3, Name: "disk", SyncState: syncer.StateSyncing, Phase: syncer.PhaseLoading, RDBSize: 1000, RDBTransferred: 500, Progress: 50},
		{UID: 4, Name: "diskless", SyncState: syncer.StateSyncing, Phase: syncer.PhaseLoading, RDBSize: -1, RDBTransferred: 3 << 20},
		{UID: 5, Name: "live", SyncState: syncer.StateSynced, Phase: syncer.PhaseStreaming, Progress: 100, LagMS: 7},
	}}
	var b bytes.Buffer
	renderStatus(&b, st, now)
	rows := map[string]string{}
	for _, l := range strings.Split(b.String(), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			rows[f[1]] = l
		}
	}
	for name, want := range map[string]string{
		"dialing":  "connecting",
		"forking":  "waiting for snapshot",
		"disk":     "[##########..........]  50%",
		"diskless": "loading, 3.0 MiB received",
		"live":     "7ms",
	} {
		if !strings.Contains(rows[name], want) {
			t.Errorf("row %s = %q, want it to contain %q\n%s", name, rows[name], want, b.String())
		}
	}
	for _, name := range []string{"dialing", "forking", "diskless"} {
		if strings.Contains(rows[name], "0%") {
			t.Errorf("row %s shows a 0%% bar: %q", name, rows[name])
		}
	}
}
