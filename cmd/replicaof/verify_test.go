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
	"github.com/replicaof/replicaof/router"
)

func TestVerifyCommand(t *testing.T) {
	ctx := harness.Context(t, time.Minute)
	src := harness.StartRedis(t, "--requirepass", "p@ss")
	shards := harness.StartServers(t, 2)
	sc := src.Client()
	sc.Options().Password = "p@ss"
	if err := harness.LoadDataset(ctx, sc, "", 7, 400); err != nil {
		t.Fatal(err)
	}
	// Copy every key to the shard its slot maps to.
	sm, _ := router.EvenSlotMap(len(shards))
	iter := sc.Scan(ctx, 0, "", 100).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		dump, err := sc.Dump(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		ttl := sc.PTTL(ctx, k).Val()
		if ttl < 0 {
			ttl = 0
		} else {
			ttl += config.DefaultTTLGrace // as the syncer writes it
		}
		if err := shards[sm.ShardOf([]byte(k))].Client().RestoreReplace(ctx, k, ttl, dump).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	flags := []string{"verify", "--source", "src: redis://:p%40ss@" + src.Addr,
		"--shard", "redis://" + shards[0].Addr, "--shard", "redis://" + shards[1].Addr, "--recheck-delay", "0"}
	dir := t.TempDir()
	path := filepath.Join(dir, "replicaof.yaml")
	yaml := fmt.Sprintf("destination: { shards: [\"redis://%s\", \"redis://%s\"] }\nreplica_of: { sources: [\"src: redis://:p%%40ss@%s\"] }\n",
		shards[0].Addr, shards[1].Addr, src.Addr)
	writeConfig(t, path, yaml)

	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := runWith(context.Background(), args, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	type report struct {
		OK         bool  `json:"ok"`
		Compared   int64 `json:"compared"`
		Equal      int64 `json:"equal"`
		Value      int64 `json:"value"`
		Mismatches []struct {
			Key, Reason string
		} `json:"mismatches"`
	}

	if code, out, errOut := run(flags...); code != exitOK || !strings.Contains(out, "result: EQUAL") || strings.Contains(out+errOut, "p@ss") {
		t.Fatalf("equal: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := run("verify", "-c", path, "--recheck-delay", "0"); code != exitOK || !strings.Contains(out, "keys compared:           400") {
		t.Fatalf("-c: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut := run(append(flags, "--json")...)
	var rep report
	if err := json.Unmarshal([]byte(out), &rep); code != exitOK || err != nil || !rep.OK || rep.Compared != 400 || rep.Equal != 400 {
		t.Fatalf("--json: exit %d, %v\n%s%s", code, err, out, errOut)
	}

	key := "str:0"
	if err := shards[sm.ShardOf([]byte(key))].Client().Append(ctx, key, "!").Err(); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := run(flags...); code != exitError || !strings.Contains(out, `"str:0": value`) || !strings.Contains(errOut, "differs") {
		t.Fatalf("changed: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = run(append(flags, "--json")...)
	rep = report{}
	if err := json.Unmarshal([]byte(out), &rep); code != exitError || err != nil || rep.OK || rep.Value != 1 ||
		len(rep.Mismatches) != 1 || rep.Mismatches[0].Key != key || rep.Mismatches[0].Reason != "value" {
		t.Fatalf("changed --json: exit %d, %v\n%s", code, err, out)
	}

	for _, args := range [][]string{
		{"verify"},
		{"verify", "-c", path, "--source", "redis://" + src.Addr},
		{"verify", "--source", "redis://" + src.Addr},
		{"verify", "--source", "http://x", "--shard", "redis://" + shards[0].Addr},
		{"verify", "--shard", "redis://h/5"},
		{"verify", "-c", filepath.Join(dir, "missing.yaml")},
		{"verify", "extra-arg"},
	} {
		if code, out, errOut := run(args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d\n%s%s", args, code, exitUsage, out, errOut)
		}
	}
	// A shard that is down: exit 1.
	shards[1].Kill()
	if code, _, errOut := run(append(flags, "--timeout", "2s")...); code != exitError || strings.Contains(errOut, "p@ss") {
		t.Fatalf("shard down: exit %d\n%s", code, errOut)
	}
}

// TestVerifyClusterSource: a Redis Cluster source is read master by
// master; given only one node's address, verify still sees every key.
func TestVerifyClusterSource(t *testing.T) {
	ctx := harness.Context(t, time.Minute)
	cl := harness.StartCluster(t, 3, 0)
	if err := harness.LoadDataset(ctx, cl.Client(), "", 9, 600); err != nil {
		t.Fatal(err)
	}
	shards := harness.StartServers(t, 2)
	sm, _ := router.EvenSlotMap(len(shards))
	for _, m := range cl.Masters(ctx) {
		iter := m.Scan(ctx, 0, "", 100).Iterator()
		for iter.Next(ctx) {
			k := iter.Val()
			dump, err := m.Dump(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			ttl := max(m.PTTL(ctx, k).Val(), 0)
			if ttl > 0 {
				ttl += config.DefaultTTLGrace // as the syncer writes it
			}
			if err := shards[sm.ShardOf([]byte(k))].Client().RestoreReplace(ctx, k, ttl, dump).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if err := iter.Err(); err != nil {
			t.Fatal(err)
		}
	}
	var out, errOut bytes.Buffer
	code := runWith(context.Background(), []string{"verify", "--source", "cl: redis://" + cl.Addr(),
		"--shard", "redis://" + shards[0].Addr, "--shard", "redis://" + shards[1].Addr, "--recheck-delay", "0"}, &out, &errOut)
	if code != exitOK || !strings.Contains(out.String(), "keys compared:           600") {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
}

// TestVerifyCluster: verify naming one node of a Redis Cluster as the
// destination compares against the whole cluster.
func TestVerifyCluster(t *testing.T) {
	ctx := harness.Context(t, time.Minute)
	src := harness.StartRedis(t)
	c := harness.StartCluster(t, 3, 0)
	sc, cc := src.Client(), c.Client()
	for i := range 100 {
		k := fmt.Sprintf("key:%d", i)
		if err := sc.Set(ctx, k, i, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := cc.Set(ctx, k, i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"verify", "--source", "redis://" + src.Addr, "--shard", "redis://" + c.Nodes[1].Addr, "--recheck-delay", "0", "--no-progress"}
	if code, out := cli(t, args...); code != exitOK {
		t.Fatalf("verify of an equal cluster: exit %d\n%s", code, out)
	}
	if err := cc.Set(ctx, "key:7", "changed", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if code, out := cli(t, args...); code == exitOK || !strings.Contains(out, "key:7") {
		t.Fatalf("verify of a changed cluster: exit %d\n%s", code, out)
	}
}

// TestVerifyClusterDBMap: verify -c compares source databases with the
// cluster's database 0 as destination.db_map maps them.
func TestVerifyClusterDBMap(t *testing.T) {
	ctx := harness.Context(t, time.Minute)
	src := harness.StartRedis(t)
	c := harness.StartCluster(t, 3, 0)
	cc := c.Client()
	for db, prefix := range map[int]string{0: "zero", 2: "two", 4: "four"} {
		for i := range 50 {
			k := fmt.Sprintf("%s:%d", prefix, i)
			if err := src.ClientDB(db).Set(ctx, k, i, 0).Err(); err != nil {
				t.Fatal(err)
			}
			if db != 4 { // dropped
				if err := cc.Set(ctx, k, i, 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	path := filepath.Join(t.TempDir(), "replicaof.yaml")
	yaml := fmt.Sprintf("destination: { shards: [\"redis://%s\"], db_map: {2: 0, 4: drop} }\nreplica_of: { sources: [\"src: redis://%s\"] }\n",
		c.Nodes[2].Addr, src.Addr)
	writeConfig(t, path, yaml)
	args := []string{"verify", "-c", path, "--recheck-delay", "0", "--no-progress"}
	if code, out := cli(t, args...); code != exitOK || !strings.Contains(out, "keys compared:           100") {
		t.Fatalf("verify with db_map: exit %d\n%s", code, out)
	}
	writeConfig(t, path, fmt.Sprintf("destination: { shards: [\"redis://%s\"], db_map: {4: drop} }\nreplica_of: { sources: [\"src: redis://%s\"] }\n",
		c.Nodes[2].Addr, src.Addr))
	if code, out := cli(t, args...); code == exitOK || !strings.Contains(out, "source database 2 needs mapping") {
		t.Fatalf("verify without db 2 mapped: exit %d\n%s", code, out)
	}
}
