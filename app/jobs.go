package app

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
)

// buildJobs builds every job of the binary with opts added.
func (a *cli) buildJobs(opts ...job.Option) ([]*job.Job, error) {
	js := make([]*job.Job, 0, len(a.newJobs))
	for _, n := range a.newJobs {
		j, err := n(opts...)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(js, func(o *job.Job) bool { return o.Name() == j.Name() }) {
			return nil, fmt.Errorf("two jobs are named %q", j.Name())
		}
		js = append(js, j)
	}
	return js, nil
}

// jobNames are the names of the binary's jobs, sorted; nil if a job does
// not build.
func (a *cli) jobNames() []string {
	js, err := a.buildJobs()
	if err != nil {
		return nil
	}
	names := make([]string, len(js))
	for i, j := range js {
		names[i] = j.Name()
	}
	slices.Sort(names)
	return names
}

// declareIndexes declares the jobs' indexes in store.
func (a *cli) declareIndexes(ctx context.Context, store eventcenter.Indexes) error {
	for _, ix := range a.indexes {
		if err := store.DeclareIndex(ctx, ix); err != nil {
			return fmt.Errorf("declare index %s.%s: %w", ix.Source, ix.Name, err)
		}
	}
	return nil
}

// jobFlag adds --job (completed with the binary's job names), defaulting
// to the only job if there is one.
func (a *cli) jobFlag(cmd *cobra.Command, v *string, usage string) {
	names := a.jobNames()
	def := ""
	if len(names) == 1 {
		def = names[0]
	}
	cmd.Flags().StringVar(v, "job", def, usage+" (one of: "+strings.Join(names, ", ")+")")
	cmd.RegisterFlagCompletionFunc("job", func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return names, cobra.ShellCompDirectiveNoFileComp
	})
}

// job builds the job named name with opts added; an unknown name is a
// usage error listing the known ones.
func (a *cli) job(name string, opts ...job.Option) (*job.Job, error) {
	if name == "" {
		return nil, usagef("--job is required (one of: %s)", strings.Join(a.jobNames(), ", "))
	}
	js, err := a.buildJobs(opts...)
	if err != nil {
		return nil, err
	}
	for _, j := range js {
		if j.Name() == name {
			return j, nil
		}
	}
	return nil, usagef("unknown job %q (this binary runs: %s)", name, strings.Join(a.jobNames(), ", "))
}
