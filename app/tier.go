package app

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/tidemark-dev/tidemark/app/config"
	"github.com/tidemark-dev/tidemark/eventcenter/tiered"
	"github.com/tidemark-dev/tidemark/workflows"
)

func (a *cli) tierCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tier",
		Short: "move events older than the hot window into the cold tier (Temporal workflow run by `worker`)",
		Long: `Tiering copies every event stored more than the hot window ago (config
"hotWindow", default 32 days; the workers' setting decides) from
the event center's hot store into Parquet segments of the cold tier (config
"cold": file://PATH or s3://BUCKET/PREFIX), verifies each segment, and only then
deletes the hot copies. Reads merge both tiers, so nothing changes for jobs and
backfills. The workflow runs daily on a schedule ("schedule") or now ("run"),
on the workers of "` + a.name + ` worker" opened with the same cold tier.`,
		Example: `  tidemark tier schedule
  tidemark tier run
  tidemark tier status --cold s3://bucket/eventcenter`,
	}
	cmd.AddCommand(a.tierRunCmd(), a.tierScheduleCmd(), a.tierStatusCmd())
	return cmd
}

func (a *cli) tierRunCmd() *cobra.Command {
	var (
		sources   []string
		queue, id string
		detach    bool
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "start a tiering now and wait for its summary",
		Example: `  tidemark tier run
  tidemark tier run --source mysql.loan.orders --detach`,
		Args: cobra.NoArgs,
	}
	s := a.settings(cmd)
	s.temporal()
	f := cmd.Flags()
	f.StringSliceVar(&sources, "source", nil, "source to tier (repeatable; default every source of the cold tier)")
	f.StringVar(&queue, "task-queue", workflows.TaskQueue, "the workers' task queue")
	f.StringVar(&id, "id", "", "workflow ID (default tier-<time>)")
	f.BoolVar(&detach, "detach", false, "start, print the workflow ID and return without waiting")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		cfg, err := s.config()
		if err != nil {
			return err
		}
		if id == "" {
			id = "tier-" + time.Now().UTC().Format("20060102T150405")
		}
		c, run, err := a.startWorkflow(ctx, cfg.Temporal, "tiering", id, queue, workflows.TierWorkflow, workflows.TierInput{Sources: sources})
		if err != nil {
			return err
		}
		defer c.Close()
		if msg, err := missingWorkers(ctx, c, queue); err != nil {
			return err
		} else if msg != "" {
			fmt.Fprintf(a.stderr, "%s: the tiering waits for one\n", msg)
		}
		if detach {
			fmt.Fprintln(a.stdout, run.GetID())
			return nil
		}
		var sum workflows.TierSummary
		err = run.Get(ctx, &sum)
		for _, r := range sum.Sources {
			fmt.Fprintf(a.stdout, "%s\t%d events\t%d segments\t%d bytes\n", r.Source, r.Events, r.Segments, r.Bytes)
		}
		if err != nil {
			return fmt.Errorf("tiering %s: %w", id, err)
		}
		fmt.Fprintf(a.stdout, "moved %d events (%d bytes of segments) stored before %s\n", sum.Events, sum.Bytes, sum.Cutoff.Format(time.RFC3339))
		return nil
	}
	return cmd
}

