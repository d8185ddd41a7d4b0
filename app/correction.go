package app

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/converter"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/app/config"
	"github.com/tidemark-dev/tidemark/correction"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/source"
	"github.com/tidemark-dev/tidemark/workers"
	"github.com/tidemark-dev/tidemark/workflows"
)

func (a *cli) correctionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "correction",
		Short: "compare the MySQL tables with the event center, correct it and report the drift",
		Long: `correction compares the tables of the registered mysql sources with the event
center, chunk by chunk, each chunk in a consistent snapshot pinned to a binlog
position, and writes a correction event for every row that differs (see the
package documentation of correction). It runs as the Temporal workflow Correction,
nightly by the schedule ` + workflows.CorrectionSchedule + `; its drift ledger is in the
event center as events of the source ` + correction.LedgerSource + `.`,
		Example: `  tidemark correction run --source mysql.loan.orders
  tidemark correction schedule --at 02:00 --zone Europe/Berlin
  tidemark correction report --source mysql.loan.orders --since -168h`,
	}
	cmd.AddCommand(a.correctionRunCmd(), a.correctionScheduleCmd(), a.correctionReportCmd())
	return cmd
}

// correctionFlags are the workflow input's flags.
type correctionFlags struct {
	sources     []string
	keys        []string
	chunkRows   int
	parallelism int
	// re-backfills (workflows.Rebackfill)
	noRebackfill          bool
	rebackfillParallelism int
}

func (c *correctionFlags) register(f *pflag.FlagSet) {
	f.StringSliceVar(&c.sources, "source", nil, "source to correct (repeat; default every mysql source's table)")
	f.StringSliceVar(&c.keys, "keys", nil, "repair only these keys of the one --source (comma separated)")
	f.IntVar(&c.chunkRows, "chunk-rows", workflows.DefaultCorrectionChunkRows, "rows per chunk")
	f.IntVar(&c.parallelism, "parallelism", workflows.CorrectionInFlight, "chunks in flight at once (most wait for the source's watermark; a worker compares its --correction-parallelism at a time)")
	f.BoolVar(&c.noRebackfill, "no-rebackfill", false, "start no re-backfill of the jobs opted in (job.Rebackfill) that read a changed source")
	f.IntVar(&c.rebackfillParallelism, "rebackfill-parallelism", workflows.DefaultRebackfillParallelism, "re-backfills run at once")
}

func (c *correctionFlags) input() (workflows.CorrectionInput, error) {
	if len(c.keys) > 0 && len(c.sources) != 1 {
		return workflows.CorrectionInput{}, usagef("--keys repairs keys of exactly one --source")
	}
	if c.chunkRows <= 0 || c.parallelism <= 0 || c.rebackfillParallelism <= 0 {
		return workflows.CorrectionInput{}, usagef("--chunk-rows, --parallelism and --rebackfill-parallelism must be positive")
	}
	return workflows.CorrectionInput{Sources: c.sources, Keys: c.keys, ChunkRows: c.chunkRows, Parallelism: c.parallelism,
		NoRebackfill: c.noRebackfill, RebackfillParallelism: c.rebackfillParallelism}, nil
}

