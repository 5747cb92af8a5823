package config

import (
	"strings"
	"testing"
	"time"
)

func TestShardReplicas(t *testing.T) {
	const y = `
proxy:
  read_from: replica
  max_replica_lag: 250ms
destination:
  shards:
    - redis://d:1
    - uri: redis://:pw@d:2
      replicas: [redis://:pw@r:2, "redis://r:3"]
    - { uri: "redis://d:3" }
`
	c, err := Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if c.Proxy.ReadFrom != "replica" || c.Proxy.MaxReplicaLag != 250*time.Millisecond {
		t.Errorf("proxy %+v", c.Proxy)
	}
	if len(c.Destination.Shards) != 3 || c.Destination.Shards[1].Addr() != "d:2" || c.Destination.Shards[2].Addr() != "d:3" {
		t.Fatalf("shards %v", c.Destination.Shards)
	}
	r := c.Destination.Replicas
	if len(r) != 2 || len(r[0]) != 0 || len(r[1]) != 2 || r[1][0].Addr() != "r:2" || string(r[1][0].Password) != "pw" || r[1][1].Addr() != "r:3" {
		t.Fatalf("replicas %v", r)
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !equal(again, c) {
		t.Errorf("Parse(Marshal()) differs:\n%+v\n%+v\n%s", *again, *c, out)
	}
}

func TestShardReplicasErrors(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{"proxy: { read_from: slave }\ndestination: { shards: [redis://d:1] }",
			`proxy.read_from: "slave": want one of primary, prefer-primary, replica, prefer-replica, any`},
		{"proxy: { max_replica_lag: -1s }\ndestination: { shards: [redis://d:1] }", "proxy.max_replica_lag: must not be negative"},
		{"destination: { shards: [{ replicas: [redis://r:1] }] }", "destination.shards[0]: a shard given as a mapping needs uri"},
		{"destination: { shards: [{ uri: redis://d:1, replicas: [redis://d:1] }] }",
			"destination.shards[0].replicas[0]: redis://d:1: same address as destination.shards[0]"},
		{"destination: { shards: [{ uri: redis://d:1, replicas: [http://r:1] }] }", `unsupported scheme "http"`},
		{"destination: { shards: [{ uri: redis://d:1, replica: [redis://r:1] }] }", `unknown field "replica"`},
	} {
		_, err := Parse([]byte(tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s:\n got %v\nwant %s", tt.yaml, err, tt.want)
		}
	}
}
