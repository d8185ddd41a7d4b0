package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/tidemark-dev/tidemark/workflows"
)

func (a *cli) backfillCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backfill",
		Short: "start, follow, tune and cancel backfills (Temporal workflows run by `worker`)",
		Long: `A backfill runs a job over a past period (or a sample table) as a Temporal
workflow, executed by the processes of "` + a.name + ` worker".`,
		Example: `  tidemark backfill start --job credit-features --from -24h --to -1m --sink file:///tmp/out
  tidemark backfill status --id backfill-credit-features-20261126T101500 --watch
  tidemark backfill parallelism --id backfill-credit-features-20261126T101500 --set 16
  tidemark backfill cancel --id backfill-credit-features-20261126T101500`,
	}
	cmd.AddCommand(a.backfillStartCmd(), a.backfillStatusCmd(), a.backfillParallelismCmd(), a.backfillCancelCmd(), a.workerCmd(true))
	return cmd
}

// register adds the flags of the commands that follow a backfill until it
// ends.
func (o *followOptions) register(f *pflag.FlagSet) {
	f.DurationVar(&o.poll, "poll", 500*time.Millisecond, "progress poll interval")
	f.DurationVar(&o.workerTimeout, "worker-timeout", time.Minute, "exit 1 when no worker polls the task queue for this long (the backfill stays started)")
	f.BoolVar(&o.waitForWorker, "wait-for-worker", false, "wait for a worker without a limit (see --worker-timeout)")
	f.BoolVar(&o.allowErrors, "allow-errors", false, "exit 0 when the backfill is done with errors (failed or stale runs)")
}

func (a *cli) backfillStartCmd() *cobra.Command {
	var (
		bf        backfillFlags
		queue, id string
		detach    bool
		follow    followOptions
	)
	cmd := &cobra.Command{
		Use:   "start",
		Short: "start a backfill and show its progress until it is done",
		Long: `start starts a backfill workflow of a job over [--from, --to) or a --sample
table, and shows its progress until it is done (Ctrl-C leaves it running, unless
--cancel-on-interrupt). Times are 2026-11-25 (midnight UTC), RFC 3339, "now" or a
time from now (-24h, -90m).

It says so when no worker polls the task queue, and exits 1 if none comes within
--worker-timeout (the backfill stays started). It exits 1 when the backfill is
cancelled, fails, is refused by the watermark check (its range reaches past the
events stored so far; see --watermark) or is done with errors (unless
--allow-errors). A backfill that ran 0 events ends with a warning.`,
		Example: `  tidemark backfill start --job credit-features --from -24h --to -1m --chunk 1h --sink file:///tmp/out
  tidemark backfill start --job credit-features --from 2026-11-25T06:00:00Z --to 2026-11-25T12:00:00+01:00 --detach
  tidemark backfill start --job credit-features --from 2026-11-25 --to now --watermark truncate
  tidemark backfill start --job credit-features --sample s3://bucket/training.csv --chunk-rows 5000 --allow-errors`,
	}
	s := a.settings(cmd)
	f := cmd.Flags()
	a.jobFlag(cmd, &bf.job, "job to backfill")
	bf.register(f)
	s.temporal()
	f.StringVar(&queue, "task-queue", workflows.TaskQueue, "the workers' task queue")
	f.StringVar(&id, "id", "", "workflow ID (default backfill-<job>-<time>)")
	f.BoolVar(&detach, "detach", false, "start, print the workflow ID and return without waiting")
	f.BoolVar(&follow.cancelOnInterrupt, "cancel-on-interrupt", false, "on Ctrl-C cancel the backfill (default: leave it running)")
	follow.register(f)
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
		others, err := runningOverlaps(ctx, c, id, in)
		if err != nil {
			return err
		}
		if len(others) > 0 {
			return fmt.Errorf("backfill %s would write the records of job %s that running backfill %s writes (same feature store, overlapping input): "+
				"two at once race on each record. Wait for it to end, cancel it (`%s backfill cancel --id %s`), or choose another range or sink",
				id, in.Job, strings.Join(others, ", "), a.name, others[0])
		}
		// A running ID is an error (not the running backfill's handle); an
		// ended one may start again, as a new backfill that replaces its
		// outputs (file sinks: the folder is cleared first).
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue,
			WorkflowExecutionErrorWhenAlreadyStarted: true,
			WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		}, workflows.BackfillWorkflow, in)
		var running *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &running) {
			return fmt.Errorf("backfill %s is already running (run %s): `%s backfill status --id %s --watch` follows it, `%s backfill cancel --id %s` stops it; "+
				"once it has ended, the ID may start a new backfill, which replaces its outputs", id, running.RunId, a.name, id, a.name, id)
		}
		if err != nil {
			return fmt.Errorf("start backfill: %w", err)
		}
		fmt.Fprintf(a.stderr, "started backfill %s (run %s) on task queue %s\n", run.GetID(), run.GetRunID(), queue)
		if detach {
			if msg, err := missingWorkers(ctx, c, queue); err != nil {
				return err
			} else if msg != "" {
				fmt.Fprintf(a.stderr, "%s: the backfill waits for one\n", msg)
			}
			fmt.Fprintln(a.stdout, run.GetID())
			return nil
		}
		return a.follow(ctx, c, run.GetID(), follow)
	}
	return cmd
}

