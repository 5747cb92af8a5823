package proxy

import (
	"strings"
	"testing"

	"github.com/replicaof/replicaof/destination"
)

// Validate refuses loop counts and pending bounds out of range, and
// withDefaults makes the hard limit 4 times MaxPending.
func TestConfigLoopsAndPending(t *testing.T) {
	dest, err := destination.New(destination.Config{Shards: []destination.Shard{{Addr: "127.0.0.1:1"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mut  func(*Config)
		want string // "" for valid
	}{
		{func(c *Config) {}, ""},
		{func(c *Config) { c.Loops = LoopsAuto }, ""},
		{func(c *Config) { c.Loops = MaxLoops }, ""},
		{func(c *Config) { c.Loops = -2 }, "loops -2 out of range"},
		{func(c *Config) { c.Loops = MaxLoops + 1 }, "loops 1025 out of range"},
		{func(c *Config) { c.MaxPending = -1 }, "max pending -1 out of range"},
		{func(c *Config) { c.MaxPending = 1 << 20; c.MaxPendingHard = 1 << 20 }, ""},
		{func(c *Config) { c.MaxPending = 1 << 20; c.MaxPendingHard = 1<<20 - 1 }, "below max pending"},
		{func(c *Config) { c.MaxPendingHard = 1 << 20 }, "below max pending 67108864"},
		{func(c *Config) { c.MaxPendingHard = -1 }, "hard pending limit -1"},
	} {
		cfg := Config{Destination: dest}
		tc.mut(&cfg)
		err := cfg.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", cfg, err, tc.want)
		}
	}
	d := Config{MaxPending: 1 << 20}.withDefaults()
	if d.MaxPendingHard != 4<<20 {
		t.Errorf("hard limit %d, want 4 MB", d.MaxPendingHard)
	}
	if d := (Config{}).withDefaults(); d.MaxPending != DefaultMaxPending || d.MaxPendingHard != 4*DefaultMaxPending {
		t.Errorf("defaults %d %d", d.MaxPending, d.MaxPendingHard)
	}
}
