package resp

import (
	"errors"
	"testing"
)

func TestErrorCodeAndAuth(t *testing.T) {
	cases := []struct {
		e    Error
		code string
		auth bool
	}{
		{"ERR unknown command", "ERR", false},
		{"LOADING Redis is loading the dataset in memory", "LOADING", false},
		{"OOM", "OOM", false},
		{"", "", false},
		{"NOAUTH Authentication required.", "NOAUTH", true},
		{"WRONGPASS invalid username-password pair or user is disabled.", "WRONGPASS", true},
		{"NOPERM User repl has no permissions to run the 'psync' command", "NOPERM", true},
		{"ERR invalid password", "ERR", true},
		{"ERR AUTH <password> called without any password configured for the default user.", "ERR", true},
		{"ERR operation not permitted", "ERR", true},
		{"NOAUTHX not a code", "NOAUTHX", false},
		{"ERR wrong number of arguments for 'auth' command", "ERR", false},
	}
	for _, c := range cases {
		if got := c.e.Code(); got != c.code {
			t.Errorf("%q: Code() = %q, want %q", c.e, got, c.code)
		}
		if got := c.e.Auth(); got != c.auth {
			t.Errorf("%q: Auth() = %v, want %v", c.e, got, c.auth)
		}
	}
}

func TestReplyError(t *testing.T) {
	cases := []struct {
		reply string
		want  error
	}{
		{"-ERR x\r\n", Error("ERR x")},
		{"-NOAUTH Authentication required.\r\n", Error("NOAUTH Authentication required.")},
		{"!9\r\nSYNTAX xy\r\n", Error("SYNTAX xy")},
		{"!9\r\nSYN\r\n", Error("ERR " + ErrIncomplete.Error())},
		{"+OK\r\n", nil},
		{":1\r\n", nil},
		{"", nil},
	}
	for _, c := range cases {
		got := ReplyError([]byte(c.reply))
		if got != c.want {
			t.Errorf("ReplyError(%q) = %#v, want %#v", c.reply, got, c.want)
		}
		var e Error
		if c.want != nil && !errors.As(got, &e) {
			t.Errorf("ReplyError(%q) is no Error", c.reply)
		}
	}
}
