package main

import (
	"errors"
	"math"
	"strconv"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"1GiB", 1 << 30, false},
		{"64MiB", 64 << 20, false},
		{" 512 kib ", 512 << 10, false},
		{"1GB", 1e9, false},
		{"2m", 2 << 20, false},
		{"1000", 1000, false},
		{"7b", 7, false},
		{"0", 0, false},
		{"", 0, true},
		{"GiB", 0, true},
		{"-1MiB", 0, true},
		{"1.5GiB", 0, true},
		{"1TiB", 0, true},
		{"9223372036854775807GiB", 0, true},
		{"8589934592GiB", 0, true}, // 2^33 GiB overflows
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseSize(tc.in)
			if (err != nil) != tc.err || got != tc.want {
				t.Fatalf("parseSize(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
}

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"200mbit", 200e6, false},
		{"1Gbit", 1e9, false},
		{"500kbit", 500e3, false},
		{"64bit", 64, false},
		{"0", 0, false},
		{"100", 100, false},
		{"100mb", 0, true},
		{"fast", 0, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseRate(tc.in)
			if (err != nil) != tc.err || got != tc.want {
				t.Fatalf("parseRate(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
	if _, err := parseRate("10furlongs"); !errors.Is(err, errUnit) {
		t.Errorf("parseRate(10furlongs): %v, want errUnit", err)
	}
}

func TestParseLevels(t *testing.T) {
	got, err := parseList("0, 1,6,9", parseLevel)
	if err != nil || len(got) != 4 || got[0] != 0 || got[1] != 1 || got[2] != 6 || got[3] != 9 {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, bad := range []string{"10", "-1", "1,,2", "x", ""} {
		if _, err := parseList(bad, parseLevel); err == nil {
			t.Errorf("parseList(%q) accepted", bad)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{formatRate(0), "loopback"},
		{formatRate(200e6), "200 Mbit/s"},
		{formatRate(1e9), "1 Gbit/s"},
		{formatRate(1500e3), "1500 kbit/s"},
		{formatRate(1234), "1234 bit/s"},
		{formatBytes(0), "0 B"},
		{formatBytes(1023), "1023 B"},
		{formatBytes(1 << 20), "1.00 MiB"},
		{formatBytes(64 << 20), "64.0 MiB"},
		{formatBytes(1000 << 20), "1000 MiB"},
		{formatBytes(1<<30 + 1<<28), "1.25 GiB"},
		{formatBytes(math.MaxInt64), "8388608 TiB"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// FuzzParseSize: what parses is non-negative and parses the same again
// written in bytes.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1GiB", "64MiB", "512k", "1GB", "1000", "", "-1", "9223372036854775807", "8589934591GiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("parseSize(%q) = %d", s, n)
		}
		if m, err := parseSize(strconv.FormatInt(n, 10) + "b"); err != nil || m != n {
			t.Fatalf("parseSize(%q) = %d, but %db gives %d, %v", s, n, n, m, err)
		}
	})
}

// FuzzParseRate: what parses is non-negative, formats, and parses back
// from its bit/s form.
func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"200mbit", "1gbit", "0", "100", "5kbit", "mbit", "9223372036854775807bit"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseRate(s)
		if err != nil {
			return
		}
		if n < 0 || formatRate(n) == "" {
			t.Fatalf("parseRate(%q) = %d", s, n)
		}
		if m, err := parseRate(strconv.FormatInt(n, 10) + "bit"); err != nil || m != n {
			t.Fatalf("parseRate(%q) = %d, but %dbit gives %d, %v", s, n, n, m, err)
		}
	})
}

// FuzzParseLevels: every level parsed is 0-9.
func FuzzParseLevels(f *testing.F) {
	for _, s := range []string{"0,1,6", "9", "10", "1,,2", " 3 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		levels, err := parseList(s, parseLevel)
		if err != nil {
			return
		}
		for _, l := range levels {
			if l < 0 || l > 9 {
				t.Fatalf("parseList(%q) gave level %d", s, l)
			}
		}
	})
}
