package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/replicaof/replicaof/tlsutil"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = ""

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "replicaof",
		Short:         "Replicate Redis databases into a sharded destination and serve it",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newServe(), newDemo(), newStatus(),
		newControl("stop", "Stop sync of all sources (the destination keeps its data)", "/v1/sync/stop"),
		newControl("restart", "Flush the destination and fully sync all sources again", "/v1/sync/restart"),
		newSources(), newVersion(), newCerts())
	root.AddCommand(newVerify(), newSourceURL(), newRotatePassword())
	return root
}

// positional wraps cobra's argument checks so their errors exit with 2.
func positional(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := check(c, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func versionString() string {
	v := version
	if v == "" {
		v = "devel"
		if bi, ok := debug.ReadBuildInfo(); ok {
			if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
				v = bi.Main.Version
			}
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 {
					v += "+" + s.Value[:12]
				}
			}
		}
	}
	return v
}

func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  positional(cobra.NoArgs),
		RunE: func(c *cobra.Command, args []string) error {
			bi, _ := debug.ReadBuildInfo()
			goVersion := "unknown"
			if bi != nil {
				goVersion = bi.GoVersion
			}
			fmt.Fprintf(c.OutOrStdout(), "replicaof %s (%s)\n", versionString(), goVersion)
			return nil
		},
	}
}

func newCerts() *cobra.Command {
	var out string
	var hosts []string
	c := &cobra.Command{
		Use:   "certs --out DIR",
		Short: "Make a demo CA, a syncer certificate and a proxy certificate",
		Long: `Writes ca.pem/ca.key, syncer.pem/syncer.key (the client certificate the
syncer presents to a TLS source) and proxy.pem/proxy.key (the certificate the
proxy presents) into DIR. Two deployments trust each other by exchanging the
syncer and proxy certificates. Existing files are never overwritten.`,
		Args: positional(cobra.NoArgs),
		RunE: func(c *cobra.Command, args []string) error {
			if out == "" {
				return usageError{fmt.Errorf("certs: --out DIR is required")}
			}
			f, err := tlsutil.GenerateDemo(out, hosts)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "CA:                 %s\nsyncer certificate: %s (key %s)\nproxy certificate:  %s (key %s)\n",
				f.CA, f.SyncerCert, f.SyncerKey, f.ProxyCert, f.ProxyKey)
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "directory to write the files into")
	c.Flags().StringSliceVar(&hosts, "host", nil, "extra host names or IPs for the proxy certificate (localhost, 127.0.0.1 and ::1 are always included)")
	return c
}
