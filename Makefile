# replicaof — make targets. The two a newcomer needs: `make demo`, `make test`.
GO      ?= go
BIN     := bin/replicaof
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -X main.version=$(VERSION)
SHELL   := /bin/bash

.PHONY: build demo test test-deps test-faults lint bench bench-proxy bench-sync bench-compress fuzz deps generate clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/replicaof

# Runs replicaof on a local topology (2 sources, 3 shards, live traffic)
# until Ctrl-C.
demo: deps build
	./$(BIN) demo

deps:
	@scripts/ensure-redis.sh

# Tests also need Chromium for the dashboard's browser test.
test-deps: deps
	@scripts/ensure-chromium.sh

# Unit and integration tests against real redis-server processes.
test: test-deps lint
	$(GO) test -race -timeout 20m ./...

# The fault-injection matrix (also part of make test), verbose, with timings.
test-faults: deps
	$(GO) test -race -count=1 -v -timeout 20m -run 'Fault|Passwords|ExactlyOnce|EmptyShard|ClusterSource|ClusterDestination|Chain|SourceDownAtStart|CrossShard' ./integration/ 2>&1 | grep -E '^(=== RUN|--- |PASS|FAIL|ok)|faults_test|exactlyonce_test|clustersource_test|cluster_dest_test|chain_test|crossshard_test'
	$(GO) test -race -count=1 -v -timeout 10m -run 'FaultHA' ./cmd/replicaof/ 2>&1 | grep -E '^(=== RUN|--- |PASS|FAIL|ok)|ha_test'

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./router/... ./pool/... ./destination/... ./resp/... ./syncer/...
	$(GO) test -run '^$$' -bench 'BenchmarkBackendPipeline' -benchtime 2000000x ./pool/

# redis-benchmark through the proxy, directly against a shard and through
# twemproxy (nutcracker, installed with apt-get when missing), same run.
bench-proxy: deps
	bench/proxy/run.sh

# Full sync of 1M mixed keys into 1 and 3 shards and into a 3-master Redis
# Cluster next to native REPLICAOF, then lag and catch-up under
# redis-benchmark SET load; peak RSS.
# KEYS=, VALUE_SIZE= and SET_N= override the sizes.
bench-sync: deps build
	$(GO) run ./bench/sync -bin $(BIN) -keys $${KEYS:-300000,1000000} -dataset $${DATASET:-mixed} -value-size $${VALUE_SIZE:-16} -set-n $${SET_N:-500000}

# Chaining: replicaof B fully syncing from replicaof A's proxy at gzip
# levels 0, 1 and 6, on loopback and through a 200 Mbit/s relay; 1 GiB of
# JSON-like records. SIZE=, LEVELS=, LIMIT= and ARGS= (e.g. -tls) override.
bench-compress: deps
	$(GO) run ./bench/compress -size $${SIZE:-1GiB} -levels $${LEVELS:-0,1,6} -limit $${LIMIT:-0,200mbit} $${ARGS:-}

fuzz:
	scripts/fuzz.sh

# Regenerates router/commands_gen.go from the installed redis-server.
generate: deps
	$(GO) generate ./router/

clean:
	rm -rf bin
