package apply

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/replicaof/replicaof/destination"
	"github.com/replicaof/replicaof/resp"
	"github.com/replicaof/replicaof/syncer/rdb"
)

// Keys the destination cannot take (Options.SkipUnsupported): a module
// value whose module a shard lacks (RESTORE answers "Bad data format"; one
// throwaway RESTORE per shard and module type tells), or a module value
// for a shard that cannot RESTORE the file's RDB version at all (module
// values cannot be rebuilt with ordinary commands).
//
// By default such a key stops sync with an *UnsupportedKeyError naming
// the key and its type. With SkipUnsupported the key is left out, counted
// per type (Stats.Unsupported), logged once per type with a sample key,
// and remembered, so the stream's commands on it are dropped and counted
// (Stats.DroppedCommands):
//
//   - DEL and UNLINK go through (the key is simply absent) and forget it;
//     FLUSHALL, FLUSHDB and SWAPDB forget or move what they cover.
//   - SET and RESTORE replace the value whatever its type: they go through
//     (SET without NX/XX, which no longer mean what they did on the
//     source) and the key is forgotten.
//   - RENAME, RENAMENX, MOVE and COPY from a remembered key are dropped and
//     their target is remembered instead; onto a remembered key (which the
//     source overwrote) they go through and the target is forgotten.
//   - Any other command with a remembered key is dropped.
//   - Commands the destination does not know (a module's own commands)
//     are dropped too, wherever their keys are.
//
// The memory of remembered keys is bounded by MaxSkippedKeys names and
// 64 bytes of overhead plus the name per key (maxSkippedBytes in all). Keys
// skipped beyond the bound are counted (Stats.UntrackedSkips) but not
// remembered: the stream's commands on them reach the destination, where
// most find no key and do nothing (EXPIRE, DEL) and a module's commands
// are dropped as unknown, but RENAME of such a key stops sync ("no such
// key"). The set lives in memory: after a restart that resumes from
// checkpoints it starts empty, with the same consequences.

// maxSkippedBytes bounds the memory of remembered skipped keys, with
// skipOverhead counted per key on top of its name.
const (
	maxSkippedBytes = 256 << 20
	skipOverhead    = 64
	maxSkipTypes    = 256 // distinct type names counted; more count as "other"
)

// UnsupportedKeyError names a key the destination cannot take. It wraps
// ErrUnsupported.
type UnsupportedKeyError struct {
	DB     int
	Key    string
	Type   string // "module ReJSON-RL (encver 3)", …
	Shard  int
	Reason string
}

func (e *UnsupportedKeyError) Error() string {
	return fmt.Sprintf("apply: key %q (db %d) has type %s, which shard %d cannot take (%s); "+
		"replica_of.unsupported_keys: skip leaves such keys out", e.Key, e.DB, e.Type, e.Shard, e.Reason)
}

func (e *UnsupportedKeyError) Unwrap() error { return ErrUnsupported }

type skipKey struct {
	db  int
	key string
}

// skipped is an Applier's record of skipped keys.
type skipped struct {
	a *Applier

	mu     sync.Mutex // guards counts and logged (Stats reads them)
	counts map[string]int64

	// Owned by the loader and stream goroutine (one at a time).
	keys  map[skipKey]struct{}
	bytes int

	untracked, dropped atomic.Int64

	// Module types a shard was asked about: id → RESTORE works there.
	probed map[moduleProbe]bool

	// The changes of the Apply under way, undone when it fails and its
	// commands will be delivered again.
	journal     []skipUndo
	journaling  bool
	droppedMark int64
}

// skipUndo undoes one change: k was present (had) or not, or the whole
// set was replaced (whole).
type skipUndo struct {
	k     skipKey
	had   bool
	whole bool
	keys  map[skipKey]struct{}
	bytes int
}

// begin starts journaling an Apply's changes.
func (s *skipped) begin() {
	s.journal = s.journal[:0]
	s.journaling = true
	s.droppedMark = s.dropped.Load()
}

// commit keeps them.
func (s *skipped) commit() {
	clear(s.journal)
	s.journal = s.journal[:0]
	s.journaling = false
}

// undo reverts them.
func (s *skipped) undo() {
	for i := len(s.journal) - 1; i >= 0; i-- {
		u := s.journal[i]
		switch {
		case u.whole:
			s.keys, s.bytes = u.keys, u.bytes
		case u.had:
			if _, ok := s.keys[u.k]; !ok {
				if s.keys == nil {
					s.keys = map[skipKey]struct{}{}
				}
				s.keys[u.k] = struct{}{}
				s.bytes += len(u.k.key) + skipOverhead
			}
		default:
			if _, ok := s.keys[u.k]; ok {
				delete(s.keys, u.k)
				s.bytes -= len(u.k.key) + skipOverhead
			}
		}
	}
	s.dropped.Store(s.droppedMark)
	s.commit()
}

