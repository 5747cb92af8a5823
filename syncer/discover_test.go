package syncer

import (
	"errors"
	"testing"

	"github.com/replicaof/replicaof/syncer/replica"
)

func TestTopologyRanges(t *testing.T) {
	a := topology{{ranges: "0-5460", addr: "h:1"}, {ranges: "5461-10921,16000-16383", addr: "h:2"}}
	failedOver := topology{{ranges: "0-5460", addr: "h:4"}, {ranges: "5461-10921,16000-16383", addr: "h:2"}}
	resharded := topology{{ranges: "0-5459", addr: "h:1"}, {ranges: "5460-10921,16000-16383", addr: "h:2"}}
	if !a.sameRanges(failedOver) {
		t.Error("a failover (new address, same ranges) counted as a topology change")
	}
	if a.sameRanges(resharded) || a.sameRanges(a[:1]) {
		t.Error("moved slots not seen")
	}
	for in, want := range map[string]int{"0-5460": 0, "5461-10921,16000-16383": 5461, "7,9-10": 7} {
		if got := firstSlot(in); got != want {
			t.Errorf("firstSlot(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestDiscoveryErrClass(t *testing.T) {
	for msg, fatal := range map[string]bool{
		"WRONGPASS invalid username-password pair or user is disabled.": true,
		"NOAUTH Authentication required.":                               true,
		"ERR invalid password":                                          true,
		"dial tcp 127.0.0.1:1: connect: connection refused":             false,
		"LOADING Redis is loading the dataset in memory":                false,
	} {
		err := discoveryErr(errors.New(msg))
		if got := errors.Is(err, replica.ErrAuth); got != fatal {
			t.Errorf("%q: authentication error %v, want %v", msg, got, fatal)
		}
	}
}
