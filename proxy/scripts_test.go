package proxy

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/internal/harness"
)

const testLib = `#!lua name=plib
redis.register_function{function_name='pget', callback=function(keys, args) return redis.call('GET', keys[1]) end, flags={'no-writes'}}
redis.register_function('pset', function(keys, args) return redis.call('SET', keys[1], args[1]) end)`

// TestScriptsReadOnly: without allow_writes, scripts and functions load on
// every shard and read-only ones run on keys of every shard.
func TestScriptsReadOnly(t *testing.T) {
	c := newCluster(t, nil, "--lua-time-limit", "100")
	ctx := harness.Context(t, time.Minute)
	per := c.keysOnEveryShard("sc:", 1)
	for s := range per {
		c.put(ctx, per[s][0], "v"+per[s][0])
	}
	p := c.client(nil)

	sha, err := p.ScriptLoad(ctx, "return redis.call('GET', KEYS[1])").Result()
	if err != nil {
		t.Fatal(err)
	}
	for s, sh := range c.shards {
		if ok, _ := sh.Client().ScriptExists(ctx, sha).Result(); len(ok) != 1 || !ok[0] {
			t.Fatalf("shard %d lacks the script", s)
		}
	}
	for s := range per {
		k := per[s][0]
		if v, err := p.EvalSha(ctx, sha, []string{k}).Result(); err != nil || v != "v"+k {
			t.Fatalf("EVALSHA on shard %d: %v %v", s, v, err)
		}
	}
	// A script that writes still needs allow_writes.
	wsha, _ := p.ScriptLoad(ctx, "return redis.call('SET', KEYS[1], 'x')").Result()
	if err := p.EvalSha(ctx, wsha, []string{per[0][0]}).Err(); err == nil || !strings.Contains(err.Error(), "Write commands are not allowed") {
		t.Fatalf("writing EVALSHA read-only: %v", err)
	}
	// SCRIPT EXISTS: 1 only when every shard has it.
	c.shards[1].Client().ScriptFlush(ctx)
	if ex, err := p.ScriptExists(ctx, sha, "0000000000000000000000000000000000000000").Result(); err != nil || len(ex) != 2 || ex[0] || ex[1] {
		t.Fatalf("SCRIPT EXISTS with shard 1 flushed: %v %v", ex, err)
	}
	// SCRIPT LOAD again: same answer everywhere.
	if again, err := p.ScriptLoad(ctx, "return redis.call('GET', KEYS[1])").Result(); err != nil || again != sha {
		t.Fatalf("SCRIPT LOAD again: %v %v", again, err)
	}
	if ex, _ := p.ScriptExists(ctx, sha).Result(); len(ex) != 1 || !ex[0] {
		t.Fatalf("SCRIPT EXISTS after reload: %v", ex)
	}
	if err := p.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if ex, _ := p.ScriptExists(ctx, sha).Result(); len(ex) != 1 || ex[0] {
		t.Fatalf("SCRIPT EXISTS after flush: %v", ex)
	}

	// Functions.
	if name, err := p.FunctionLoad(ctx, testLib).Result(); err != nil || name != "plib" {
		t.Fatalf("FUNCTION LOAD: %v %v", name, err)
	}
	for s := range per {
		k := per[s][0]
		if v, err := p.FCall(ctx, "pget", []string{k}).Result(); err != nil || v != "v"+k {
			t.Fatalf("FCALL on shard %d: %v %v", s, v, err)
		}
	}
	if err := p.FCall(ctx, "pset", []string{per[0][0]}, "x").Err(); err == nil {
		t.Fatal("a writing function ran read-only")
	}
	libs, err := p.FunctionList(ctx, redis.FunctionListQuery{}).Result()
	if err != nil || len(libs) != 1 || libs[0].Name != "plib" || len(libs[0].Functions) != 2 {
		t.Fatalf("FUNCTION LIST: %+v %v", libs, err)
	}
	// Loading it again disagrees nowhere: every shard refuses the same way.
	wantErr(t, p.FunctionLoad(ctx, testLib).Err(), "ERR Library 'plib' already exists")
	// A shard that lost it makes shards disagree, named in the error.
	c.shards[2].Client().FunctionDelete(ctx, "plib")
	wantErr(t, p.FunctionLoad(ctx, testLib).Err(), "ERR shards disagree: shard 0 answered ERR Library 'plib' already exists, shard 2 answered plib")
	dump, err := p.FunctionDump(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.FunctionRestore(ctx, dump).Err(); err == nil {
		t.Fatal("RESTORE over existing libraries succeeded")
	}
	if err := p.FunctionFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := p.FunctionRestore(ctx, dump).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := p.FCall(ctx, "pget", []string{per[2][0]}).Result(); err != nil || v != "v"+per[2][0] {
		t.Fatalf("FCALL after RESTORE: %v %v", v, err)
	}
	if st, err := p.Do(ctx, "FUNCTION", "STATS").Slice(); err != nil || len(st) != 4 || st[0] != "running_script" || st[2] != "engines" {
		t.Fatalf("FUNCTION STATS: %v %v", st, err)
	}
	if err := p.FunctionDelete(ctx, "plib").Err(); err != nil {
		t.Fatal(err)
	}

	// SCRIPT KILL reaches the shard running a script, past its busy connection.
	busy := c.client(nil)
	done := make(chan error, 1)
	go func() {
		done <- busy.Eval(ctx, "local i = 0 while true do i = i + 1 end", []string{per[1][0]}).Err()
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := p.ScriptKill(ctx).Err()
		if err == nil {
			break
		}
		if !strings.HasPrefix(err.Error(), "NOTBUSY") || time.Now().After(deadline) {
			t.Fatalf("SCRIPT KILL: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := <-done; err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("killed script answered %v", err)
	}
	wantErr(t, p.ScriptKill(ctx).Err(), "NOTBUSY")
}

// TestFunctionsWrite: with allow_writes a writing function runs on keys of
// every shard.
func TestFunctionsWrite(t *testing.T) {
	c := newCluster(t, func(cfg *Config) { cfg.AllowWrites = true })
	ctx := harness.Context(t, time.Minute)
	per := c.keysOnEveryShard("fw:", 1)
	p := c.client(nil)
	if err := p.FunctionLoad(ctx, testLib).Err(); err != nil {
		t.Fatal(err)
	}
	for s := range per {
		k := per[s][0]
		if err := p.FCall(ctx, "pset", []string{k}, "w"+k).Err(); err != nil {
			t.Fatalf("FCALL pset on shard %d: %v", s, err)
		}
		if v, _ := c.shard(k).Get(ctx, k).Result(); v != "w"+k {
			t.Fatalf("shard %d: %q", s, v)
		}
	}
	sha, _ := p.ScriptLoad(ctx, "return redis.call('INCR', KEYS[1])").Result()
	for s := range per {
		if v, err := p.EvalSha(ctx, sha, []string{per[s][0] + "n"}).Int(); err != nil || v != 1 {
			t.Fatalf("EVALSHA INCR: %v %v", v, err)
		}
	}
}
