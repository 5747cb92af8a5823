package verify

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Reason says how a key differs.
type Reason string

// Reasons, in the order the summary lists them.
const (
	Missing   Reason = "missing"   // on a source, not on the destination
	Extra     Reason = "extra"     // on the destination, on no source
	Type      Reason = "type"      // types differ
	Value     Reason = "value"     // values differ (or could not be read consistently)
	TTL       Reason = "ttl"       // one side has an expiry, the other none
	Duplicate Reason = "duplicate" // on two or more sources
	Misplaced Reason = "misplaced" // on a shard its slot does not map to
)

// destinationSide reports whether the reason is found by scanning the
// destination rather than a source.
func (r Reason) destinationSide() bool { return r == Extra || r == Duplicate || r == Misplaced }

// Mismatch is one key that still differed when it was read again.
type Mismatch struct {
	DB     int    `json:"db"`
	Key    string `json:"key"`
	Reason Reason `json:"reason"`
	// Source names the source the key was read from ("" for extra and
	// misplaced keys).
	Source string `json:"source,omitempty"`
	// Shard is the destination shard the key belongs to (for misplaced
	// keys: the shard it was found on).
	Shard  int    `json:"shard"`
	Detail string `json:"detail,omitempty"`

	src int // index of Source, for the re-check
}

// Report is the result of a run. Compared = Equal + Missing + Type +
// Value + TTL; Extra, Duplicate and Misplaced come from scanning the
// destination.
type Report struct {
	Sources int   `json:"sources"`
	Shards  int   `json:"shards"`
	DBs     []int `json:"dbs"`
	// Compared counts source keys compared with the destination (a key on
	// two sources counts twice).
	Compared int64 `json:"compared"`
	Equal    int64 `json:"equal"`
	Missing  int64 `json:"missing"`
	Extra    int64 `json:"extra"`
	Type     int64 `json:"type"`
	Value    int64 `json:"value"`
	TTL      int64 `json:"ttl"`
	// Duplicate counts destination keys held by more than one source.
	Duplicate int64 `json:"duplicate"`
	Misplaced int64 `json:"misplaced"`
	// Vanished counts source keys that expired or were deleted between SCAN
	// and the read; they are not compared.
	Vanished int64 `json:"vanished"`
	// DestinationKeys counts keys scanned on the destination shards.
	DestinationKeys int64 `json:"destination_keys"`
	// Rechecked counts suspects read a second time; those that then
	// matched count as Equal.
	Rechecked int64 `json:"rechecked"`
	// Mismatches are the first Config.MaxReported confirmed mismatches.
	Mismatches []Mismatch    `json:"mismatches"`
	Elapsed    time.Duration `json:"-"`
}

// Different is the number of confirmed differences of every kind.
func (r *Report) Different() int64 {
	return r.Missing + r.Extra + r.Type + r.Value + r.TTL + r.Duplicate + r.Misplaced
}

// OK reports whether no difference was found.
func (r *Report) OK() bool { return r.Different() == 0 }

// MarshalJSON adds "equal_overall", "differences" and "elapsed_ms".
func (r *Report) MarshalJSON() ([]byte, error) {
	type plain Report
	p := (*plain)(r)
	if p.Mismatches == nil {
		p.Mismatches = []Mismatch{}
	}
	if p.DBs == nil {
		p.DBs = []int{}
	}
	return json.Marshal(struct {
		OK          bool  `json:"ok"`
		Differences int64 `json:"differences"`
		*plain
		ElapsedMS int64 `json:"elapsed_ms"`
	}{r.OK(), r.Different(), p, r.Elapsed.Milliseconds()})
}

// WriteText writes the human summary.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	dbs := make([]string, len(r.DBs))
	for i, db := range r.DBs {
		dbs[i] = strconv.Itoa(db)
	}
	if len(dbs) == 0 {
		dbs = []string{"none with keys"}
	}
	fmt.Fprintf(&b, "compared %d source(s) with %d destination shard(s), databases %s, in %s\n",
		r.Sources, r.Shards, strings.Join(dbs, ","), r.Elapsed.Round(time.Millisecond))
	row := func(label string, n int64) { fmt.Fprintf(&b, "  %-24s %d\n", label, n) }
	row("keys compared:", r.Compared)
	row("equal:", r.Equal)
	row("missing on destination:", r.Missing)
	row("extra on destination:", r.Extra)
	fmt.Fprintf(&b, "  %-24s %d (type %d, value %d, ttl %d)\n", "different:", r.Type+r.Value+r.TTL, r.Type, r.Value, r.TTL)
	if r.Duplicate > 0 {
		row("on several sources:", r.Duplicate)
	}
	if r.Misplaced > 0 {
		row("on the wrong shard:", r.Misplaced)
	}
	if r.Vanished > 0 {
		row("vanished during scan:", r.Vanished)
	}
	row("destination keys:", r.DestinationKeys)
	if len(r.Mismatches) > 0 {
		fmt.Fprintf(&b, "first %d mismatch(es):\n", len(r.Mismatches))
		for _, m := range r.Mismatches {
			fmt.Fprintf(&b, "  db %d %q: %s", m.DB, m.Key, m.Reason)
			if m.Detail != "" {
				fmt.Fprintf(&b, " (%s)", m.Detail)
			}
			if m.Source != "" {
				fmt.Fprintf(&b, " [source %s, shard %d]", m.Source, m.Shard)
			} else {
				fmt.Fprintf(&b, " [shard %d]", m.Shard)
			}
			b.WriteByte('\n')
		}
	}
	if r.OK() {
		b.WriteString("result: EQUAL\n")
	} else {
		fmt.Fprintf(&b, "result: DIFFERENT (%d difference(s))\n", r.Different())
	}
	_, err := io.WriteString(w, b.String())
	return err
}
