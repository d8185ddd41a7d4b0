package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/tidemark-dev/tidemark/workflows"
)

func (a *cli) backfillCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backfill",
		Short: "start, follow and cancel backfills (Temporal workflows run by `worker`)",
		Long: `A backfill runs a job over a past period (or a sample table) as a Temporal
workflow, executed by the processes of "` + a.name + ` worker".`,
		Example: `  tidemark backfill start --job credit-features --from 2026-11-25 --to 2026-11-26 --sink file:///tmp/out
  tidemark backfill status --id backfill-credit-features-20261126T101500 --watch
  tidemark backfill cancel --id backfill-credit-features-20261126T101500`,
	}
	cmd.AddCommand(a.backfillStartCmd(), a.backfillStatusCmd(), a.backfillCancelCmd(), a.workerCmd(true))
	return cmd
}

func (a *cli) backfillStartCmd() *cobra.Command {
	var (
		bf            backfillFlags
		queue, id     string
		detach        bool
		poll          time.Duration
		cancelOnInter bool
	)
	cmd := &cobra.Command{
		Use:   "start",
		Short: "start a backfill and show its progress until it is done",
		Long: `start starts a backfill workflow of a job over [--from, --to) or a --sample
table, and shows its progress until it is done (Ctrl-C leaves it running, unless
--cancel-on-interrupt). Dates are 2026-11-25 (midnight UTC) or RFC 3339.`,
		Example: `  tidemark backfill start --job credit-features --from 2026-11-25 --to 2026-11-26 --chunk 1h --sink file:///tmp/out
  tidemark backfill start --job credit-features --from 2026-11-25T06:00:00Z --to 2026-11-25T12:00:00+01:00 --detach
  tidemark backfill start --job credit-features --sample s3://bucket/training.csv --chunk-rows 5000`,
	}
	s := a.settings(cmd)
	f := cmd.Flags()
	a.jobFlag(cmd, &bf.job, "job to backfill")
	bf.register(f)
	s.temporal()
	f.StringVar(&queue, "task-queue", workflows.TaskQueue, "the workers' task queue")
	f.StringVar(&id, "id", "", "workflow ID (default backfill-<job>-<time>)")
	f.BoolVar(&detach, "detach", false, "start, print the workflow ID and return without waiting")
	f.DurationVar(&poll, "poll", 500*time.Millisecond, "progress poll interval")
	f.BoolVar(&cancelOnInter, "cancel-on-interrupt", false, "on Ctrl-C cancel the backfill (default: leave it running)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		in, err := bf.input()
		if err != nil {
			return err
		}
		cfg, err := s.config()
		if err != nil {
			return err
		}
		if id == "" {
			id = fmt.Sprintf("backfill-%s-%s", in.Job, time.Now().UTC().Format("20060102T150405"))
		}
		c, err := dialTemporal(ctx, cfg.Temporal, a.quietLog(), nil)
		if err != nil {
			return err
		}
		defer c.Close()
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, workflows.BackfillWorkflow, in)
		if err != nil {
			return fmt.Errorf("start backfill: %w", err)
		}
		fmt.Fprintf(a.stderr, "started backfill %s (run %s)\n", run.GetID(), run.GetRunID())
		if detach {
			fmt.Fprintln(a.stdout, run.GetID())
			return nil
		}
		return a.follow(ctx, c, run.GetID(), poll, cancelOnInter)
	}
	return cmd
}

// quietLog keeps the Temporal SDK's logging of short commands to warnings.
func (a *cli) quietLog() *slog.Logger {
	return slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// follow shows the backfill's progress until it ends, then its summary.
func (a *cli) follow(ctx context.Context, c client.Client, id string, poll time.Duration, cancelOnInterrupt bool) error {
	bar := newProgressLine(a.stderr)
	tick := time.NewTicker(poll)
	defer tick.Stop()
	bg := context.WithoutCancel(ctx)
	for {
		if p, err := queryProgress(bg, c, id); err == nil {
			bar.show(p)
		}
		desc, err := c.DescribeWorkflowExecution(bg, id, "")
		if err != nil {
			return err
		}
		if desc.WorkflowExecutionInfo.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			break
		}
		select {
		case <-ctx.Done():
			bar.done()
			if cancelOnInterrupt {
				fmt.Fprintf(a.stderr, "cancelling %s …\n", id)
				return c.CancelWorkflow(bg, id, "")
			}
			fmt.Fprintf(a.stderr, "backfill %s keeps running; see it with `%s backfill status --id %s`, stop it with `%s backfill cancel --id %s`\n",
				id, a.name, id, a.name, id)
			return nil
		case <-tick.C:
		}
	}
	if p, err := queryProgress(bg, c, id); err == nil {
		bar.show(p)
	}
	bar.done()
	var sum workflows.Summary
	err := c.GetWorkflow(bg, id, "").Get(bg, &sum)
	var canceled *temporal.CanceledError
	var appErr *temporal.ApplicationError
	switch {
	case errors.As(err, &canceled):
		canceled.Details(&sum)
		printSummary(a.stdout, id, "cancelled", sum)
		return fmt.Errorf("backfill %s was cancelled", id)
	case errors.As(err, &appErr) && appErr.HasDetails():
		appErr.Details(&sum)
		printSummary(a.stdout, id, "failed", sum)
		return err
	case err != nil:
		return err
	}
	printSummary(a.stdout, id, "done", sum)
	return nil
}

