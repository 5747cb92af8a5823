package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/replicaof/replicaof/admin"
)

// newSourceURL and newRotatePassword: this deployment's proxy as a source
// of another deployment (chaining), through the internal admin password.
func newSourceURL() *cobra.Command {
	var af adminFlags
	var host string
	c := &cobra.Command{
		Use:   "source-url [--host H]",
		Short: "Print the URL another replicaof deployment adds as a source to replicate from this one",
		Long: `Prints redis://admin:<password>@host:port (rediss:// when the proxy has
TLS): the proxy's address with the internal admin password, which lets
another replicaof deployment replicate this one through its proxy. On that
deployment: replicaof sources add "name: <url>".

The host is proxy.listen's, or this machine's host name when the proxy
listens on every address; --host replaces it (keeping the port unless H
has one) for replicas that reach the proxy by another name or address.
With TLS, the proxy's certificate must be valid for that name.`,
		Args: positional(cobra.NoArgs),
		RunE: func(c *cobra.Command, args []string) error {
			return printSourceURL(c, &af, host, "GET", "/v1/source-url")
		},
	}
	af.register(c)
	c.Flags().StringVar(&host, "host", "", "host name or address (or host:port) to put in the URL instead of the proxy's")
	return c
}

// rotatedNote follows the new URL of rotate-password (on stderr, so that
// `url=$(replicaof rotate-password)` captures the URL alone).
const rotatedNote = "Replication links that used the old password were dropped; they will stop with an authentication error until their source URL is updated."

func newRotatePassword() *cobra.Command {
	var af adminFlags
	var host string
	c := &cobra.Command{
		Use:   "rotate-password [--host H]",
		Short: "Replace the internal admin password and print the new source URL",
		Long: `Replaces the internal admin password (state_dir/admin-password) with a
new random one and prints the new source URL, as source-url does. Every
connection that authenticated with the old password, replication links of
other deployments included, is closed at once; those deployments stop
with an authentication error until their source for this one is updated
with the new URL (replicaof sources set/add there).`,
		Args: positional(cobra.NoArgs),
		RunE: func(c *cobra.Command, args []string) error {
			if err := printSourceURL(c, &af, host, "POST", "/v1/admin-password/rotate"); err != nil {
				return err
			}
			fmt.Fprintln(c.ErrOrStderr(), rotatedNote)
			return nil
		},
	}
	af.register(c)
	c.Flags().StringVar(&host, "host", "", "host name or address (or host:port) to put in the URL instead of the proxy's")
	return c
}

// hostFlag is a parsed --host: a host, and a port when one was given.
type hostFlag struct {
	host, port string
}

// parseHostFlag checks --host: "H", "H:PORT", "[v6]", "[v6]:PORT" or a
// bare IPv6 address. set says whether the flag was given at all (an empty
// one is an error).
func parseHostFlag(s string, set bool) (hostFlag, error) {
	if !set {
		return hostFlag{}, nil
	}
	var h hostFlag
	if host, port, err := net.SplitHostPort(s); err == nil {
		h.host, h.port = host, port
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port != strconv.Itoa(n) {
			return hostFlag{}, fmt.Errorf("--host %q: port %q is not a number from 1 to 65535", s, port)
		}
	} else {
		h.host = s
		if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
			h.host = s[1 : len(s)-1]
		}
	}
	switch {
	case h.host == "":
		return hostFlag{}, errors.New("--host: empty host")
	case (strings.Contains(h.host, ":") || strings.HasPrefix(s, "[")) && (net.ParseIP(h.host) == nil || !strings.Contains(h.host, ":")):
		return hostFlag{}, fmt.Errorf("--host %q: not a host name, an IP address or host:port", s)
	case net.ParseIP(h.host) == nil && strings.ContainsFunc(h.host, notHostNameRune):
		return hostFlag{}, fmt.Errorf("--host %q: not a host name or an IP address", s)
	}
	return h, nil
}

// notHostNameRune reports a rune host names do not have: they take ASCII
// letters, digits, '-', '.' and '_' (as in container names).
func notHostNameRune(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_')
}

// apply puts h's host (and port, when it has one) into the source URL raw;
// the zero hostFlag leaves raw as it is.
func (h hostFlag) apply(raw string) (string, error) {
	if h.host == "" {
		return raw, nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("the server answered a bad source URL (%v)", err)
	}
	port := h.port
	if port == "" {
		port = u.Port()
	}
	u.Host = net.JoinHostPort(h.host, port)
	return u.String(), nil
}

// printSourceURL asks the admin API for a source URL (method path: read it
// or rotate the password) and prints it with --host applied.
func printSourceURL(c *cobra.Command, af *adminFlags, host, method, path string) error {
	h, err := parseHostFlag(host, c.Flags().Changed("host"))
	if err != nil {
		return usageError{err}
	}
	ac, err := af.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context(), 35*time.Second)
	defer cancel()
	var b admin.SourceURLBody
	if err := ac.do(ctx, method, path, nil, &b); err != nil {
		return err
	}
	u, err := h.apply(b.URL)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.OutOrStdout(), u)
	return nil
}
