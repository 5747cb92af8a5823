package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replicaof/replicaof/config"
	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/internal/redisproc"
	"github.com/replicaof/replicaof/syncer"
)

// cli runs the CLI in-process and returns its exit code and output.
func cli(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runWith(context.Background(), args, &out, &errOut)
	return code, out.String() + errOut.String()
}

// cliStatus runs `status --json` with the admin flags given and returns
// the status, failing the test when it exits with an error.
func cliStatus(t *testing.T, admin []string) syncer.Status {
	t.Helper()
	code, out := cli(t, append([]string{"status", "--json"}, admin...)...)
	var st syncer.Status
	if code != exitOK || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status --json: exit %d: %s", code, out)
	}
	return st
}

// Every control subcommand against a running serve.
func TestCLIAgainstServe(t *testing.T) {
	a, b := harness.StartRedis(t, "--requirepass", "pw"), harness.StartRedis(t)
	s0, s1 := harness.StartRedis(t), harness.StartRedis(t)
	ctx := harness.Context(t, 2*time.Minute)
	a.Client().Options().Password = "pw"
	proxyPort, _ := redisproc.FreePort()
	adminPort, _ := redisproc.FreePort()
	dir := t.TempDir()
	path := filepath.Join(dir, "replicaof.yaml")
	yaml := fmt.Sprintf(`proxy: { listen: "127.0.0.1:%d" }
admin: { listen: "127.0.0.1:%d", token: "tok" }
destination: { shards: ["redis://%s", "redis://%s"] }
replica_of: { sources: ["a: redis://:pw@%s"] }
state_dir: %q
`, proxyPort, adminPort, s0.Addr, s1.Addr, a.Addr, filepath.Join(dir, "state"))
	writeConfig(t, path, yaml)
	startServe(t, ctx, path)
	admin := []string{"--admin", fmt.Sprintf("127.0.0.1:%d", adminPort), "--token", "tok"}

	status := func() syncer.Status { t.Helper(); return cliStatus(t, admin) }
	harness.WaitFor(t, time.Minute, "admin up and synced", func() bool {
		code, _ := cli(t, append([]string{"status", "--json"}, admin...)...)
		return code == exitOK && status().Status == syncer.StateSynced
	})
	if code, out := cli(t, "status", "--admin", fmt.Sprintf("127.0.0.1:%d", adminPort)); code != exitError || !strings.Contains(out, "token") {
		t.Fatalf("status without token: exit %d: %s", code, out)
	}
	if code, out := cli(t, append([]string{"status"}, admin...)...); code != exitOK || !strings.Contains(out, "synced") || strings.Contains(out, ":pw@") {
		t.Fatalf("status table: exit %d: %s", code, out)
	}
	// -c reads the admin address and token from the config.
	if code, out := cli(t, "status", "-c", path); code != exitOK || !strings.Contains(out, "a ") {
		t.Fatalf("status -c: exit %d: %s", code, out)
	}
	if code, out := cli(t, append([]string{"stop"}, admin...)...); code != exitOK || status().Status != syncer.StateStopped {
		t.Fatalf("stop: exit %d: %s", code, out)
	}
	if code, out := cli(t, append([]string{"restart"}, admin...)...); code != exitOK {
		t.Fatalf("restart: exit %d: %s", code, out)
	}
	harness.WaitFor(t, time.Minute, "synced after restart", func() bool { return status().Status == syncer.StateSynced })

	if code, out := cli(t, append([]string{"sources", "add", "b: redis://" + b.Addr}, admin...)...); code != exitOK {
		t.Fatalf("sources add: exit %d: %s", code, out)
	}
	code, out := cli(t, append([]string{"sources", "list"}, admin...)...)
	if code != exitOK || !strings.Contains(out, "a: redis://:***@") || !strings.Contains(out, "b: redis://"+b.Addr) {
		t.Fatalf("sources list: exit %d: %s", code, out)
	}
	harness.WaitFor(t, time.Minute, "both sources synced (a kept its password)", func() bool {
		st := status()
		return st.Status == syncer.StateSynced && len(st.Sources) == 2
	})
	// The edit was saved to the config file, password included.
	saved, err := config.Load(path)
	if err != nil || len(saved.ReplicaOf.Sources) != 2 || string(saved.ReplicaOf.Sources[0].Password) != "pw" {
		t.Fatalf("saved config: %v %+v", err, saved)
	}
	if code, out := cli(t, append([]string{"sources", "remove", "b"}, admin...)...); code != exitOK {
		t.Fatalf("sources remove: exit %d: %s", code, out)
	}
	if code, _ := cli(t, append([]string{"sources", "remove", "nope"}, admin...)...); code != exitError {
		t.Fatalf("removing an unknown source: exit %d", code)
	}
	if code, _ := cli(t, append([]string{"sources", "add", "http://x"}, admin...)...); code != exitUsage {
		t.Fatalf("adding a bad URL: exit %d", code)
	}
	if code, _ := cli(t, append([]string{"sources", "set", "x: redis://127.0.0.1:1"}, admin...)...); code != exitOK {
		t.Fatalf("sources set: exit %d", code)
	}
	harness.WaitFor(t, 30*time.Second, "unreachable source shows retries", func() bool {
		st := status()
		return len(st.Sources) == 1 && st.Sources[0].Name == "x" && st.Sources[0].Retries > 0 && st.Sources[0].LastError != ""
	})
}