func (a *cli) correctionRunCmd() *cobra.Command {
	var (
		in        correctionFlags
		queue, id string
		detach    bool
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "start a correction now and show its progress until it is done",
		Long: `run starts the Correction workflow now (every table of the mysql sources, the ones
named with --source, or a repair of the --keys of one source) and shows its progress
until it is done; Ctrl-C leaves it running. It prints the run's drift ledger at the
end and exits 1 if a source was skipped. The workers need the MySQL server
(` + "`tidemark worker --mysql …`" + `).`,
		Example: `  tidemark correction run
  tidemark correction run --source mysql.loan.orders --chunk-rows 5000
  tidemark correction run --source mysql.loan.orders --keys 17,42`,
	}
	s := a.settings(cmd)
	f := cmd.Flags()
	in.register(f)
	s.temporal()
	f.StringVar(&queue, "task-queue", workflows.TaskQueue, "the workers' task queue")
	f.StringVar(&id, "id", "", "workflow ID (default correction-<time>)")
	f.BoolVar(&detach, "detach", false, "start, print the workflow ID and return without waiting")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		input, err := in.input()
		if err != nil {
			return err
		}
		cfg, err := s.config()
		if err != nil {
			return err
		}
		if id == "" {
			id = "correction-" + time.Now().UTC().Format("20060102T150405")
		}
		c, run, err := a.startWorkflow(ctx, cfg.Temporal, "correction", id, queue, workflows.CorrectionWorkflow, input)
		if err != nil {
			return err
		}
		defer c.Close()
		if detach {
			fmt.Fprintln(a.stdout, run.GetID())
			return nil
		}
		line := newProgressLine(a.stderr)
		done := make(chan error, 1)
		var sum workflows.CorrectionSummary
		go func() { done <- run.Get(ctx, &sum) }()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case err := <-done:
				line.done()
				if err != nil {
					return fmt.Errorf("correction %s: %w", id, err)
				}
				printEntries(a.stdout, sum.Entries)
				failed := printRebackfills(a.stdout, sum.Rebackfill)
				if n := skipped(sum.Entries); n > 0 {
					return fmt.Errorf("correction %s skipped %d sources", id, n)
				}
				if failed > 0 {
					return fmt.Errorf("correction %s: %d re-backfills failed", id, failed)
				}
				return nil
			case <-ctx.Done():
				line.done()
				fmt.Fprintf(a.stderr, "correction %s keeps running\n", id)
				return ctx.Err()
			case <-tick.C:
				v, err := c.QueryWorkflow(ctx, id, "", workflows.ProgressQuery)
				if err != nil {
					continue // not started by a worker yet
				}
				var p workflows.CorrectionProgress
				if v.Get(&p) == nil {
					line.show(progressText(p), false)
				}
			}
		}
	}
	return cmd
}

func progressText(p workflows.CorrectionProgress) string {
	const width = 30
	n := int(p.Percent * width / 100)
	return fmt.Sprintf("[%s%s] %5.1f%% %s: chunks %d/%d, rows compared %d, drifted %d, corrections %d, skipped sources %d",
		strings.Repeat("#", n), strings.Repeat(".", width-n), p.Percent, p.State, p.Done, p.Chunks, p.Compared, p.Drifted, p.Corrections, p.Skipped)
}

func skipped(es []correction.Entry) int {
	n := 0
	for _, e := range es {
		if e.Skipped != "" {
			n++
		}
	}
	return n
}

// printEntries prints ledger entries as a table, then the keys and
// column counts of each drifted source.
func printEntries(w io.Writer, es []correction.Entry) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tSTARTED\tSOURCE\tCOMPARED\tMISSING\tEXTRA\tDIFFERENT\tCORRECTIONS\tSKIPPED")
	for _, e := range es {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", e.Run, e.Started.Format(time.RFC3339), e.Source,
			e.Compared, e.Missing, e.Extra, e.Different, e.Corrections, e.Skipped)
	}
	tw.Flush()
	for _, e := range es {
		for _, kind := range []string{correction.KindMissing, correction.KindExtra, correction.KindDifferent} {
			if keys := e.Keys[kind]; len(keys) > 0 {
				fmt.Fprintf(w, "%s %s %s keys: %s\n", e.Run, e.Source, kind, strings.Join(keys, " "))
			}
		}
		if len(e.Columns) > 0 {
			fmt.Fprintf(w, "%s %s different columns: %v\n", e.Run, e.Source, e.Columns)
		}
		if e.Archived > 0 {
			fmt.Fprintf(w, "%s %s archive: %d Parquet objects in %s\n", e.Run, e.Source, e.Archived, e.ArchiveFolder())
		}
	}
}