// quietLog keeps the Temporal SDK's logging of short commands to warnings.
func (a *cli) quietLog() *slog.Logger {
	return slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// backfillClient dials Temporal for a command about the backfill id and
// describes it; closing the client is the caller's.
func (a *cli) backfillClient(ctx context.Context, s *settings, id string) (client.Client, backfillView, error) {
	cfg, err := s.config()
	if err != nil {
		return nil, backfillView{}, err
	}
	c, err := dialTemporal(ctx, cfg.Temporal, a.quietLog(), nil)
	if err != nil {
		return nil, backfillView{}, err
	}
	v, err := describeBackfill(ctx, c, id)
	if errors.Is(err, errNoBackfill) {
		err = fmt.Errorf("%w in namespace %s (`temporal workflow list` lists its workflows)", err, cfg.Temporal.Namespace)
	}
	if err != nil {
		c.Close()
		return nil, v, err
	}
	return c, v, nil
}

func (a *cli) backfillStatusCmd() *cobra.Command {
	var (
		id     string
		watch  bool
		follow followOptions
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "show a backfill's progress",
		Long: `status shows a backfill's progress as the workflow last published it (its memo),
its running chunks (their heartbeats) and whether a worker polls its task queue.
It needs no worker. With --watch it follows the backfill until it ends and exits
as "backfill start" does.`,
		Example: "  tidemark backfill status --id backfill-credit-features-20261126T101500\n  tidemark backfill status --id backfill-demo --watch",
	}
	s := a.settings(cmd)
	cmd.Flags().StringVar(&id, "id", "", "workflow ID of the backfill (required)")
	cmd.Flags().BoolVar(&watch, "watch", false, "follow the progress until the backfill ends")
	follow.register(cmd.Flags())
	cmd.MarkFlagRequired("id")
	s.temporal()
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		c, v, err := a.backfillClient(ctx, s, id)
		if err != nil {
			return err
		}
		defer c.Close()
		if watch {
			return a.follow(ctx, c, id, follow)
		}
		now := time.Now()
		job := ""
		if v.published {
			job = "job " + v.progress.Job + ", "
		}
		fmt.Fprintf(a.stdout, "backfill %s: %s%s\n", id, job, v.line(now))
		v.writeChunks(a.stdout, now)
		if v.published {
			p := v.progress
			rows := ""
			if p.Rows > 0 {
				rows = fmt.Sprintf(", %d sample rows without state", p.Missing)
			}
			fmt.Fprintf(a.stdout, "  %d written, %d unchanged, %d replaced%s, parallelism %d, run %d\n", p.Written, p.Unchanged, p.Replaced, rows, p.Parallelism, p.Runs)
			for _, w := range p.Warnings {
				fmt.Fprintf(a.stdout, "  WARNING: %s\n", w)
			}
		}
		if !v.running() {
			if err := c.GetWorkflow(ctx, id, "").Get(ctx, nil); err != nil {
				fmt.Fprintf(a.stdout, "  ended: %s\n", endReason(err))
			}
			return nil
		}
		msg, err := missingWorkers(ctx, c, v.taskQueue)
		if err != nil {
			return err
		}
		if msg != "" {
			fmt.Fprintf(a.stdout, "  %s: the backfill waits for one\n", msg)
		}
		return nil
	}
	return cmd
}

