package destination

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"

	"github.com/replicaof/replicaof/internal/errclass"
	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/router"
)

// Errors of writes the destination refused. Test for them with
// errors.Is; *WriteError carries the details.
var (
	// ErrRejected means a destination shard answered a write with an
	// error reply (a payload it cannot load, WRONGTYPE, ...).
	ErrRejected = errclass.New(errclass.Fatal, "apply: destination rejected a write")
	// ErrOOM means a destination shard is out of memory (-OOM).
	ErrOOM = errclass.New(errclass.Fatal, "apply: destination out of memory")
)

// WriteError reports an error reply from a destination shard. It wraps
// the reply (a resp.Error) and ErrOOM for -OOM replies, ErrRejected for
// every other error reply.
type WriteError struct {
	Shard   int
	Addr    string
	DB      int
	Command string     // the command name as sent
	Key     string     // its first key, "" if none
	Reply   resp.Error // the error reply (or why the reply was unusable)
	Err     error      // ErrOOM or ErrRejected
}

func (e *WriteError) Error() string {
	return fmt.Sprintf("apply: shard %d (%s) db %d: %s %q: %s", e.Shard, e.Addr, e.DB, e.Command, e.Key, e.Reply)
}

func (e *WriteError) Unwrap() []error { return []error{e.Err, e.Reply} }

// Refused builds the *WriteError for an error reply to req sent to
// (shard, db), naming the command and its first key.
func (d *Destination) Refused(shard, db int, req []byte, reply string) error {
	e := &WriteError{Shard: shard, Addr: d.Addr(shard), DB: db, Reply: resp.Error(reply), Err: ErrRejected}
	if e.Reply.Code() == "OOM" {
		e.Err = ErrOOM
	}
	e.Command, e.Key = describeReq(req)
	return e
}

// describeReq names a raw command and its first key, for error reports.
func describeReq(req []byte) (name, key string) {
	var c resp.Command
	if err := resp.ReadCommand(bufio.NewReader(bytes.NewReader(req)), &c, resp.Limits{}); err != nil || len(c.Args) == 0 {
		return "?", ""
	}
	name = string(c.Args[0])
	if cmd := router.Builtin.Lookup(c.Args); cmd != nil {
		if keys, err := cmd.Keys(c.Args, nil); err == nil && len(keys) > 0 {
			key = string(c.Args[keys[0]])
		}
	}
	return name, key
}

// Errors of a Redis Cluster destination.
var (
	// ErrTopologyChanged means the cluster has a master that belongs to
	// none of the groups the destination started with (a new master got
	// slots): shard indexes, checkpoints and pools are per group, so
	// replicaof must be restarted to take the new layout.
	ErrTopologyChanged = errclass.New(errclass.Fatal, "destination: the cluster has a new master: restart replicaof to use it")
	// ErrClusterDB means a database other than 0 was asked of a Redis
	// Cluster, which has only database 0 (see destination.db_map).
	ErrClusterDB = errclass.New(errclass.Fatal, "destination: a Redis Cluster has database 0 only")
	// ErrUnknownNode means an address names no node of the cluster as
	// the last refresh saw it.
	ErrUnknownNode = errors.New("destination: not a known cluster node")
)
