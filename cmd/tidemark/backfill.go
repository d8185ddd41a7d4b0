package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/params"
	"github.com/tidemark-dev/tidemark/workers"
	"github.com/tidemark-dev/tidemark/workflows"
)

func init() {
	register(command{name: "backfill start", summary: "start a backfill (Temporal workflow) and show its progress until done", run: runBackfillStart})
	register(command{name: "backfill status", summary: "show a backfill's progress", run: runBackfillStatus})
	register(command{name: "backfill cancel", summary: "cancel a running backfill", run: runBackfillCancel})
}

// temporalFlags are the flags every backfill subcommand takes.
type temporalFlags struct {
	address, namespace *string
}

func addTemporalFlags(fs *flag.FlagSet) temporalFlags {
	return temporalFlags{
		address:   fs.String("address", envOr("TEMPORAL_ADDRESS", "127.0.0.1:7233"), "Temporal frontend ($TEMPORAL_ADDRESS)"),
		namespace: fs.String("namespace", envOr("TEMPORAL_NAMESPACE", "default"), "Temporal namespace ($TEMPORAL_NAMESPACE)"),
	}
}

func (f temporalFlags) dial(ctx context.Context) (client.Client, error) {
	c, err := client.DialContext(ctx, client.Options{HostPort: *f.address, Namespace: *f.namespace, Logger: quietSDKLogger()})
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s: %w", *f.address, err)
	}
	return c, nil
}

func runBackfillStart(ctx context.Context, fs *flag.FlagSet, args []string) error {
	tf := addTemporalFlags(fs)
	var (
		queue   = fs.String("task-queue", workflows.TaskQueue, "the workers' task queue")
		id      = fs.String("id", "", "workflow ID (default backfill-<job>-<time>)")
		jobName = fs.String("job", "", "job to backfill (required)")
		from    = fs.String("from", "", "range start, RFC 3339 (inclusive)")
		to      = fs.String("to", "", "range end, RFC 3339 (exclusive)")
		sample  = fs.String("sample", "", "sample table instead of a range: CSV with key,time columns (path, file:///path or s3://bucket/key)")
		chunk   = fs.Duration("chunk", 0, "time span of a chunk (default 1h)")
		rows    = fs.Int("chunk-rows", 0, "sample rows per chunk (default 10000)")
		par     = fs.Int("parallelism", 0, "chunks at once (default 4)")
		sink    = fs.String("sink", "", `records go to: "" the job's outputs, featurestore[:source], file:///folder, s3://bucket/prefix`)
		knownAt = fs.String("known-at", "", `"" corrected truth, "trigger" what live saw, or an RFC 3339 time`)
		params  = fs.String("params", "", `parameter values: "asof" (default), "current", "defaults"`)
		segment = fs.Int("segment-events", 0, "events between heartbeats of a chunk (default 8192)")
		detach  = fs.Bool("detach", false, "start and return without waiting")
		poll    = fs.Duration("poll", 500*time.Millisecond, "progress poll interval")
		cancel  = fs.Bool("cancel-on-interrupt", false, "on Ctrl-C cancel the backfill (default: leave it running)")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	in := workflows.BackfillInput{Job: *jobName, Sample: *sample, Chunk: workflows.Duration(*chunk), ChunkRows: *rows, Parallelism: *par,
		Options: activities.Options{Sink: *sink, KnownAt: *knownAt, Params: *params, SegmentEvents: *segment}}
	var err error
	if *from != "" {
		if in.From, err = time.Parse(time.RFC3339Nano, *from); err != nil {
			return fmt.Errorf("-from: %w", err)
		}
	}
	if *to != "" {
		if in.To, err = time.Parse(time.RFC3339Nano, *to); err != nil {
			return fmt.Errorf("-to: %w", err)
		}
	}
	if err := in.Validate(); err != nil {
		return err
	}
	if *id == "" {
		*id = fmt.Sprintf("backfill-%s-%s", *jobName, time.Now().UTC().Format("20060102T150405"))
	}
	c, err := tf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: *id, TaskQueue: *queue}, workflows.BackfillWorkflow, in)
	if err != nil {
		return fmt.Errorf("start backfill: %w", err)
	}
	fmt.Fprintf(os.Stderr, "started backfill %s (run %s)\n", run.GetID(), run.GetRunID())
	if *detach {
		fmt.Println(run.GetID())
		return nil
	}
	return follow(ctx, c, run.GetID(), *poll, *cancel)
}

