// Package benchenv is what the benchmark programs under bench/ share: a
// set of redis-server processes under one temporary directory, stopped
// together, and a CPU profile for the length of a run.
package benchenv