func (a *cli) backfillParallelismCmd() *cobra.Command {
	var (
		id string
		n  int
	)
	cmd := &cobra.Command{
		Use:   "parallelism",
		Short: "show or change how many chunks of a running backfill run at once",
		Long: `parallelism shows a backfill's parallelism, or changes it with --set (a workflow
Update: the running backfill checks the value and the command prints its answer or
its refusal). A change needs a worker polling the backfill's task queue. No more
chunks run at once than are left: a backfill started without --chunk has about 4
chunks per slot of its starting parallelism.`,
		Example: "  tidemark backfill parallelism --id backfill-credit-features-20261126T101500\n  tidemark backfill parallelism --id backfill-credit-features-20261126T101500 --set 16",
	}
	s := a.settings(cmd)
	cmd.Flags().StringVar(&id, "id", "", "workflow ID of the backfill (required)")
	cmd.Flags().IntVar(&n, "set", 0, fmt.Sprintf("the new parallelism, 1 to %d", workflows.MaxParallelism))
	cmd.MarkFlagRequired("id")
	s.temporal()
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		c, v, err := a.backfillClient(ctx, s, id)
		if err != nil {
			return err
		}
		defer c.Close()
		if !cmd.Flags().Changed("set") {
			if !v.published {
				return fmt.Errorf("backfill %s has published no progress yet (%s)", id, v.state())
			}
			fmt.Fprintln(a.stdout, v.progress.Parallelism)
			return nil
		}
		if !v.running() {
			return fmt.Errorf("backfill %s is %s: its parallelism no longer changes", id, v.state())
		}
		if msg, err := missingWorkers(ctx, c, v.taskQueue); err != nil {
			return err
		} else if msg != "" {
			return fmt.Errorf("%s: a change of the parallelism needs one", msg)
		}
		h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
			WorkflowID: id, UpdateName: workflows.ParallelismUpdate, Args: []any{n},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		})
		var old int
		if err == nil {
			err = h.Get(ctx, &old)
		}
		if err != nil {
			return fmt.Errorf("backfill %s: parallelism %d refused: %w", id, n, err)
		}
		fmt.Fprintf(a.stdout, "backfill %s: parallelism %d (was %d)\n", id, n, old)
		return nil
	}
	return cmd
}

func (a *cli) backfillCancelCmd() *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:   "cancel",
		Short: "cancel a running backfill",
		Long: `cancel asks a running backfill to stop: it cancels its running chunks and ends
cancelled, with its summary so far. It exits 1 if there is no such backfill or it
has already ended.`,
		Example: "  tidemark backfill cancel --id backfill-credit-features-20261126T101500",
	}
	s := a.settings(cmd)
	cmd.Flags().StringVar(&id, "id", "", "workflow ID of the backfill (required)")
	cmd.MarkFlagRequired("id")
	s.temporal()
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		c, v, err := a.backfillClient(ctx, s, id)
		if err != nil {
			return err
		}
		defer c.Close()
		if !v.running() {
			return fmt.Errorf("backfill %s has already ended (%s at %s): nothing to cancel", id, v.state(), v.close.UTC().Format(time.RFC3339))
		}
		if err := c.CancelWorkflow(ctx, id, ""); err != nil {
			return fmt.Errorf("cancel backfill %s: %w", id, err)
		}
		fmt.Fprintf(a.stdout, "cancel of backfill %s requested: it stops its running chunks and ends cancelled (`%s backfill status --id %s --watch` follows it)\n",
			id, a.name, id)
		if msg, err := missingWorkers(ctx, c, v.taskQueue); err != nil {
			return err
		} else if msg != "" {
			fmt.Fprintf(a.stdout, "%s: the cancel takes effect when one does\n", msg)
		}
		return nil
	}
	return cmd
}
