package proxy

import (
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/replicaof/replicaof/internal/harness"
)

func TestWatch(t *testing.T) {
	c := newCluster(t, func(cfg *Config) { cfg.AllowWrites = true })
	ctx := harness.Context(t, time.Minute)
	per := c.keysOnEveryShard("w:", 2)
	a, b := c.client(nil), c.client(nil)

	// incr is the optimistic-locking pattern of go-redis' docs: read
	// under WATCH, write in MULTI/EXEC.
	incr := func(key string, meanwhile func()) error {
		return a.Watch(ctx, func(tx *redis.Tx) error {
			n, err := tx.Get(ctx, key).Int()
			if err != nil && err != redis.Nil {
				return err
			}
			if meanwhile != nil {
				meanwhile()
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, n+1, 0)
				return nil
			})
			return err
		}, key)
	}
	for s := 0; s < 3; s++ {
		key := per[s][0]
		t.Run("not aborted", func(t *testing.T) {
			if err := incr(key, nil); err != nil {
				t.Fatal(err)
			}
			if v, _ := b.Get(ctx, key).Int(); v != 1 {
				t.Fatalf("%s = %d", key, v)
			}
		})
		t.Run("aborted by another client's write", func(t *testing.T) {
			err := incr(key, func() { b.Set(ctx, key, 100, 0) })
			if !errors.Is(err, redis.TxFailedErr) {
				t.Fatalf("EXEC after a concurrent write: %v", err)
			}
			if v, _ := b.Get(ctx, key).Int(); v != 100 {
				t.Fatalf("%s = %d, want the other client's 100", key, v)
			}
		})
		t.Run("aborted by a write on the shard", func(t *testing.T) {
			// The syncer writes to the shard directly.
			err := incr(key, func() { c.shard(key).Set(ctx, key, 7, 0) })
			if !errors.Is(err, redis.TxFailedErr) {
				t.Fatalf("EXEC after a shard write: %v", err)
			}
		})
	}

	t.Run("raw", func(t *testing.T) {
		k0, k0b, k1 := per[0][0], per[0][1], per[1][0]
		raw := harness.DialRaw(t, c.addr)
		raw.Send("WATCH " + k0 + " " + k1 + "\r\n")
		raw.ExpectPrefix("-CROSSSLOT")
		raw.Send("WATCH " + k0 + "\r\nWATCH " + k1 + "\r\n")
		raw.Expect("+OK\r\n")
		raw.ExpectPrefix("-CROSSSLOT")
		// A transaction key on another shard than the watch.
		raw.Send("MULTI\r\nSET " + k1 + " x\r\nEXEC\r\n")
		raw.Expect("+OK\r\n")
		raw.ExpectPrefix("-CROSSSLOT")
		raw.Expect("-EXECABORT Transaction discarded because of previous errors.\r\n")
		// EXEC ended the watch: a write now does not abort.
		raw.Send("WATCH " + k0 + "\r\nUNWATCH\r\n")
		raw.Expect("+OK\r\n+OK\r\n")
		b.Set(ctx, k0, "changed", 0)
		raw.Send("MULTI\r\nSET " + k0b + " y\r\nEXEC\r\n")
		raw.Expect("+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n")
		// An empty transaction under a broken watch answers nil too.
		raw.Send("WATCH " + k0 + "\r\n")
		raw.Expect("+OK\r\n")
		b.Set(ctx, k0, "again", 0)
		raw.Send("MULTI\r\nEXEC\r\n")
		raw.Expect("+OK\r\n*-1\r\n")
		// DISCARD ends the watch.
		raw.Send("WATCH " + k0 + "\r\nMULTI\r\nDISCARD\r\n")
		raw.Expect("+OK\r\n+OK\r\n+OK\r\n")
		if c.srv.blockSemLen() != 0 {
			t.Fatalf("%d dedicated connections left", c.srv.blockSemLen())
		}
	})
	t.Run("closing frees the connection", func(t *testing.T) {
		raw := harness.DialRaw(t, c.addr)
		raw.Send("WATCH " + per[2][0] + "\r\n")
		raw.Expect("+OK\r\n")
		if c.srv.blockSemLen() != 1 {
			t.Fatal("WATCH holds no connection")
		}
		raw.Conn.Close()
		waitFor(t, 5*time.Second, "the watch to end", func() bool { return c.srv.blockSemLen() == 0 })
	})
}

// blockSemLen is how many dedicated connections are in use.
func (s *Server) blockSemLen() int { return len(s.blockSem) }
