package main

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/replicaof/replicaof/config"
)

// writeConfig writes a config file, failing the test on an error.
func writeConfig(t *testing.T, path, yaml string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startServe runs serve with the config file at path until the test ends
// or stop is called. It returns once serve listens, with what serve
// reports then.
func startServe(t *testing.T, ctx context.Context, path string) (run running, stop func()) {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	ready := make(chan running, 1)
	go func() { done <- serve(sctx, path, cfg, discardLogger(), func(r running) { ready <- r }) }()
	select {
	case run = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	case <-ctx.Done():
		cancel()
		<-done
		t.Fatal("serve did not start")
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return run, stop
}