func (a *cli) tierScheduleCmd() *cobra.Command {
	var (
		queue         string
		every, offset time.Duration
	)
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "create (or update) the Temporal schedule that starts a tiering every day",
		Long: `schedule creates the schedule "` + workflows.TierSchedule + `" (or updates it) so that a tiering
starts every --every (at --offset past the interval's start, UTC). A run still
going when the next is due makes the next one skip.`,
		Example: `  tidemark tier schedule
  tidemark tier schedule --every 24h --offset 3h`,
		Args: cobra.NoArgs,
	}
	s := a.settings(cmd)
	s.temporal()
	f := cmd.Flags()
	f.StringVar(&queue, "task-queue", workflows.TaskQueue, "the workers' task queue")
	f.DurationVar(&every, "every", 24*time.Hour, "interval between tierings")
	f.DurationVar(&offset, "offset", 2*time.Hour, "start within each interval (UTC)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		if every <= 0 || offset < 0 || offset >= every {
			return usageError{fmt.Errorf("--every %v must be positive and --offset %v within it", every, offset)}
		}
		cfg, err := s.config()
		if err != nil {
			return err
		}
		c, err := dialTemporal(ctx, cfg.Temporal, a.quietLog(), nil)
		if err != nil {
			return err
		}
		defer c.Close()
		spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every, Offset: offset}}}
		action := &client.ScheduleWorkflowAction{ID: "tier", Workflow: workflows.TierWorkflow, Args: []any{workflows.TierInput{}}, TaskQueue: queue}
		_, err = c.ScheduleClient().Create(ctx, client.ScheduleOptions{
			ID: workflows.TierSchedule, Spec: spec, Action: action, Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		})
		if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
			err = c.ScheduleClient().GetHandle(ctx, workflows.TierSchedule).Update(ctx, client.ScheduleUpdateOptions{
				DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
					in.Description.Schedule.Spec = &spec
					in.Description.Schedule.Action = action
					return &client.ScheduleUpdate{Schedule: &in.Description.Schedule}, nil
				},
			})
		}
		if err != nil {
			return fmt.Errorf("schedule tiering: %w", err)
		}
		fmt.Fprintf(a.stdout, "schedule %s: a tiering every %v at +%v on task queue %s\n", workflows.TierSchedule, every, offset, queue)
		return nil
	}
	return cmd
}

func (a *cli) tierStatusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "show, per source, what the cold tier holds and what waits in hot to be tiered",
		Long: `status lists, per source of the cold tier, its segments (count, events,
bytes, event-time range) and the backlog: the events in the hot store stored
before the cutoff (now minus the hot window), which the next tiering moves. A
backlog that grows from day to day means tiering falls behind: nothing is lost
(the hot store deletes only what tiering moved), but the hot store grows.`,
		Example: `  tidemark tier status --store hbase://zk1/tidemark --cold s3://bucket/eventcenter`,
		Args:    cobra.NoArgs,
	}
	s := a.settings(cmd)
	s.store()
	s.str("cold", `cold tier URL: file://PATH or s3://BUCKET/PREFIX (config "cold", $TIDEMARK_COLD)`, func(c *config.Config) *string { return &c.Cold })
	s.str("hot-window", `the hot window the backlog is counted against, as the workers tier with: a Go duration such as 768h (config "hotWindow", $TIDEMARK_HOT_WINDOW; default 32 days)`,
		func(c *config.Config) *string { return &c.HotWindow })
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		cfg, err := s.config()
		if err != nil {
			return err
		}
		if cfg.Cold == "" {
			return usageError{errors.New("no cold tier configured (--cold, config \"cold\", $TIDEMARK_COLD)")}
		}
		store, err := openStore(ctx, cfg, config.StoreOptions{MustExist: true})
		if err != nil {
			return err
		}
		defer store.Close()
		ts := store.(*tiered.Store)
		sources, err := ts.Sources(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		defer tw.Flush()
		fmt.Fprintf(tw, "SOURCE\tSEGMENTS\tEVENTS\tBYTES\tFROM\tTO\tBACKLOG\tOLDEST IN BACKLOG\n")
		for _, src := range sources {
			m, err := ts.Manifest(ctx, src)
			if err != nil {
				return err
			}
			var rows int
			var size int64
			from, to := "-", "-"
			for _, seg := range m.Segments {
				rows += seg.Rows
				size += seg.Size
			}
			if n := len(m.Segments); n > 0 {
				from, to = m.Segments[0].MinTime.Format(time.RFC3339), m.Segments[n-1].MaxTime.Format(time.RFC3339)
			}
			backlog, oldest, err := ts.Backlog(ctx, src)
			if err != nil {
				return err
			}
			old := "-"
			if backlog > 0 {
				old = oldest.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%d\t%s\n", src, len(m.Segments), rows, size, from, to, backlog, old)
		}
		return nil
	}
	return cmd
}
