package proxy

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/replicaof/replicaof/router"
)

var update = flag.Bool("update", false, "rewrite docs/proxy-commands.md from the command table")

const commandsDoc = "../docs/proxy-commands.md"

// TestCommandDocs keeps docs/proxy-commands.md generated from the proxy's
// command table: run with -update after changing proxy/commands.go.
func TestCommandDocs(t *testing.T) {
	want := commandDocs(router.Builtin)
	if *update {
		if err := os.WriteFile(commandsDoc, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(commandsDoc)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s is out of date: go test ./proxy -run TestCommandDocs -update", commandsDoc)
	}
	// Every command of the table has its row.
	for _, cmd := range router.Builtin.Commands() {
		if len(cmd.Subcommands) > 0 {
			continue
		}
		if !strings.Contains(want, "\n| "+strings.ToUpper(cmd.Name)+" |") {
			t.Errorf("no row for %s", cmd.Name)
		}
	}
}

// TestSpecialsAreCommands: every entry of the table names a real command.
func TestSpecialsAreCommands(t *testing.T) {
	for name := range specials {
		if !inTable(router.Builtin, name) && !newerThanTable[name] {
			t.Errorf("%s: no such command", name)
		}
	}
}

// newerThanTable are subcommands the proxy answers that Redis 7.0 (the
// table's version) does not have.
var newerThanTable = map[string]bool{"client|setinfo": true, "client|no-touch": true, "waitaof": true,
	"httl": true, "hpttl": true, "hexpiretime": true, "hpexpiretime": true} // hash-field TTL reads: Redis 7.4
