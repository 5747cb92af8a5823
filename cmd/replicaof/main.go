// Command replicaof makes a sharded set of Redis servers an exact,
// continuously updated replica of up to 32 source databases, and serves it
// to applications through a RESP proxy. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(runWith(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes: 0 ok, 1 runtime error, 2 usage error.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// usageError marks an error in how the command was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func run(args []string) int { return runWith(context.Background(), args, os.Stdout, os.Stderr) }

// runWith runs the CLI with args, writing to stdout and stderr, and returns
// the exit code.
func runWith(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "replicaof:", err)
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitError
}
