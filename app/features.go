package app

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tidemark-dev/tidemark/api"
	"github.com/tidemark-dev/tidemark/client"
)

// apiFlags are the flags of the commands that talk to the API server.
type apiFlags struct {
	url, token string
}

func (a *cli) registerAPIFlags(cmd *cobra.Command, f *apiFlags) {
	cmd.Flags().StringVar(&f.url, "api", a.envOr("TIDEMARK_API", "http://127.0.0.1:8080"), "the API server ($TIDEMARK_API)")
	cmd.Flags().StringVar(&f.token, "token", a.envOr("TIDEMARK_TOKEN", ""), "bearer token ($TIDEMARK_TOKEN)")
}

func (f *apiFlags) client() *client.Client {
	return client.New(f.url, client.WithToken(f.token))
}

// featuresCmd is `features`: lookups and selections through the API.
func (a *cli) featuresCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "features",
		Short: "read the feature store through the API: one entity's record, or a selection",
		Long: `features reads what jobs wrote to the feature store, through the API server
(tidemark api, or tidemark dev's): "get" one entity's record, latest or as of a time;
"select" the entities whose features satisfy a predicate.`,
		Example: "  tidemark features get credit-features app-7\n  tidemark features select credit-features --where \"limit >= 5000 and segment in ('a', 'b')\"",
	}
	cmd.AddCommand(a.featuresGetCmd(), a.featuresSelectCmd())
	return cmd
}

func (a *cli) featuresGetCmd() *cobra.Command {
	var (
		af          apiFlags
		at, knownAt time.Time
	)
	cmd := &cobra.Command{
		Use:     "get JOB ENTITY",
		Short:   "print one entity's record (JSON)",
		Example: "  tidemark features get credit-features app-7\n  tidemark features get credit-features app-7 --at 2026-11-25T08:00:00Z --known-at 2026-11-25T09:00:00Z",
		Args:    cobra.ExactArgs(2),
	}
	a.registerAPIFlags(cmd, &af)
	cmd.Flags().Var(timeValue{&at}, "at", "as of this time (RFC 3339, a date, or from now such as -2h; default: the latest)")
	cmd.Flags().Var(timeValue{&knownAt}, "known-at", "as known at this time")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		rec, err := af.client().Features(cmd.Context(), args[0], args[1], at, knownAt)
		if err != nil {
			return err
		}
		return a.printJSON(rec)
	}
	return cmd
}

func (a *cli) featuresSelectCmd() *cobra.Command {
	var (
		af       apiFlags
		req      api.SelectRequest
		at       time.Time
		features string
		all      bool
	)
	cmd := &cobra.Command{
		Use:   "select JOB --where PREDICATE",
		Short: "print the entities whose features satisfy a predicate, one per line",
		Long: `select prints the entities (and --features, tab separated) whose features satisfy
--where: comparisons =, !=, <, <=, >, >=, in (…), between … and …, is [not] null of a
feature with a number, a 'string', true or false (times as 'RFC 3339' strings),
combined with and/or and parentheses.`,
		Example: "  tidemark features select credit-features --where \"score >= 0.8 and region = 'east'\" --features score --all",
		Args:    cobra.ExactArgs(1),
	}
	a.registerAPIFlags(cmd, &af)
	f := cmd.Flags()
	f.StringVar(&req.Where, "where", "", "the predicate (required)")
	f.StringVar(&features, "features", "", "features to print, comma separated")
	f.IntVar(&req.Limit, "limit", 100, "entities per page")
	f.StringVar(&req.Cursor, "cursor", "", "the page after this cursor (printed after a page)")
	f.BoolVar(&all, "all", false, "follow the cursor to the last page")
	f.Var(timeValue{&at}, "at", "as of this time (default: the latest)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if req.Where == "" {
			return usagef("--where is required")
		}
		if features != "" {
			req.Features = strings.Split(features, ",")
		}
		if !at.IsZero() {
			req.At = at.UTC().Format(time.RFC3339Nano)
		}
		c := af.client()
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		for {
			sel, err := c.Select(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			for _, e := range sel.Entities {
				fmt.Fprint(tw, e.Entity)
				for _, name := range req.Features {
					fmt.Fprintf(tw, "\t%v", e.Features[name])
				}
				fmt.Fprintln(tw)
			}
			if !all || sel.Next == "" {
				if sel.Next != "" {
					fmt.Fprintf(a.stderr, "%d matched; next page: --cursor %s (or --all)\n", sel.Matched, sel.Next)
				}
				break
			}
			req.Cursor = sel.Next
		}
		return tw.Flush()
	}
	return cmd
}
