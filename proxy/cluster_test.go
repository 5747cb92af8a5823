package proxy

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/internal/harness"
	"github.com/replicaof/replicaof/router"
)

// TestClusterCommands checks the proxy's one-node-cluster answers.
func TestClusterCommands(t *testing.T) {
	c := newCluster(t, nil)
	ctx := harness.Context(t, time.Minute)
	p := c.client(nil)
	host, port := "127.0.0.1", c.srv.Addr().String()
	port = port[strings.LastIndexByte(port, ':')+1:]

	slots, err := p.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(slots) != 1 || slots[0].Start != 0 || slots[0].End != router.SlotCount-1 || len(slots[0].Nodes) != 1 ||
		slots[0].Nodes[0].Addr != host+":"+port || len(slots[0].Nodes[0].ID) != 40 {
		t.Fatalf("CLUSTER SLOTS = %+v", slots)
	}
	id := slots[0].Nodes[0].ID
	if got, err := p.ClusterMyID(ctx).Result(); err != nil || got != id {
		t.Fatalf("CLUSTER MYID = %q %v, want %q", got, err, id)
	}
	shards, err := p.ClusterShards(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(shards) != 1 || len(shards[0].Slots) != 1 || shards[0].Slots[0].End != router.SlotCount-1 || len(shards[0].Nodes) != 1 ||
		shards[0].Nodes[0].ID != id || shards[0].Nodes[0].Port != int64(mustAtoi(t, port)) || shards[0].Nodes[0].Role != "master" ||
		shards[0].Nodes[0].Health != "online" {
		t.Fatalf("CLUSTER SHARDS = %+v", shards)
	}
	nodes, err := p.ClusterNodes(ctx).Result()
	if err != nil || !strings.HasPrefix(nodes, id+" "+host+":"+port+"@0 myself,master - 0 0 1 connected 0-16383") {
		t.Fatalf("CLUSTER NODES = %q %v", nodes, err)
	}
	info, err := p.ClusterInfo(ctx).Result()
	if err != nil || !strings.Contains(info, "cluster_state:ok\r\n") || !strings.Contains(info, "cluster_slots_ok:16384\r\n") {
		t.Fatalf("CLUSTER INFO = %q %v", info, err)
	}
	if n, err := p.ClusterKeySlot(ctx, "foo").Result(); err != nil || n != 12182 {
		t.Fatalf("CLUSTER KEYSLOT foo = %d %v", n, err)
	}
	if s, err := p.Info(ctx, "cluster").Result(); err != nil || !strings.Contains(s, "cluster_enabled:1") {
		t.Fatalf("INFO cluster = %q %v", s, err)
	}
	if err := p.Do(ctx, "ASKING").Err(); err != nil {
		t.Fatalf("ASKING: %v", err)
	}
	wantErr(t, p.Do(ctx, "CLUSTER", "FAILOVER").Err(), "ERR unsupported command 'CLUSTER|FAILOVER'")
	wantErr(t, p.Do(ctx, "CLUSTER", "SLOTS", "x").Err(), "ERR wrong number of arguments")
	wantErr(t, p.Do(ctx, "CLUSTER").Err(), "ERR wrong number of arguments")
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestClusterClient runs go-redis' ClusterClient against the proxy: it
// learns one node, the proxy, and every command reaches the right shard
// through it.
func TestClusterClient(t *testing.T) {
	c := newCluster(t, nil)
	ctx := harness.Context(t, time.Minute)
	_, all := c.putOnEveryShard(ctx, "k:", 30)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{c.addr}, MaxRedirects: -1, ReadOnly: true})
	t.Cleanup(func() { cc.Close() })
	clusterClientReads(t, ctx, cc, all)
}

// clusterClientReads reads keys (each with the value "v-"+key, and
// nothing else in the database) through a ClusterClient of the proxy:
// GET, MGET across slots, a pipeline, DBSIZE and SCAN on every master.
func clusterClientReads(t *testing.T, ctx context.Context, cc *redis.ClusterClient, keys []string) {
	t.Helper()
	for _, k := range keys {
		if v, err := cc.Get(ctx, k).Result(); err != nil || v != "v-"+k {
			t.Fatalf("GET %s = %q %v", k, v, err)
		}
	}
	vals, err := cc.MGet(ctx, keys...).Result()
	if err != nil || len(vals) != len(keys) {
		t.Fatalf("MGET: %d values, %v", len(vals), err)
	}
	for i, v := range vals {
		if v != "v-"+keys[i] {
			t.Fatalf("MGET %s = %v", keys[i], v)
		}
	}
	cmds, err := cc.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Get(ctx, k)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, cmd := range cmds {
		if v := cmd.(*redis.StringCmd).Val(); v != "v-"+keys[i] {
			t.Fatalf("pipelined GET %s = %q", keys[i], v)
		}
	}
	if n, err := cc.DBSize(ctx).Result(); err != nil || n != int64(len(keys)) {
		t.Fatalf("DBSIZE = %d %v, want %d", n, err, len(keys))
	}
	var got []string
	err = cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		it := m.Scan(ctx, 0, "", 7).Iterator()
		for it.Next(ctx) {
			got = append(got, it.Val())
		}
		return it.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	want := slices.Clone(keys)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("SCAN found %d keys, want %d", len(got), len(want))
	}
}

func TestBySlot(t *testing.T) {
	m, _ := router.EvenSlotMap(2)
	// a and {a}x share a slot; b and c are on other slots.
	args := [][]byte{[]byte("MSET"), []byte("a"), []byte("1"), []byte("b"), []byte("2"), []byte("{a}x"), []byte("3"), []byte("c"), []byte("4")}
	_, parts := m.Split(args, false)
	got := bySlot(parts, 2)
	seen := map[int]bool{}
	for _, p := range got {
		sl := router.Slot(p.Args[1])
		for j := 1; j < len(p.Args); j += 2 {
			if router.Slot(p.Args[j]) != sl {
				t.Fatalf("part %q spans slots", p.Args)
			}
			if m.ShardOf(p.Args[j]) != p.Shard {
				t.Fatalf("part %q on shard %d", p.Args, p.Shard)
			}
		}
		if len(p.Keys) != (len(p.Args)-1)/2 {
			t.Fatalf("part %q keys %v", p.Args, p.Keys)
		}
		for i, k := range p.Keys {
			if string(p.Args[1+2*i]) != string(args[1+2*k]) || string(p.Args[2+2*i]) != string(args[2+2*k]) {
				t.Fatalf("part %q: key ordinal %d is %q", p.Args, k, args[1+2*k])
			}
			if seen[k] {
				t.Fatalf("key %d twice", k)
			}
			seen[k] = true
		}
	}
	if len(seen) != 4 || len(got) != 3 {
		t.Fatalf("%d parts, %d keys: %v", len(got), len(seen), got)
	}
	one := [][]byte{[]byte("MGET"), []byte("{t}1"), []byte("{t}2")}
	_, parts = m.Split(one, false)
	if got := bySlot(parts, 1); len(got) != 1 || len(got[0].Args) != 3 {
		t.Fatalf("one slot split: %v", got)
	}
}