// follow shows the backfill's progress until it ends, then its summary.
func follow(ctx context.Context, c client.Client, id string, poll time.Duration, cancelOnInterrupt bool) error {
	bar := newProgressLine(os.Stderr)
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		if p, err := queryProgress(context.WithoutCancel(ctx), c, id); err == nil {
			bar.show(p)
		}
		desc, err := c.DescribeWorkflowExecution(context.WithoutCancel(ctx), id, "")
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
				fmt.Fprintf(os.Stderr, "cancelling %s …\n", id)
				return c.CancelWorkflow(context.WithoutCancel(ctx), id, "")
			}
			fmt.Fprintf(os.Stderr, "backfill %s keeps running; see it with `tidemark backfill status -id %s`, stop it with `tidemark backfill cancel -id %s`\n", id, id, id)
			return nil
		case <-tick.C:
		}
	}
	if p, err := queryProgress(context.WithoutCancel(ctx), c, id); err == nil {
		bar.show(p)
	}
	bar.done()
	var sum workflows.Summary
	err := c.GetWorkflow(context.WithoutCancel(ctx), id, "").Get(context.WithoutCancel(ctx), &sum)
	var canceled *temporal.CanceledError
	var appErr *temporal.ApplicationError
	switch {
	case errors.As(err, &canceled):
		canceled.Details(&sum)
		printSummary(os.Stdout, id, "cancelled", sum)
		return fmt.Errorf("backfill %s was cancelled", id)
	case errors.As(err, &appErr) && appErr.HasDetails():
		appErr.Details(&sum)
		printSummary(os.Stdout, id, "failed", sum)
		return err
	case err != nil:
		return err
	}
	printSummary(os.Stdout, id, "done", sum)
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

func runBackfillStatus(ctx context.Context, fs *flag.FlagSet, args []string) error {
	tf := addTemporalFlags(fs)
	id := fs.String("id", "", "workflow ID of the backfill (required)")
	watch := fs.Bool("watch", false, "follow the progress until the backfill ends")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *id == "" {
		return errors.New("-id is required")
	}
	c, err := tf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if *watch {
		return follow(ctx, c, *id, 500*time.Millisecond, false)
	}
	p, err := queryProgress(ctx, c, *id)
	if err != nil {
		return err
	}
	fmt.Printf("%s: %s, %d/%d chunks (%.1f%%), %d running, %d events, %d outputs, %d errors, %v elapsed, run %d\n",
		*id, p.State, p.Done, p.Chunks, p.Percent, p.Running, p.Events, p.Outputs, p.Errors, p.Elapsed, p.Runs)
	return nil
}

func runBackfillCancel(ctx context.Context, fs *flag.FlagSet, args []string) error {
	tf := addTemporalFlags(fs)
	id := fs.String("id", "", "workflow ID of the backfill (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *id == "" {
		return errors.New("-id is required")
	}
	c, err := tf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.CancelWorkflow(ctx, *id, "")
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

func newProgressLine(f *os.File) *progressLine {
	st, err := f.Stat()
	return &progressLine{w: f, tty: err == nil && st.Mode()&os.ModeCharDevice != 0}
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

// quietSDKLogger keeps the Temporal SDK's own logging to warnings.
func quietSDKLogger() sdklog.Logger {
	return sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
}

func init() {
	register(command{name: "backfill worker", summary: "run the Temporal workers (every workflow and activity) against a Temporal server", run: runBackfillWorker})
}

// runBackfillWorker runs workers.Register's worker until interrupted: the
// process that executes backfills started by `tidemark backfill start` or
// `temporal workflow start --type Backfill`.
func runBackfillWorker(ctx context.Context, fs *flag.FlagSet, args []string) error {
	tf := addTemporalFlags(fs)
	var (
		queue    = fs.String("task-queue", workflows.TaskQueue, "task queue to poll")
		storeDir = fs.String("store", envOr("TIDEMARK_STORE_DIR", "data/eventcenter"), "embedded event center folder ($TIDEMARK_STORE_DIR)")
		regSA    = fs.Bool("register-search-attributes", true, "register the backfill's search attributes in the namespace if missing (needs operator rights)")
		par      = fs.Int("evaluators", 0, "events of a chunk evaluated in parallel (default GOMAXPROCS)")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	store, err := embedded.Open(embedded.Config{Dir: *storeDir})
	if err != nil {
		return err
	}
	defer store.Close()
	// Every job this binary knows, writing to the feature store as live
	// does; a backfill picks another sink with its "sink" field.
	var js []*job.Job
	for name, def := range jobs {
		j, err := def.New(job.Outputs(outputs.FeatureStore(store, "")))
		if err != nil {
			return fmt.Errorf("job %s: %w", name, err)
		}
		for _, ix := range def.Indexes {
			if err := store.DeclareIndex(ctx, ix); err != nil {
				return err
			}
		}
		js = append(js, j)
	}
	deps := workers.Deps{Store: store, Jobs: js, Params: params.NewEventCenter(store, nil), Workers: *par}
	if os.Getenv("TIDEMARK_S3_ENDPOINT") != "" {
		deps.S3 = s3.New(s3.Options{
			BaseEndpoint: aws.String(os.Getenv("TIDEMARK_S3_ENDPOINT")), Region: envOr("TIDEMARK_S3_REGION", "us-east-1"), UsePathStyle: true,
			Credentials: credentials.NewStaticCredentialsProvider(os.Getenv("TIDEMARK_S3_ACCESS_KEY"), os.Getenv("TIDEMARK_S3_SECRET_KEY"), ""),
		})
	}
	c, err := tf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if *regSA {
		if err := workers.EnsureSearchAttributes(ctx, c, *tf.namespace); err != nil {
			return err
		}
	}
	w := workers.New(c, *queue, deps, worker.Options{})
	if err := w.Start(); err != nil {
		return err
	}
	defer w.Stop()
	slog.Info("backfill worker", "temporal", *tf.address, "namespace", *tf.namespace, "task_queue", *queue, "store", *storeDir, "jobs", len(js), "s3", deps.S3 != nil)
	<-ctx.Done()
	return nil
}
