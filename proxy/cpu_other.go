//go:build !unix

package proxy

// processCPU is not measured here: INFO cpu then counts the shards only.
func processCPU() (sys, user float64, ok bool) { return 0, 0, false }
