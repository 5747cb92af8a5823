package proxy

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// INFO is merged the way a client expects from one server: the server
// section is shard 0's with the proxy's own process fields; memory,
// persistence and stats add the shards up (counters and sizes summed,
// total_system_memory the largest (shards may share a machine),
// *_human fields recomputed from the sums, ratios and percentages
// averaged, flags and "in progress" fields the largest, the last save
// time the oldest, a status the first that is not "ok", other text shard
// 0's); cpu is the proxy process's plus the shards'. Clients, replication
// and keyspace are the proxy's own, as are the connection and command
// counts of stats.

// infoSection is one "# Name" section of an INFO reply, its fields in order.
type infoSection struct {
	name   string
	fields []infoField
}

type infoField struct{ key, val string }

// parseInfo splits an INFO reply's text into sections.
func parseInfo(text []byte) []infoSection {
	var out []infoSection
	for _, line := range bytes.Split(text, []byte("\n")) {
		line = bytes.TrimRight(line, "\r")
		switch {
		case len(line) == 0:
		case line[0] == '#':
			out = append(out, infoSection{name: strings.ToLower(strings.TrimSpace(string(line[1:])))})
		case len(out) > 0:
			k, v, ok := bytes.Cut(line, []byte(":"))
			if ok {
				s := &out[len(out)-1]
				s.fields = append(s.fields, infoField{string(k), string(v)})
			}
		}
	}
	return out
}

func (s infoSection) get(key string) (string, bool) {
	for _, f := range s.fields {
		if f.key == key {
			return f.val, true
		}
	}
	return "", false
}

func sectionOf(secs []infoSection, name string) infoSection {
	for _, s := range secs {
		if s.name == name {
			return s
		}
	}
	return infoSection{name: name}
}

// mergeSection merges one section over the shards, field by field, in
// shard 0's order.
func mergeSection(shards [][]infoSection, name string) infoSection {
	secs := make([]infoSection, len(shards))
	for i, sh := range shards {
		secs[i] = sectionOf(sh, name)
	}
	out := infoSection{name: name}
	for _, f := range secs[0].fields {
		if strings.HasSuffix(f.key, "_human") {
			out.fields = append(out.fields, f) // recomputed below
			continue
		}
		vals := make([]string, 0, len(secs))
		for _, s := range secs {
			if v, ok := s.get(f.key); ok {
				vals = append(vals, v)
			}
		}
		out.fields = append(out.fields, infoField{f.key, mergeValue(f.key, vals)})
	}
	for i, f := range out.fields {
		base, ok := strings.CutSuffix(f.key, "_human")
		if !ok {
			continue
		}
		if v, ok := out.get(base); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				out.fields[i].val = humanBytes(n)
			}
		}
	}
	return out
}

// mergeValue merges one field's values over the shards.
func mergeValue(key string, vals []string) string {
	if len(vals) > 0 && strings.HasSuffix(vals[0], "%") { // used_memory_peak_perc:99.8%
		trimmed := make([]string, len(vals))
		for i, v := range vals {
			trimmed[i] = strings.TrimSuffix(v, "%")
		}
		return mergeValue(key+"_perc", trimmed) + "%"
	}
	nums := make([]float64, 0, len(vals))
	ints := true
	for _, v := range vals {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			nums = nil
			break
		}
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			ints = false
		}
		nums = append(nums, f)
	}
	if nums == nil { // text
		if strings.HasSuffix(key, "_status") {
			for _, v := range vals {
				if v != "ok" {
					return v
				}
			}
		}
		return vals[0]
	}
	var r float64
	switch {
	case strings.Contains(key, "ratio") || strings.Contains(key, "_perc") || strings.HasSuffix(key, "_per_call"):
		for _, n := range nums {
			r += n
		}
		r /= float64(len(nums))
		return strconv.FormatFloat(r, 'f', 2, 64)
	case key == "rdb_last_save_time" || key == "lazyfreed_objects_time":
		r = nums[0]
		for _, n := range nums {
			r = min(r, n)
		}
	case key == "loading" || key == "total_system_memory" || key == "async_loading" || strings.HasSuffix(key, "_in_progress") ||
		strings.HasPrefix(key, "latest_") || strings.HasSuffix(key, "_enabled") ||
		strings.HasPrefix(key, "current_") || strings.HasSuffix(key, "_sec") && strings.Contains(key, "_last_"):
		r = nums[0]
		for _, n := range nums {
			r = max(r, n)
		}
	default:
		for _, n := range nums {
			r += n
		}
	}
	if ints {
		return strconv.FormatInt(int64(r), 10)
	}
	return strconv.FormatFloat(r, 'f', 6, 64)
}

// humanBytes formats a byte count the way Redis' INFO does (bytesToHuman).
func humanBytes(n int64) string {
	f := float64(n)
	switch {
	case n < 1024:
		return fmt.Sprintf("%dB", n)
	case n < 1<<20:
		return fmt.Sprintf("%.2fK", f/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.2fM", f/(1<<20))
	case n < 1<<40:
		return fmt.Sprintf("%.2fG", f/(1<<30))
	case n < 1<<50:
		return fmt.Sprintf("%.2fT", f/(1<<40))
	default:
		return fmt.Sprintf("%.2fP", f/(1<<50))
	}
}

// setField replaces key's value, or appends it.
func (s *infoSection) setField(key, val string) {
	for i, f := range s.fields {
		if f.key == key {
			s.fields[i].val = val
			return
		}
	}
	s.fields = append(s.fields, infoField{key, val})
}

func (s infoSection) write(b *strings.Builder, title string) {
	b.WriteString("# " + title + "\r\n")
	for _, f := range s.fields {
		b.WriteString(f.key + ":" + f.val + "\r\n")
	}
	b.WriteString("\r\n")
}
