package main

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/replicaof/replicaof/admin"
	"github.com/replicaof/replicaof/syncer"
)

func newControl(use, short, path string) *cobra.Command {
	var af adminFlags
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  positional(cobra.NoArgs),
		RunE: func(c *cobra.Command, args []string) error {
			ac, err := af.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context(), 35*time.Second)
			defer cancel()
			var st syncer.Status
			if err := ac.do(ctx, "POST", path, nil, &st); err != nil {
				return err
			}
			renderStatus(c.OutOrStdout(), st, time.Now())
			return nil
		},
	}
	af.register(c)
	return c
}

func newSources() *cobra.Command {
	root := &cobra.Command{
		Use:   "sources",
		Short: "List or change the sources (any change restarts sync of all sources)",
	}
	var af adminFlags
	list := &cobra.Command{
		Use:   "list",
		Short: "List the sources (passwords redacted)",
		Args:  positional(cobra.NoArgs),
		RunE: func(c *cobra.Command, args []string) error {
			ac, err := af.client()
			if err != nil {
				return err
			}
			srcs, err := ac.sources(c.Context())
			if err != nil {
				return err
			}
			for _, s := range srcs {
				fmt.Fprintln(c.OutOrStdout(), s)
			}
			return nil
		},
	}
	af.register(list)
	change := func(use, short string, args cobra.PositionalArgs, send func(ctx context.Context, ac *adminClient, args []string, st *syncer.Status) error) *cobra.Command {
		var af adminFlags
		c := &cobra.Command{
			Use: use, Short: short, Args: positional(args),
			RunE: func(c *cobra.Command, args []string) error {
				ac, err := af.client()
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(c.Context(), 35*time.Second)
				defer cancel()
				var st syncer.Status
				if err := send(ctx, ac, args, &st); err != nil {
					return err
				}
				renderStatus(c.OutOrStdout(), st, time.Now())
				return nil
			},
		}
		af.register(c)
		return c
	}
	checked := func(args []string) error {
		if _, err := admin.ParseSources(args); err != nil {
			return usageError{err}
		}
		return nil
	}
	set := change("set SOURCE...", "Replace the sources with the given ones", cobra.ArbitraryArgs,
		func(ctx context.Context, ac *adminClient, args []string, st *syncer.Status) error {
			if err := checked(args); err != nil {
				return err
			}
			return ac.do(ctx, "PUT", "/v1/sources", admin.SourcesBody{Sources: args}, st)
		})
	add := change("add SOURCE...", "Add sources", cobra.MinimumNArgs(1),
		func(ctx context.Context, ac *adminClient, args []string, st *syncer.Status) error {
			if err := checked(args); err != nil {
				return err
			}
			return ac.do(ctx, "POST", "/v1/sources", admin.SourcesBody{Sources: args}, st)
		})
	remove := change("remove NAME", "Remove a source by name", cobra.ExactArgs(1),
		func(ctx context.Context, ac *adminClient, args []string, st *syncer.Status) error {
			return ac.do(ctx, "DELETE", "/v1/sources/"+url.PathEscape(args[0]), nil, st)
		})
	root.AddCommand(list, set, add, remove)
	return root
}
