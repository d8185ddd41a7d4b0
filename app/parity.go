package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tidemark-dev/tidemark/app/config"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/ingest"
	"github.com/tidemark-dev/tidemark/params"
	"github.com/tidemark-dev/tidemark/parity"
	"github.com/tidemark-dev/tidemark/workers"
	"github.com/tidemark-dev/tidemark/workflows"
)

func (a *cli) parityCmd() *cobra.Command {
	var (
		in        workflows.ParityInput
		chunk     time.Duration
		queue, id string
		detach    bool
	)
	cmd := &cobra.Command{
		Use:   "parity",
		Short: "compare a job's live outputs with its re-evaluation and explain every difference",
		Long: `parity starts the Parity workflow: it re-evaluates the job over the triggers of
[--from, --to), once as each live run could have seen it (as known when its record
was stored, with its parameter version) and once as the truth is known now, and
compares both with the live outputs in the feature store, record by record. Each
difference gets a cause: late-data, correction, params, job-version, live-missing,
live-failed, live-stale or unexplained (see package parity). It waits for the run
and prints the counts per cause, examples and the files listing every difference;
Ctrl-C leaves it running (see "tidemark parity report").`,
		Example: `  tidemark parity --job credit-features --from 2026-11-26 --to 2026-11-27
  tidemark parity report --id parity-credit-features-20261203T080000`,
	}
	s := a.settings(cmd)
	f := cmd.Flags()
	s.temporal()
	f.StringVar(&in.Job, "job", "", "the job (required)")
	f.Var(timeValue{&in.From}, "from", "start of the range of trigger times (2026-11-26, RFC 3339, -24h)")
	f.Var(timeValue{&in.To}, "to", "end of the range, exclusive")
	f.DurationVar(&chunk, "chunk", workflows.DefaultParityChunk, "event time one activity compares")
	f.IntVar(&in.Parallelism, "parallelism", workflows.DefaultParityParallelism, "chunks compared at once")
	f.IntVar(&in.Examples, "examples", workflows.DefaultParityExamples, "differences per cause to print")
	f.StringVar(&queue, "task-queue", workflows.TaskQueue, "the workers' task queue")
	f.StringVar(&id, "id", "", "workflow ID (default parity-<job>-<time>)")
	f.BoolVar(&detach, "detach", false, "start, print the workflow ID and return without waiting")
	cmd.AddCommand(a.parityReportCmd(), a.parityImpactCmd())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if in.Job == "" || in.From.IsZero() || in.To.IsZero() || !in.From.Before(in.To) {
			return usagef("--job, --from and --to (after --from) are required")
		}
		in.Chunk = workflows.Duration(chunk)
		ctx := cmd.Context()
		cfg, err := s.config()
		if err != nil {
			return err
		}
		if id == "" {
			id = "parity-" + in.Job + "-" + time.Now().UTC().Format("20060102T150405")
		}
		c, run, err := a.startWorkflow(ctx, cfg.Temporal, "parity", id, queue, workflows.ParityWorkflow, in)
		if err != nil {
			return err
		}
		defer c.Close()
		if detach {
			fmt.Fprintln(a.stdout, run.GetID())
			return nil
		}
		var sum workflows.ParitySummary
		if err := run.Get(ctx, &sum); err != nil {
			return fmt.Errorf("parity %s: %w", id, err)
		}
		printParity(a.stdout, &sum)
		return nil
	}
	return cmd
}

func (a *cli) parityReportCmd() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:     "report",
		Short:   "print a parity run's report: counts per cause, examples, the difference files",
		Example: `  tidemark parity report --id parity-credit-features-20261203T080000`,
	}
	s := a.settings(cmd)
	s.temporal()
	cmd.Flags().StringVar(&id, "id", "", "the parity run's workflow ID (required)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if id == "" {
			return usagef("--id is required")
		}
		ctx := cmd.Context()
		cfg, err := s.config()
		if err != nil {
			return err
		}
		c, err := dialTemporal(ctx, cfg.Temporal, a.quietLog(), nil)
		if err != nil {
			return err
		}
		defer c.Close()
		var sum workflows.ParitySummary
		if err := c.GetWorkflow(ctx, id, "").Get(ctx, &sum); err != nil {
			return fmt.Errorf("parity %s: %w", id, err)
		}
		printParity(a.stdout, &sum)
		return nil
	}
	return cmd
}

// printParity prints the counts per cause, the examples and the files.
func printParity(w io.Writer, s *workflows.ParitySummary) {
	fmt.Fprintf(w, "parity %s: job %s version %s, [%s, %s): %d triggers, %d in parity\n", s.Run, s.Job, s.JobVersion,
		s.From.UTC().Format(time.RFC3339), s.To.UTC().Format(time.RFC3339), s.Triggers, s.Agree)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CAUSE\tDIFFERENCES")
	for _, c := range parity.Causes {
		fmt.Fprintf(tw, "%s\t%d\n", c, s.Counts[c])
	}
	tw.Flush()
	for _, d := range s.Examples {
		fmt.Fprintf(w, "%s %s %s@%s: %s\n", d.Cause, d.Trigger.Source, d.Trigger.Key, d.Trigger.Time.UTC().Format(time.RFC3339Nano), d.Detail)
	}
	for _, o := range s.Objects {
		fmt.Fprintf(w, "all differences: %s\n", o)
	}
}

