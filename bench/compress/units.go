package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Size suffixes -size accepts (case-insensitive), largest first so that
// "gib" is not read as "b".
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"gib", 1 << 30}, {"mib", 1 << 20}, {"kib", 1 << 10},
	{"gb", 1e9}, {"mb", 1e6}, {"kb", 1e3},
	{"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10},
	{"b", 1},
}

// Rate suffixes -limit accepts: bits per second.
var rateUnits = []struct {
	suffix string
	mult   int64
}{
	{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1},
}

var errUnit = errors.New("unknown unit")

// parseSize reads a byte count: "1GiB", "64MiB", "512k", "1GB", "1000".
func parseSize(s string) (int64, error) {
	return parseUnits(s, "size", sizeUnits[:])
}

// parseRate reads a link rate in bits per second: "200mbit", "1gbit",
// "0" (no limit).
func parseRate(s string) (int64, error) {
	return parseUnits(s, "rate", rateUnits[:])
}

func parseUnits(s, what string, units []struct {
	suffix string
	mult   int64
}) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range units {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	if t == "" {
		return 0, fmt.Errorf("%s %q: no number", what, s)
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		if t[len(t)-1] < '0' || t[len(t)-1] > '9' {
			err = errUnit
		}
		return 0, fmt.Errorf("%s %q: %w", what, s, err)
	}
	if n < 0 {
		return 0, fmt.Errorf("%s %q: negative", what, s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%s %q: too large", what, s)
	}
	return n * mult, nil
}

// parseList splits a comma-separated flag and parses every item.
func parseList[T any](s string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, item := range strings.Split(s, ",") {
		v, err := parse(item)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// parseLevel reads a gzip level: 0 (off) to 9.
func parseLevel(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 || n > 9 {
		return 0, fmt.Errorf("gzip level %q: want 0 (off) to 9", s)
	}
	return n, nil
}

// formatRate is the link column: "loopback" for no limit, else the rate
// in the largest unit that divides it.
func formatRate(bits int64) string {
	if bits == 0 {
		return "loopback"
	}
	for _, u := range []struct {
		name string
		mult int64
	}{{"Gbit/s", 1e9}, {"Mbit/s", 1e6}, {"kbit/s", 1e3}} {
		if bits%u.mult == 0 {
			return strconv.FormatInt(bits/u.mult, 10) + " " + u.name
		}
	}
	return strconv.FormatInt(bits, 10) + " bit/s"
}

// formatBytes prints n in binary units with three significant digits.
func formatBytes(n int64) string {
	f := float64(n)
	for _, u := range []string{"B", "KiB", "MiB", "GiB", "TiB"} {
		switch {
		case u == "B" && f < 1024:
			return fmt.Sprintf("%d B", n)
		case f < 10:
			return fmt.Sprintf("%.2f %s", f, u)
		case f < 100:
			return fmt.Sprintf("%.1f %s", f, u)
		case f < 1024 || u == "TiB":
			return fmt.Sprintf("%.0f %s", f, u)
		}
		f /= 1024
	}
	return "" // not reached
}
