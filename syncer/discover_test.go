package syncer

import (
	"errors"
	"fmt"
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
}

// replyErr is an error reply as go-redis returns it (a redis.Error).
type replyErr string

func (e replyErr) Error() string { return string(e) }
func (replyErr) RedisError()     {}

func TestDiscoveryErrClass(t *testing.T) {
	for _, c := range []struct {
		err   error
		fatal bool
	}{
		{replyErr("WRONGPASS invalid username-password pair or user is disabled."), true},
		{replyErr("NOAUTH Authentication required."), true},
		{replyErr("ERR invalid password"), true},
		{fmt.Errorf("redis: wrapped: %w", replyErr("NOPERM no permissions")), true},
		{errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), false},
		{replyErr("LOADING Redis is loading the dataset in memory"), false},
		{errors.New("NOAUTH but not a reply"), false},
	} {
		err := discoveryErr(c.err)
		if got := errors.Is(err, replica.ErrAuth); got != c.fatal {
			t.Errorf("%q: authentication error %v, want %v", c.err, got, c.fatal)
		}
	}
	if !isNoPerm(replyErr("NOPERM User u has no permissions to run the 'info' command")) ||
		isNoPerm(replyErr("NOAUTH Authentication required.")) || isNoPerm(nil) {
		t.Error("isNoPerm")
	}
}