func (a *cli) parityImpactCmd() *cobra.Command {
	var (
		name             string
		from, to, evFrom time.Time
		lateness         time.Duration
		rerun, noted     bool
	)
	cmd := &cobra.Command{
		Use:   "impact",
		Short: "list the live outputs that late or corrected events change, and re-run exactly those",
		Long: `impact finds the events of the job's declared sources (job.Reads), trigger
sources and, for a job with lineage, the sources its live runs of the range fetched,
stored more than --lateness after their event time (late data, corrections), or
with --noted those ingest stored behind their source's watermark, and lists the live
outputs of [--from, --to) whose runs would have read them — from the runs' fetch lineage
(job.Lineage), else by re-evaluating the runs after each event. With
--rerun, for a job that opted in (job.RerunLateData), it re-evaluates exactly those
triggers as known now and publishes records that supersede the live ones.`,
		Example: `  tidemark parity impact --job credit-features --from 2026-11-26 --to 2026-11-27 --lateness 5m
  tidemark parity impact --job credit-features --from -24h --to now --rerun`,
	}
	s := a.settings(cmd)
	f := cmd.Flags()
	s.store()
	a.jobFlag(cmd, &name, "the job")
	f.Var(timeValue{&from}, "from", "start of the range of trigger times (2026-11-26, RFC 3339, -24h)")
	f.Var(timeValue{&to}, "to", "end of the range, exclusive")
	f.Var(timeValue{&evFrom}, "events-from", "earliest event time of the late events looked at (default --from minus 7 days)")
	f.DurationVar(&lateness, "lateness", 5*time.Minute, "events stored later than this after their time are late")
	f.BoolVar(&noted, "noted", false, "the late events are those ingest noted behind their source's watermark (not --lateness)")
	f.BoolVar(&rerun, "rerun", false, "re-run the affected triggers and publish superseding records")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if from.IsZero() || to.IsZero() || !from.Before(to) {
			return usagef("--from and --to (after --from) are required")
		}
		if evFrom.IsZero() {
			evFrom = from.Add(-7 * 24 * time.Hour)
		}
		j, err := a.job(name)
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		cfg, err := s.config()
		if err != nil {
			return err
		}
		store, err := openStore(ctx, cfg, config.StoreOptions{MustExist: true})
		if err != nil {
			return err
		}
		defer store.Close()
		pc := parity.Config{Job: j, Store: store, Params: params.NewEventCenter(store, nil)}
		sources, err := parity.ImpactSources(ctx, pc, from, to)
		if err != nil {
			return err
		}
		if !j.RecordsLineage() && len(j.Reads()) == 0 {
			fmt.Fprintf(a.stderr, "job %s records no lineage and declares no sources it reads (job.Reads): only late events of its trigger sources are looked at\n", j.Name())
		}
		var late []eventcenter.Event
		if noted {
			late, err = parity.NotedLateEvents(ctx, store, sources, evFrom, to)
		} else {
			late, err = parity.LateEvents(ctx, store, sources, evFrom, to, lateness)
		}
		if err != nil {
			return err
		}
		affected, err := parity.Impact(ctx, pc, late, from, to)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stderr, "%d late events, %d live outputs affected\n", len(late), len(affected))
		for _, af := range affected {
			fmt.Fprintf(a.stdout, "%s %s@%s record %s: %d late events\n", af.Trigger.Source, af.Trigger.Key,
				af.Trigger.Time.UTC().Format(time.RFC3339Nano), af.RecordID, len(af.By))
		}
		if !rerun || len(affected) == 0 {
			return nil
		}
		counts, failed, err := parity.Rerun(ctx, pc, affected, "impact-"+time.Now().UTC().Format("20060102T150405"))
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "re-run: %d replaced, %d written, %d unchanged, %d failed\n", counts.Replaced, counts.Written, counts.Unchanged, len(failed))
		return nil
	}
	return cmd
}

// lateImpact is `tidemark ingest --late-impact`: the LateImpact workflow
// started for each late event ingest stores.
type lateImpact struct {
	s       *settings
	on      bool
	queue   string
	pending int
}

func lateImpactFlags(s *settings) *lateImpact {
	li := &lateImpact{s: s}
	f := s.cmd.Flags()
	f.BoolVar(&li.on, "late-impact", false, "start the LateImpact workflow of each late event stored (its affected live outputs, re-run for jobs that opted in); needs Temporal")
	f.StringVar(&li.queue, "late-impact-task-queue", workflows.TaskQueue, "the workers' task queue, for --late-impact")
	f.IntVar(&li.pending, "late-impact-pending", 10000, "late events waiting to start their workflow, for --late-impact; more are dropped (see tidemark parity impact)")
	s.temporal()
	return li
}

// start dials Temporal if --late-impact is set and returns ingest's
// OnLate (nil if not set) and what closes it.
func (li *lateImpact) start(ctx context.Context, cfg config.Config, log *slog.Logger) (func(context.Context, []ingest.Late), func(), error) {
	if !li.on {
		return nil, func() {}, nil
	}
	c, err := dialTemporal(ctx, cfg.Temporal, log, nil)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	log.Info("ingest: late events start their impact run", "temporal", cfg.Temporal.Address, "task_queue", li.queue)
	return workers.LateImpactStarter(ctx, c, li.queue, li.pending, log), func() { cancel(); c.Close() }, nil
}