// printRebackfills prints the re-backfills a run started, one line each
// (job, range, backfill ID, outcome) and why (the changed sources it reads,
// with their keys corrected), and returns how many failed.
func printRebackfills(w io.Writer, rs []workflows.Rebackfill) (failed int) {
	for _, r := range rs {
		clipped := ""
		if r.Clipped {
			clipped = " (clipped to the job's max range)"
		}
		outcome := "failed: " + r.Error
		switch {
		case r.Summary != nil:
			outcome = fmt.Sprintf("done: %d events, %d outputs, %d written, %d replaced, %d errors", r.Summary.Events, r.Summary.Outputs, r.Summary.Written, r.Summary.Replaced, r.Summary.Errors)
		case r.Earlier:
			outcome = "done in an earlier attempt of this run"
		case r.Error == "":
			outcome = "not finished"
		default:
			failed++
		}
		fmt.Fprintf(w, "re-backfill %s [%s, %s)%s as %s (sink %s, write %s): %s\n", r.Job, r.From.Format(time.RFC3339), r.To.Format(time.RFC3339), clipped, r.ID, r.Sink, r.Write, outcome)
		fmt.Fprintf(w, "  because the run corrected %s\n", r.Reason())
	}
	return failed
}

func (a *cli) correctionReportCmd() *cobra.Command {
	var q correction.LedgerQuery
	cmd := &cobra.Command{
		Use:   "report",
		Short: "print the drift ledger: one run's entries, or a source's since a time",
		Long: `report reads the drift ledger (events of the source ` + correction.LedgerSource + `) from the
event center and prints, per run and source, the rows compared, missing, extra and
different, the corrections written, the first drifted keys and the columns that
differed. Then, per run, the re-backfills it started and why, from the run's
workflow in Temporal (its memo "` + workflows.RebackfillMemo + `"); a run Temporal no longer
keeps (past the namespace's retention), or a Temporal that cannot be reached, is
said on stderr.`,
		Example: `  tidemark correction report --run correction-20261203T020000
  tidemark correction report --source mysql.loan.orders --since -720h
  tidemark correction report --since 2026-12-01`,
	}
	s := a.settings(cmd)
	f := cmd.Flags()
	s.store()
	s.temporal()
	f.StringVar(&q.Run, "run", "", "the run's workflow ID")
	f.StringVar(&q.Source, "source", "", "only this source")
	f.Var(timeValue{&q.Since}, "since", "only runs started from this time on (2026-12-01, RFC 3339, -168h)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if q.Run != "" && (q.Source != "" || !q.Since.IsZero()) {
			return usagef("--run or --source/--since, not both")
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
		es, err := correction.ReadLedger(ctx, store, q)
		if err != nil {
			return err
		}
		if len(es) == 0 {
			fmt.Fprintln(a.stderr, "no ledger entries")
			return nil
		}
		printEntries(a.stdout, es)
		return a.reportRebackfills(ctx, cfg.Temporal, es)
	}
	return cmd
}

