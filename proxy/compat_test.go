package proxy

import (
	"testing"
	"time"

	"github.com/replicaof/replicaof/internal/harness"
)

// TestPUnsubscribe: PUNSUBSCRIBE reaches every shard under its own name,
// is confirmed at once, and leaves no pattern behind on the shards.
func TestPUnsubscribe(t *testing.T) {
	c := newCluster(t, nil)
	ctx := harness.Context(t, time.Minute)
	raw := harness.DialRaw(t, c.addr)
	raw.Send("PSUBSCRIBE a.* b.*\r\n")
	raw.Expect("*3\r\n$10\r\npsubscribe\r\n$3\r\na.*\r\n:1\r\n")
	raw.Expect("*3\r\n$10\r\npsubscribe\r\n$3\r\nb.*\r\n:2\r\n")
	start := time.Now()
	raw.Send("PUNSUBSCRIBE a.*\r\n")
	raw.Expect("*3\r\n$12\r\npunsubscribe\r\n$3\r\na.*\r\n:1\r\n")
	raw.Send("PUNSUBSCRIBE\r\n")
	raw.Expect("*3\r\n$12\r\npunsubscribe\r\n$3\r\nb.*\r\n:0\r\n")
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("confirmations took %v", d)
	}
	// Out of subscribed mode: an ordinary command works again.
	raw.Send("PING\r\n")
	raw.Expect("+PONG\r\n")
	for i, s := range c.shards {
		// The shard connection closes when the last pattern goes.
		deadline := time.Now().Add(5 * time.Second)
		for {
			n, err := s.Client().PubSubNumPat(ctx).Result()
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("shard %d still has %d patterns", i, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestInlineQuoting: inline commands split with Redis' quoting rules.
func TestInlineQuoting(t *testing.T) {
	c := newCluster(t, func(cfg *Config) { cfg.AllowWrites = true })
	raw := harness.DialRaw(t, c.addr)
	raw.Send("EVAL \"return 1\" 0\r\n")
	raw.Expect(":1\r\n")
	raw.Send("SET k \"a b\\x41\\n\"\r\nGET k\r\n")
	raw.Expect("+OK\r\n$5\r\na bA\n\r\n")
	raw.Send("SET k 'it\\'s'\r\nGET k\r\nECHO \"\"\r\n")
	raw.Expect("+OK\r\n$4\r\nit's\r\n$0\r\n\r\n")
	raw.Send("GET \"k\r\n")
	raw.Expect("-ERR Protocol error: unbalanced quotes in request\r\n")
	// Another client is unaffected.
	other := harness.DialRaw(t, c.addr)
	other.Send("GET k\r\n")
	other.Expect("$4\r\nit's\r\n")
}
