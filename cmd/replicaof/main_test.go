package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		code int
	}{
		{[]string{"version"}, exitOK},
		{[]string{"version", "extra"}, exitUsage},
		{[]string{"--no-such-flag"}, exitUsage},
		{[]string{"certs"}, exitUsage},
		{[]string{"certs", "--out", dir}, exitOK},
		{[]string{"certs", "--out", dir}, exitError}, // never overwrites
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			if got := run(c.args); got != c.code {
				t.Fatalf("exit %d, want %d", got, c.code)
			}
		})
	}
	for _, f := range []string{"ca.pem", "syncer.pem", "syncer.key", "proxy.pem", "proxy.key"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("certs did not write %s: %v", f, err)
		}
	}
}
