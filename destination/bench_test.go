package destination

import (
	"testing"

	"github.com/replicaof/replicaof/pool"
	"github.com/replicaof/replicaof/router"
)

// BenchmarkPoolsGet measures the lookup every proxied command and every
// applied batch makes: the backend of (shard, db).
func BenchmarkPoolsGet(b *testing.B) {
	d, err := New(Config{Shards: []Shard{{Addr: "127.0.0.1:1"}, {Addr: "127.0.0.1:2"}, {Addr: "127.0.0.1:3"}}})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	benchGet(b, d)
}

func benchGet(b *testing.B, d *Destination) {
	p := d.NewPools(pool.Config{})
	for i := range 3 {
		p.Get(i, 0)
		d.Backend(i, 0)
	}
	b.Run("Pools.Get", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if p.Get(i%3, 0) == nil {
					b.Fatal("nil backend")
				}
				i++
			}
		})
	})
	b.Run("Backend", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if d.Backend(i%3, 0) == nil {
					b.Fatal("nil backend")
				}
				i++
			}
		})
	})
}

// BenchmarkPoolsGetCluster is BenchmarkPoolsGet on a cluster's groups
// (a view as a refresh installs it; no server needed for lookups).
func BenchmarkPoolsGetCluster(b *testing.B) {
	d := newDestination(Config{})
	d.cl = &clusterState{kickc: make(chan struct{}, 1)}
	v := &view{masterOf: map[string]int{}, known: map[string]int{}}
	for g, a := range []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"} {
		v.masters = append(v.masters, Shard{Addr: a, Cluster: true})
		v.replicas = append(v.replicas, nil)
		v.masterOf[a], v.known[a] = g, g
	}
	m, err := router.EvenSlotMap(3)
	if err != nil {
		b.Fatal(err)
	}
	d.v.Store(v)
	d.m.Store(m)
	d.def = d.NewPools(d.cfg.Pool)
	defer d.Close()
	benchGet(b, d)
}
