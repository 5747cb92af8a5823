package config_test

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/replicaof/replicaof/config"
)

func Example() {
	cfg, err := config.Parse([]byte(`
destination:
  shards: ["redis://127.0.0.1:7001", "redis://127.0.0.1:7002"]
replica_of:
  sources:
    - "orders: redis://admin:secret@10.0.0.5:12000"
    - "redis://:p%40ss@[::1]"
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("proxy:", cfg.Proxy.Listen, "writes:", cfg.Proxy.AllowWrites)
	for _, s := range cfg.ReplicaOf.Sources {
		fmt.Printf("%s dials %s as user %q\n", s.Name, s.Addr(), s.User)
		fmt.Println("  shown as", s)
	}

	// Logging a source never shows its password.
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	log.Info("connecting", "source", cfg.ReplicaOf.Sources[0])

	_, err = config.Parse([]byte("destination: { shards: [\"redis://:secret@h:1/5\"] }"))
	fmt.Println(err)
	// Output:
	// proxy: 127.0.0.1:6380 writes: false
	// orders dials 10.0.0.5:12000 as user "admin"
	//   shown as orders: redis://admin:***@10.0.0.5:12000
	// [::1]:6379 dials [::1]:6379 as user ""
	//   shown as redis://:***@[::1]:6379
	// level=INFO msg=connecting source.name=orders source.uri=redis://admin:***@10.0.0.5:12000
	// config: line 1, column 25: destination.shards[0]: redis://:***@h:1: unsupported path "/5" (want none or "/0": replication covers every database)
}

func ExampleParseSource() {
	s, err := config.ParseSource("redis://app:s3cret@cache.internal")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.Name, s.User, s.Port, s.TLS)
	fmt.Println(s.Redacted())
	// Output:
	// cache.internal:6379 app 6379 false
	// redis://app:***@cache.internal:6379
}
