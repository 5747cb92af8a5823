package config

import "log/slog"

// Secret is a string that must not be printed: passwords and tokens.
// fmt verbs (%v, %s, %+v, %#v on structs holding it), slog and
// encoding.TextMarshaler users (JSON, YAML) all see "***" (or "" when
// empty). Convert explicitly, string(s), where the real value is needed.
type Secret string

const redactedSecret = "***"

func (s Secret) redacted() string {
	if s == "" {
		return ""
	}
	return redactedSecret
}

// String returns "***", or "" for an empty secret.
func (s Secret) String() string { return s.redacted() }

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return `"` + s.redacted() + `"` }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.redacted()) }

// MarshalText implements encoding.TextMarshaler with the redacted form, so
// a Secret never leaks through JSON (the admin API) or a YAML dump.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.redacted()), nil }
