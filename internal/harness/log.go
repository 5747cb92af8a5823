package harness

import (
	"io"
	"log/slog"
	"strings"
	"testing"
)

// LogWriter returns a writer that hands each write, less its final
// newline, to t.Log: the lines show when the test fails or runs with -v.
// Nothing may write to it once the test has ended.
func LogWriter(t testing.TB) io.Writer { return logWriter{t} }

type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Logger returns a text slog.Logger that writes records from level up to
// LogWriter(t).
func Logger(t testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(LogWriter(t), &slog.HandlerOptions{Level: level}))
}