// replaceAll swaps in a new set (FLUSHALL, SWAPDB), journaled.
func (s *skipped) replaceAll(keys map[skipKey]struct{}, bytes int) {
	if s.journaling {
		s.journal = append(s.journal, skipUndo{whole: true, keys: s.keys, bytes: s.bytes})
	}
	s.keys, s.bytes = keys, bytes
}

type moduleProbe struct {
	shard int
	id    uint64
}

// reset forgets every skipped key and count (a full sync: the
// destination starts empty).
func (s *skipped) reset() {
	s.mu.Lock()
	s.counts = nil
	s.mu.Unlock()
	s.keys, s.bytes = nil, 0
	s.untracked.Store(0)
	s.dropped.Store(0)
}

// snapshot copies the per-type counts for Stats.
func (s *skipped) snapshot() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.counts) == 0 {
		return nil
	}
	return maps.Clone(s.counts)
}

// skip leaves key out: counted, logged once per type, remembered.
func (s *skipped) skip(db int, key []byte, typ, reason string) {
	s.mu.Lock()
	if s.counts == nil {
		s.counts = map[string]int64{}
	}
	if _, ok := s.counts[typ]; !ok && len(s.counts) >= maxSkipTypes {
		typ = "other"
	}
	first := s.counts[typ] == 0
	s.counts[typ]++
	s.mu.Unlock()
	if first {
		s.a.opts.Logger.Warn("keys the destination cannot take are skipped (replica_of.unsupported_keys: skip)",
			"source", s.a.opts.Source, "type", typ, "sample_key", string(key), "db", db, "reason", reason)
	}
	s.remember(db, string(key))
}

func (s *skipped) remember(db int, key string) {
	k := skipKey{db, key}
	if _, ok := s.keys[k]; ok {
		return
	}
	if len(s.keys) >= s.a.opts.MaxSkippedKeys || s.bytes+len(key)+skipOverhead > maxSkippedBytes {
		s.untracked.Add(1)
		return
	}
	if s.keys == nil {
		s.keys = map[skipKey]struct{}{}
	}
	if s.journaling {
		s.journal = append(s.journal, skipUndo{k: k})
	}
	s.keys[k] = struct{}{}
	s.bytes += len(key) + skipOverhead
}

func (s *skipped) has(db int, key []byte) bool {
	if len(s.keys) == 0 {
		return false
	}
	_, ok := s.keys[skipKey{db, string(key)}]
	return ok
}

func (s *skipped) forget(db int, key []byte) {
	k := skipKey{db, string(key)}
	if _, ok := s.keys[k]; ok {
		if s.journaling {
			s.journal = append(s.journal, skipUndo{k: k, had: true})
		}
		delete(s.keys, k)
		s.bytes -= len(key) + skipOverhead
	}
}

// moduleKey decides about a module value for shard: nil to write it, an
// *UnsupportedKeyError to stop, errSkipped when it was skipped.
func (l *loader) moduleKey(k *rdb.Key, shard int) error {
	raw, err := k.Raw()
	if err != nil && !errors.Is(err, rdb.ErrRawTooLarge) {
		return err
	}
	typ := "module"
	id, ok := k.ModuleID()
	if ok {
		name, ver := rdb.ModuleName(id)
		typ = "module " + name + " (encver " + strconv.Itoa(ver) + ")"
	}
	var reason string
	switch {
	case !l.restore[shard]:
		reason = fmt.Sprintf("it cannot RESTORE this file's RDB version %d, and module values cannot be rebuilt with commands", l.version)
	case err != nil:
		reason = "the value is over the largest payload RESTOREd whole, and module values cannot be rebuilt with commands"
	case !ok:
		reason = "no module id"
	default:
		works, err := l.probeModule(shard, id, raw)
		if err != nil {
			return err
		}
		if works {
			return nil
		}
		reason = "RESTORE answers that it has no such module type loaded"
	}
	if !l.a.opts.SkipUnsupported {
		return &UnsupportedKeyError{DB: int(k.DB), Key: string(k.Key), Type: typ, Shard: shard, Reason: reason}
	}
	l.a.skips.skip(int(k.DB), k.Key, typ, reason)
	return errSkipped
}

// errSkipped marks a key left out (not an error).
var errSkipped = errors.New("apply: key skipped")

// probeModule asks shard, once per module type, whether it can RESTORE a
// value of it: a throwaway RESTORE of this value under the reserved
// prefix.
func (l *loader) probeModule(shard int, id uint64, raw []byte) (bool, error) {
	s := &l.a.skips
	pk := moduleProbe{shard, id}
	if works, ok := s.probed[pk]; ok {
		return works, nil
	}
	works, err := restoreProbe(l.ctx, l.d, shard, rdb.AppendDumpPayload(nil, rdb.TypeModule2, raw, uint16(l.version)))
	if err != nil {
		return false, err
	}
	if s.probed == nil {
		s.probed = map[moduleProbe]bool{}
	}
	s.probed[pk] = works
	return works, nil
}

