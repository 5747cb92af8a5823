package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/replicaof/replicaof/admin"
	"github.com/replicaof/replicaof/syncer"
)

func newStatus() *cobra.Command {
	var af adminFlags
	var watch, asJSON bool
	var interval time.Duration
	c := &cobra.Command{
		Use:   "status",
		Short: "Show every source's sync status",
		Args:  positional(cobra.NoArgs),
		RunE: func(c *cobra.Command, args []string) error {
			ac, err := af.client()
			if err != nil {
				return err
			}
			out := c.OutOrStdout()
			if !watch {
				ctx, cancel := context.WithTimeout(c.Context(), 30*time.Second)
				defer cancel()
				st, err := ac.status(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					enc := json.NewEncoder(out)
					enc.SetIndent("", "  ")
					return enc.Encode(st)
				}
				renderStatus(out, st.Status, time.Now())
				renderNodes(out, st.DestinationKind, st.DestinationNodes)
				return nil
			}
			ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt)
			defer stop()
			return watchStatus(ctx, out, ac, interval)
		},
	}
	af.register(c)
	c.Flags().BoolVarP(&watch, "watch", "w", false, "redraw until Ctrl-C")
	c.Flags().BoolVar(&asJSON, "json", false, "print GET /v1/status as JSON")
	c.Flags().DurationVar(&interval, "interval", time.Second, "redraw interval with --watch")
	return c
}

func watchStatus(ctx context.Context, out io.Writer, ac *adminClient, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := ac.status(rctx)
		cancel()
		fmt.Fprint(out, "\x1b[H\x1b[2J") // home + clear
		if err != nil {
			fmt.Fprintf(out, "%s  %v\n", time.Now().Format("15:04:05"), err)
		} else {
			renderStatus(out, st.Status, time.Now())
			renderNodes(out, st.DestinationKind, st.DestinationNodes)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// renderStatus prints the status table; a syncing source gets its phase
// until its snapshot flows, then a progress bar (or the bytes received,
// when a diskless transfer has no size).
func renderStatus(w io.Writer, st syncer.Status, now time.Time) {
	if st.Role == syncer.RoleStandby {
		active := st.Active
		if active == "" {
			active = "none reachable"
		}
		fmt.Fprintf(w, "this instance is a STANDBY (active: %s): it does not sync\n", active)
	}
	fmt.Fprintf(w, "destination: %s   (%d sources, %s)\n\n", st.Status, len(st.Sources), now.Format("15:04:05"))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "UID\tNAME\tURI\tSTATE\tPROGRESS\tLAG\tLAST UPDATE\tLAST ERROR")
	for _, s := range st.Sources {
		progress := progressText(s, true)
		lag := "-"
		if s.SyncState == syncer.StateSynced {
			lag = fmt.Sprintf("%dms", s.LagMS)
		}
		uri := s.URI
		if s.Kind != "" && s.Kind != syncer.KindRedis {
			uri = fmt.Sprintf("%s (%s, %d links)", s.URI, s.Kind, s.Links)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.UID, s.Name, uri, s.SyncState, progress, lag, ago(s.LastUpdate, now), oneLine(s.LastError, 60))
	}
	tw.Flush()
	for _, s := range st.Sources {
		if len(s.UnsupportedKeys) == 0 && s.DroppedCommands == 0 {
			continue
		}
		var parts []string
		for _, typ := range slices.Sorted(maps.Keys(s.UnsupportedKeys)) {
			parts = append(parts, fmt.Sprintf("%d %s", s.UnsupportedKeys[typ], typ))
		}
		fmt.Fprintf(w, "\n%s: keys left out (unsupported_keys: skip): %s; stream commands dropped: %d\n",
			s.Name, strings.Join(parts, ", "), s.DroppedCommands)
	}
}

// renderNodes prints the destination's kind and nodes (GET /v1/status's
// destination_kind and destination_nodes), when the status has them.
func renderNodes(w io.Writer, kind string, nodes []admin.DestinationNode) {
	if kind == "" && len(nodes) == 0 {
		return
	}
	switch kind {
	case "cluster":
		kind = "a Redis Cluster"
	default:
		kind = "standalone shards"
	}
	fmt.Fprintf(w, "\ndestination nodes (%s):\n", kind)
	if len(nodes) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SHARD\tNODE\tROLE\tSTATE\tSLOTS\tLAG\tREADS")
	for _, n := range nodes {
		state := "down"
		switch {
		case n.Unread:
			state = "not read"
		case n.Up && n.Role == "replica":
			state = "in rotation"
		case n.Up:
			state = "up"
		case n.Role == "replica":
			state = "out of rotation"
		}
		lag := "-"
		if n.Role == "replica" && !n.Unread {
			lag = fmt.Sprintf("%dms", int64(n.LagSeconds*1000))
		}
		slots := n.Slots
		if slots == "" {
			slots = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\n", n.Shard, n.Addr, n.Role, state, slots, lag, n.Reads)
	}
	tw.Flush()
}

// progressText says how far a source's sync is: its phase until the
// snapshot flows (nothing to measure yet), then a bar (or a percentage,
// without withBar), or the bytes received when a diskless transfer has no
// size.
func progressText(s syncer.SourceStatus, withBar bool) string {
	if s.SyncState != syncer.StateSyncing {
		return fmt.Sprintf("%d%%", s.Progress)
	}
	switch {
	case s.Phase == syncer.PhaseConnecting || s.Phase == syncer.PhaseWaiting:
		return strings.ReplaceAll(s.Phase, "-", " ")
	case s.RDBSize < 0:
		return fmt.Sprintf("loading, %s received", bytesText(s.RDBTransferred))
	case withBar:
		return bar(s.Progress, 20)
	}
	return fmt.Sprintf("loading %d%%", s.Progress)
}

func bar(pct, width int) string {
	pct = max(0, min(100, pct))
	full := pct * width / 100
	return "[" + strings.Repeat("#", full) + strings.Repeat(".", width-full) + fmt.Sprintf("] %3d%%", pct)
}

func ago(ts string, now time.Time) string {
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return "-"
	}
	d := now.Sub(t).Round(time.Second)
	if d < time.Second {
		return "just now"
	}
	return d.String() + " ago"
}

func oneLine(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	if s == "" {
		return "-"
	}
	return s
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
