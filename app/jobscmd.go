package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tidemark-dev/tidemark/app/config"
	"github.com/tidemark-dev/tidemark/catalog"
)

// jobsCmd is `jobs`: the catalog's view of the jobs.
func (a *cli) jobsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "list and show the jobs of the catalog",
		Long: `The catalog (the metadata center) holds the definition of every job a worker has
run: its version, owner, trigger sources and filters, the sources it reads, its
parameters, outputs and consistency level. Workers ("worker", "live", "dev")
publish their jobs' definitions at start, as a new revision when one changed.`,
		Example: "  tidemark jobs list\n  tidemark jobs show credit-features --store hbase://zk1,zk2/tidemark",
	}
	cmd.AddCommand(a.jobsListCmd(), a.jobsShowCmd())
	return cmd
}

func (a *cli) jobsListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "list the jobs of the catalog",
		Long:    `list prints one line per job of the catalog: its name, version, revision, owner, trigger sources, consistency level and when its revision was published.`,
		Example: "  tidemark jobs list\n  tidemark jobs list --json --store pebble:///var/lib/tidemark",
	}
	s := a.settings(cmd)
	s.store()
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the entries as a JSON array")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := s.config()
		if err != nil {
			return err
		}
		store, err := openStore(cmd.Context(), cfg, config.StoreOptions{MustExist: true})
		if err != nil {
			return err
		}
		defer store.Close()
		es, err := catalog.List(cmd.Context(), store)
		if err != nil {
			return err
		}
		if asJSON {
			return a.printJSON(es)
		}
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tVERSION\tREVISION\tOWNER\tTRIGGERS\tCONSISTENCY\tPUBLISHED")
		for _, e := range es {
			srcs := make([]string, len(e.Triggers))
			for i, t := range e.Triggers {
				srcs[i] = t.Source
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", e.Name, e.Version, e.Revision, orDash(e.Owner),
				strings.Join(srcs, ","), e.Consistency, e.Published.Format(time.RFC3339))
		}
		return tw.Flush()
	}
	return cmd
}

func (a *cli) jobsShowCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "show JOB",
		Short:   "show a job's definition in the catalog",
		Long:    `show prints the catalog's current definition of JOB. A job the catalog does not know is an error listing the ones it knows.`,
		Example: "  tidemark jobs show credit-features\n  tidemark jobs show credit-features --json",
		Args:    cobra.ExactArgs(1),
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return a.jobNames(), cobra.ShellCompDirectiveNoFileComp
		},
	}
	s := a.settings(cmd)
	s.store()
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the entry as JSON")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		cfg, err := s.config()
		if err != nil {
			return err
		}
		store, err := openStore(cmd.Context(), cfg, config.StoreOptions{MustExist: true})
		if err != nil {
			return err
		}
		defer store.Close()
		e, err := catalog.Get(cmd.Context(), store, args[0])
		if errors.Is(err, catalog.ErrNotFound) {
			names, lerr := catalog.Names(cmd.Context(), store)
			return knownJobs(err, names, lerr)
		}
		if err != nil {
			return err
		}
		if asJSON {
			return a.printJSON(e)
		}
		w := a.stdout
		fmt.Fprintf(w, "Name:         %s\nVersion:      %s (revision %d, published %s)\nOwner:        %s\nConsistency:  %s\n",
			e.Name, e.Version, e.Revision, e.Published.Format(time.RFC3339), orDash(e.Owner), e.Consistency)
		fmt.Fprintln(w, "Triggers:")
		for _, t := range e.Triggers {
			filters := "every event"
			if len(t.Filters) > 0 {
				filters = strings.Join(t.Filters, " and ")
			}
			fmt.Fprintf(w, "  %s: %s\n", t.Source, filters)
		}
		fmt.Fprintf(w, "Reads:        %s\n", orDash(strings.Join(e.Reads, ", ")))
		fmt.Fprintln(w, "Parameters:")
		for _, p := range e.Params {
			fmt.Fprintf(w, "  %s (%s, default %v): %s\n", p.Name, p.Type, p.Default, p.Description)
		}
		fmt.Fprintln(w, "Outputs:")
		for _, o := range e.Outputs {
			fmt.Fprintf(w, "  %s\n", o.Name)
		}
		return nil
	}
	return cmd
}

// knownJobs adds the catalog's job names to err, an unknown job.
func knownJobs(err error, names []string, lerr error) error {
	switch {
	case lerr != nil:
		return fmt.Errorf("%w (listing the catalog: %v)", err, lerr)
	case len(names) == 0:
		return fmt.Errorf("%w: the catalog is empty (a worker publishes its jobs when it starts)", err)
	}
	return fmt.Errorf("%w; the catalog knows: %s", err, strings.Join(names, ", "))
}

func (a *cli) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// publishJobs publishes the definitions of the binary's jobs to the
// catalog of store, as every process running jobs does at start. It
// publishes each job as its NewJob builds it, without the options a
// command adds (outputs, a consistency level from flags), so that every
// process publishes the same definition and restarts store nothing.
func (a *cli) publishJobs(ctx context.Context, store catalog.Store, log *slog.Logger) error {
	js, err := a.buildJobs()
	if err != nil {
		return err
	}
	changed, err := catalog.Publish(ctx, store, js...)
	if err != nil {
		return err
	}
	if len(changed) > 0 {
		log.Info("published new job definitions to the catalog", "jobs", changed)
	}
	return nil
}