// restoreProbe RESTOREs payload (a module value) under the probe key:
// "Bad data format" means the shard lacks the module type.
func restoreProbe(ctx context.Context, d *destination.Destination, shard int, payload []byte) (bool, error) {
	key := probeKey(d, shard)
	req := resp.AppendCommand(nil, []byte("RESTORE"), []byte(key), []byte("0"), payload, []byte("REPLACE"))
	reply, err := probeDo(ctx, d, shard, req)
	if err != nil {
		return false, fmt.Errorf("apply: shard %d (%s): %w", shard, d.Addr(shard), err)
	}
	if e := resp.ReplyError(reply); e != nil {
		if isBadFormat(e.Error()) {
			return false, nil
		}
		return false, d.Refused(shard, 0, req, e.Error())
	}
	_, err = d.Do(ctx, shard, 0, "DEL", key)
	return err == nil, err
}

func isBadFormat(reply string) bool {
	return reply == "ERR Bad data format" || reply == "Bad data format" ||
		len(reply) > 15 && reply[len(reply)-15:] == "Bad data format"
}

// streamSkip applies the skipped-key rules to one stream command (name
// lower-case) addressing database db: it returns the command to apply
// (args, or SET without NX/XX), or false to drop it.
func (s *streamState) streamSkip(name string, args [][]byte, db int) ([][]byte, bool) {
	sk := &s.a.skips
	cmd := s.a.opts.Table.Lookup(args)
	if cmd == nil {
		// Not a command the destination knows: a module's, for keys it
		// cannot hold.
		sk.dropped.Add(1)
		return nil, false
	}
	switch name {
	case "flushall":
		sk.replaceAll(nil, 0)
		return args, true
	case "flushdb":
		for k := range sk.keys {
			if k.db == db {
				sk.forget(k.db, []byte(k.key))
			}
		}
		return args, true
	case "swapdb":
		if len(args) == 3 {
			a, errA := strconv.Atoi(string(args[1]))
			b, errB := strconv.Atoi(string(args[2]))
			if errA == nil && errB == nil && a != b {
				moved := map[skipKey]struct{}{}
				for k := range sk.keys {
					switch k.db {
					case a:
						moved[skipKey{b, k.key}] = struct{}{}
					case b:
						moved[skipKey{a, k.key}] = struct{}{}
					default:
						moved[k] = struct{}{}
					}
				}
				sk.replaceAll(moved, sk.bytes)
			}
		}
		return args, true
	}
	if len(sk.keys) == 0 {
		return args, true
	}
	keys, err := cmd.Keys(args, s.keys[:0])
	s.keys = keys[:0]
	if err != nil {
		return args, true // target reports it
	}
	hit := false
	for _, k := range keys {
		if sk.has(db, args[k]) {
			hit = true
			break
		}
	}
	if !hit {
		return args, true
	}
	switch name {
	case "del", "unlink":
		for _, k := range keys {
			sk.forget(db, args[k])
		}
		return args, true
	case "restore":
		sk.forget(db, args[1])
		return args, true
	case "set":
		if len(args) < 3 {
			return args, true // the shard's arity error stops sync, as without skipping
		}
		sk.forget(db, args[1])
		out := args[:3:3]
		for _, a := range args[3:] {
			if equalFoldASCII(a, "nx") || equalFoldASCII(a, "xx") {
				continue
			}
			out = append(out, a)
		}
		return out, true
	}
	switch name {
	case "rename", "renamenx", "copy", "move":
		if len(args) >= 3 && !sk.has(db, args[1]) {
			// Only the target is a skipped key: the source overwrote it.
			sk.forget(db, args[2])
			return args, true
		}
	}
	sk.dropped.Add(1)
	if len(args) >= 3 && sk.has(db, args[1]) {
		switch name {
		case "rename", "renamenx":
			sk.forget(db, args[1])
			sk.remember(db, string(args[2]))
		case "move":
			if to, err := strconv.Atoi(string(args[2])); err == nil {
				sk.forget(db, args[1])
				sk.remember(to, string(args[1]))
			}
		case "copy":
			to := db
			for i := 3; i+1 < len(args); i++ {
				if equalFoldASCII(args[i], "db") {
					if n, err := strconv.Atoi(string(args[i+1])); err == nil {
						to = n
					}
				}
			}
			sk.remember(to, string(args[2]))
		}
	}
	return nil, false
}

func equalFoldASCII(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