// reportRebackfills prints, for each run of es, the re-backfills it started
// (printRebackfills), read from the memo of the run's workflow. What
// Temporal cannot tell is said on stderr.
func (a *cli) reportRebackfills(ctx context.Context, tc config.Temporal, es []correction.Entry) error {
	var runs []string
	for _, e := range es {
		if !slices.Contains(runs, e.Run) {
			runs = append(runs, e.Run)
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, err := dialTemporal(dctx, tc, a.quietLog(), nil)
	cancel()
	if err != nil {
		fmt.Fprintf(a.stderr, "re-backfills not listed: %v\n", err)
		return nil
	}
	defer c.Close()
	for _, run := range runs {
		d, err := c.DescribeWorkflowExecution(ctx, run, "")
		var nf *serviceerror.NotFound
		switch {
		case errors.As(err, &nf):
			fmt.Fprintf(a.stderr, "%s: re-backfills not listed: Temporal no longer keeps the run\n", run)
			continue
		case err != nil:
			fmt.Fprintf(a.stderr, "%s: re-backfills not listed: %v\n", run, err)
			continue
		}
		var rs []workflows.Rebackfill
		if p := d.GetWorkflowExecutionInfo().GetMemo().GetFields()[workflows.RebackfillMemo]; p != nil {
			if err := converter.GetDefaultDataConverter().FromPayload(p, &rs); err != nil {
				return fmt.Errorf("%s: memo %s: %w", run, workflows.RebackfillMemo, err)
			}
		}
		if len(rs) == 0 {
			fmt.Fprintf(a.stdout, "%s started no re-backfill\n", run)
			continue
		}
		fmt.Fprintf(a.stdout, "%s started %d re-backfills:\n", run, len(rs))
		printRebackfills(a.stdout, rs)
	}
	return nil
}

func (a *cli) correctionScheduleCmd() *cobra.Command {
	var (
		at, zone, queue string
		in              correctionFlags
	)
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "create or update the nightly correction's Temporal Schedule",
		Long: `schedule creates the Temporal Schedule ` + workflows.CorrectionSchedule + `, which starts the
Correction workflow every day at --at in --zone, skipping a start while the last
run still runs (overlap policy skip). Run again, it updates the schedule to the
flags given, so it is safe to run at every deploy. The schedule shows in the
Temporal UI's Schedules page; pause, trigger or delete it with the stock
` + "`temporal schedule`" + ` commands.`,
		Example: `  tidemark correction schedule
  tidemark correction schedule --at 03:30 --zone America/New_York --chunk-rows 20000`,
	}
	s := a.settings(cmd)
	f := cmd.Flags()
	s.temporal()
	in.register(f)
	f.StringVar(&at, "at", "02:00", "time of day the correction starts (HH:MM)")
	f.StringVar(&zone, "zone", "UTC", "time zone of --at (IANA name)")
	f.StringVar(&queue, "task-queue", workflows.TaskQueue, "the workers' task queue")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		t, err := time.Parse("15:04", at)
		if err != nil {
			return usagef("--at %q: want HH:MM", at)
		}
		if _, err := time.LoadLocation(zone); err != nil {
			return usagef("--zone: %w", err)
		}
		input, err := in.input()
		if err != nil {
			return err
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
		created, err := workers.EnsureCorrectionSchedule(ctx, c, queue, workers.CorrectionScheduleSpec{Hour: t.Hour(), Minute: t.Minute(), Zone: zone}, input)
		if err != nil {
			return err
		}
		verb := "updated"
		if created {
			verb = "created"
		}
		fmt.Fprintf(a.stdout, "%s schedule %s: daily at %s %s\n", verb, workflows.CorrectionSchedule, at, zone)
		return nil
	}
	return cmd
}

// correctionDeps are the worker's flags for the correction's activities:
// the MySQL server the mysql sources live on.
type correctionDeps struct {
	addr, user, password, zone string
	parallelism, inFlightRows  int
	inFlightChunks             int // the deprecated --correction-in-flight
	flags                      *pflag.FlagSet
}

func (d *correctionDeps) register(a *cli, f *pflag.FlagSet) {
	d.flags = f
	f.StringVar(&d.addr, "mysql", a.envOr("TIDEMARK_MYSQL_ADDR", ""), "MySQL/MariaDB host:port the correction reads ($TIDEMARK_MYSQL_ADDR; empty: this worker runs no correction activities)")
	f.StringVar(&d.user, "mysql-user", a.envOr("TIDEMARK_MYSQL_USER", "root"), "MySQL user ($TIDEMARK_MYSQL_USER)")
	f.StringVar(&d.password, "mysql-password", a.envOr("TIDEMARK_MYSQL_PASSWORD", ""), "MySQL password ($TIDEMARK_MYSQL_PASSWORD)")
	f.StringVar(&d.zone, "mysql-zone", "UTC", "time zone of DATETIME and DATE values: the CDC's --zone")
	f.IntVar(&d.parallelism, "correction-parallelism", 4, "correction chunks this worker reads from MySQL or compares at once")
	f.IntVar(&d.inFlightRows, "correction-in-flight-rows", 0, "rows of the correction chunks this worker holds in memory at once, most of them waiting for the watermark; a chunk planned for more runs alone (0: 160000 × --correction-parallelism)")
	// Before chunks of 50 000 rows, the bound was in chunks (of 10 000
	// rows, the default then): a worker started with it keeps its rows.
	f.IntVar(&d.inFlightChunks, "correction-in-flight", 0, "deprecated: --correction-in-flight-rows of N chunks of 10000 rows")
	f.MarkHidden("correction-in-flight")
}

// oldChunkRows is the chunk size the deprecated --correction-in-flight
// counted in.
const oldChunkRows = 10_000

// maxCorrectionParallelism bounds --correction-parallelism: each slot may
// hold a MySQL connection.
const maxCorrectionParallelism = 1024

// validate checks the flags that need no server, and takes the
// deprecated --correction-in-flight as rows.
func (d *correctionDeps) validate() error {
	switch {
	case d.parallelism < 1 || d.parallelism > maxCorrectionParallelism:
		return usagef("--correction-parallelism %d: want 1 to %d", d.parallelism, maxCorrectionParallelism)
	case d.inFlightRows < 0:
		return usagef("--correction-in-flight-rows %d: want 0 (the default: %d × --correction-parallelism) or more", d.inFlightRows, correction.DefaultInFlightRows)
	case d.inFlightChunks < 0:
		return usagef("--correction-in-flight %d: want 0 or more (deprecated: use --correction-in-flight-rows)", d.inFlightChunks)
	case d.inFlightChunks > 0 && d.inFlightRows > 0:
		return usagef("--correction-in-flight is the deprecated form of --correction-in-flight-rows: give one")
	case d.inFlightChunks > 0:
		d.inFlightRows = d.inFlightChunks * oldChunkRows
	}
	return nil
}

// activities returns the correction's activities, or nil without --mysql.
// --mysql without --sources is a usage error; $TIDEMARK_MYSQL_ADDR without
// --sources is not (the CDC reads the same variable, so a deployment that
// sets it for the CDC must still start plain workers): no correction
// activities then.
// With an S3 client and a bucket, the snapshots are archived there.
// The caller closes the returned DB (nil too without --mysql).
func (d *correctionDeps) activities(store eventcenter.Store, sources *source.Config, prom *prometheus.Registry, s3c *s3.Client, bucket string) (*activities.Correction, *sql.DB, error) {
	if d.addr == "" {
		return nil, nil, nil
	}
	if sources == nil {
		if !d.flags.Changed("mysql") {
			return nil, nil, nil
		}
		return nil, nil, usagef("--mysql needs --sources: the correction corrects the registry's mysql sources")
	}
	loc, err := time.LoadLocation(d.zone)
	if err != nil {
		return nil, nil, usagef("--mysql-zone: %w", err)
	}

	db, err := correction.Open(d.addr, d.user, d.password)
	if err != nil {
		return nil, nil, err
	}
	var archive correction.Objects
	if s3c != nil && bucket != "" {
		archive = outputs.S3{Client: s3c, Bucket: bucket}
	}
	var reg prometheus.Registerer
	if prom != nil {
		reg = prom
	}
	return &activities.Correction{DB: db, Store: store, Sources: sources, Options: correction.Options{Zone: loc, Archive: archive, Parallelism: d.parallelism, InFlightRows: d.inFlightRows},
		Metrics: correction.NewMetrics(reg)}, db, nil
}