func queryProgress(ctx context.Context, c client.Client, id string) (workflows.Progress, error) {
	var p workflows.Progress
	v, err := c.QueryWorkflow(ctx, id, "", workflows.ProgressQuery)
	if err == nil {
		err = v.Get(&p)
	}
	return p, err
}

func printSummary(w io.Writer, id, state string, s workflows.Summary) {
	rate := 0.0
	if s.Duration > 0 {
		rate = float64(s.Events) / time.Duration(s.Duration).Seconds()
	}
	fmt.Fprintf(w, "backfill %s %s: job %s, %d chunks, %d events, %d outputs, %d errors (%d failed, %d stale, %d missing), %d skipped, %d resumed chunks, %d runs, %v (%.0f events/s)\n",
		id, state, s.Job, s.Chunks, s.Events, s.Outputs, s.Errors, s.Failed, s.Stale, s.Missing, s.Skipped, s.Resumed, s.Runs, s.Duration, rate)
	for _, e := range s.FirstErrors {
		fmt.Fprintf(w, "  %s\n", e)
	}
}

func (a *cli) backfillStatusCmd() *cobra.Command {
	var (
		id    string
		watch bool
	)
	cmd := &cobra.Command{
		Use:     "status",
		Short:   "show a backfill's progress",
		Example: "  tidemark backfill status --id backfill-credit-features-20261126T101500\n  tidemark backfill status --id backfill-demo --watch",
	}
	s := a.settings(cmd)
	cmd.Flags().StringVar(&id, "id", "", "workflow ID of the backfill (required)")
	cmd.Flags().BoolVar(&watch, "watch", false, "follow the progress until the backfill ends")
	cmd.MarkFlagRequired("id")
	s.temporal()
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
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
		if watch {
			return a.follow(ctx, c, id, 500*time.Millisecond, false)
		}
		p, err := queryProgress(ctx, c, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "%s: %s, %d/%d chunks (%.1f%%), %d running, %d events, %d outputs, %d errors, %v elapsed, run %d\n",
			id, p.State, p.Done, p.Chunks, p.Percent, p.Running, p.Events, p.Outputs, p.Errors, p.Elapsed, p.Runs)
		return nil
	}
	return cmd
}

func (a *cli) backfillCancelCmd() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:     "cancel",
		Short:   "cancel a running backfill",
		Example: "  tidemark backfill cancel --id backfill-credit-features-20261126T101500",
	}
	s := a.settings(cmd)
	cmd.Flags().StringVar(&id, "id", "", "workflow ID of the backfill (required)")
	cmd.MarkFlagRequired("id")
	s.temporal()
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
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
		return c.CancelWorkflow(ctx, id, "")
	}
	return cmd
}

// progressLine draws the progress on one terminal line, rewritten in
// place; on anything but a terminal (CI logs, pipes) it prints a line when
// the progress changes, at most every 5 seconds.
type progressLine struct {
	w     io.Writer
	tty   bool
	last  time.Time
	shown string
	drawn bool
}

func newProgressLine(w io.Writer) *progressLine {
	tty := false
	if f, ok := w.(*os.File); ok {
		st, err := f.Stat()
		tty = err == nil && st.Mode()&os.ModeCharDevice != 0
	}
	return &progressLine{w: w, tty: tty}
}

func (b *progressLine) show(p workflows.Progress) {
	const width = 30
	filled := 0
	if p.Chunks > 0 {
		filled = width * p.Done / p.Chunks
	}
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
	if filled > 0 && filled < width {
		bar = bar[:filled-1] + ">" + bar[filled:]
	}
	rate := 0.0
	if p.Elapsed > 0 {
		rate = float64(p.Events) / time.Duration(p.Elapsed).Seconds()
	}
	line := fmt.Sprintf("[%s] %d/%d chunks %5.1f%%  %d running  %d events  %d outputs  %d errors  %.0f ev/s  %s",
		bar, p.Done, p.Chunks, p.Percent, p.Running, p.Events, p.Outputs, p.Errors, rate, p.State)
	if b.tty {
		fmt.Fprintf(b.w, "\r\033[K%s %v", line, time.Duration(p.Elapsed).Round(time.Second))
		b.drawn = true
		return
	}
	if line != b.shown && time.Since(b.last) >= 5*time.Second || p.State != "running" && line != b.shown {
		fmt.Fprintln(b.w, line)
		b.shown, b.last = line, time.Now()
	}
}

func (b *progressLine) done() {
	if b.tty && b.drawn {
		fmt.Fprintln(b.w)
		b.drawn = false
	}
}
