package main

import (
	"context"
	"sync"
	"testing"

	"github.com/replicaof/replicaof/config"
)

// startServe runs serve with the config file at path until the test ends
// or stop is called, once it is ready.
func startServe(t *testing.T, ctx context.Context, path string) (stop func()) {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- serve(sctx, path, cfg, discardLogger(), func(running) { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
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
	return stop
}
