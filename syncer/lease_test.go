package syncer

import (
	"strings"
	"testing"
	"time"

	"github.com/replicaof/replicaof/config"
)

func TestLeaseStateMachine(t *testing.T) {
	const d = 10 * time.Second // margin 2s: valid for 8s after a renewal was sent
	t0 := time.Now()
	cases := []struct {
		name       string
		st         leaseState
		at         time.Duration // after t0
		role       string
		renew      bool
		wakeAtMost time.Duration
	}{
		{"never held", leaseState{}, 0, RoleStandby, false, d / 3},
		{"just taken", leaseState{held: true, renewed: t0}, 0, RoleActive, true, d / 3},
		{"renewal due", leaseState{held: true, renewed: t0}, 4 * time.Second, RoleActive, true, d / 3},
		{"near the margin: wake at its end", leaseState{held: true, renewed: t0}, 7 * time.Second, RoleActive, true, time.Second},
		{"at the margin: deposed", leaseState{held: true, renewed: t0}, 8 * time.Second, RoleStandby, false, d / 3},
		{"paused past the lease: deposed, must take it again", leaseState{held: true, renewed: t0}, time.Minute, RoleStandby, false, d / 3},
		{"lost to another instance", leaseState{held: false, renewed: t0}, time.Second, RoleStandby, false, d / 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			now := t0.Add(c.at)
			if got := c.st.role(now, d); got != c.role {
				t.Errorf("role %s, want %s", got, c.role)
			}
			if got := c.st.next(now, d); got != c.renew {
				t.Errorf("renew %v, want %v", got, c.renew)
			}
			if w := c.st.wake(now, d); w > c.wakeAtMost || w <= 0 {
				t.Errorf("wake in %v, want (0, %v]", w, c.wakeAtMost)
			}
		})
	}
	if m := margin(time.Second); m != 200*time.Millisecond {
		t.Errorf("margin of 1s: %v", m)
	}
}

func TestParseAcquire(t *testing.T) {
	ok, v, err := parseAcquire([]byte("*2\r\n:1\r\n$28\r\n1733000000000 abc http://x:1\r\n"))
	if err != nil || !ok || holderAddr(v) != "http://x:1" {
		t.Fatalf("%v %q %v", ok, v, err)
	}
	ok, v, err = parseAcquire([]byte("*2\r\n:0\r\n$18\r\n7 other http://y:2\r\n"))
	if err != nil || ok || holderAddr(v) != "http://y:2" {
		t.Fatalf("%v %q %v", ok, v, err)
	}
	for _, bad := range []string{"", ":1\r\n", "*2\r\n:1\r\n$1\r\nx\r\n", "-ERR no\r\n"} {
		if _, _, err := parseAcquire([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestSourcesRoundTrip(t *testing.T) {
	a, _ := config.ParseSource("a: redis://:pw@127.0.0.1:7000")
	b, _ := config.ParseSource("redis://127.0.0.1:7001")
	b.Name = b.Addr()
	b.Compression = 3
	enc := encodeSources("inst1", []config.Source{a, b})
	id, body, _ := cut(enc)
	if id != "inst1" {
		t.Fatalf("writer %q", id)
	}
	got, err := config.ParseSources([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if !sameSourceList(got, []config.Source{a, b}) || string(got[0].Password) != "pw" || got[1].Compression != 3 {
		t.Fatalf("round trip: %+v", got)
	}
}

func cut(s string) (string, string, bool) {
	for i := range s {
		if s[i] == '\n' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// FuzzParseAcquire: the acquire script's reply never panics the parser,
// and a value it accepts has an epoch, an id and an address field.
func FuzzParseAcquire(f *testing.F) {
	f.Add([]byte("*2\r\n:1\r\n$28\r\n1733000000000 abc http://x:1\r\n"))
	f.Add([]byte("*2\r\n:0\r\n$18\r\n7 other http://y:2\r\n"))
	f.Add([]byte("*2\r\n:1\r\n$-1\r\n"))
	f.Add([]byte("-ERR unknown\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, v, err := parseAcquire(b)
		if err == nil && len(strings.Fields(v)) < 2 {
			t.Fatalf("accepted %q", v)
		}
		_ = holderAddr(v)
	})
}
