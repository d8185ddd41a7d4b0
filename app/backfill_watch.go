package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/workflows"
)

// backfillView is what the server knows of a backfill, read without a
// worker (DescribeWorkflowExecution): its execution, the progress the
// workflow last published in its memo and its running chunks' heartbeats.
// A query would need a worker to replay the workflow.
type backfillView struct {
	status    enumspb.WorkflowExecutionStatus
	taskQueue string
	start     time.Time // of the current run
	close     time.Time // zero while running
	// progress is the memo's; published is false until a worker ran the
	// workflow's first task.
	progress  workflows.Progress
	published bool
	chunks    []chunkView
}

// chunkView is a running (or retrying) chunk activity.
type chunkView struct {
	index     int
	attempt   int32
	consumed  int // events (sample rows) of this attempt, committed or not
	committed int // events whose results a retry keeps
	heartbeat time.Time
	failure   string // of the last attempt, if it failed
}

// errNoBackfill is the error of a workflow ID the namespace does not have.
var errNoBackfill = errors.New("no such backfill")

// describeBackfill reads id's latest run; errNoBackfill if there is none.
func describeBackfill(ctx context.Context, c client.Client, id string) (backfillView, error) {
	d, err := c.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return backfillView{}, fmt.Errorf("%w %q", errNoBackfill, id)
	}
	if err != nil {
		return backfillView{}, fmt.Errorf("describe backfill %s: %w", id, err)
	}
	info := d.GetWorkflowExecutionInfo()
	v := backfillView{
		status: info.GetStatus(), taskQueue: info.GetTaskQueue(),
		start: info.GetStartTime().AsTime(),
	}
	if info.GetCloseTime() != nil {
		v.close = info.GetCloseTime().AsTime()
	}
	if p := info.GetMemo().GetFields()[workflows.ProgressMemo]; p != nil {
		v.published = converter.GetDefaultDataConverter().FromPayload(p, &v.progress) == nil
	}
	for _, a := range d.GetPendingActivities() {
		if a.GetActivityType().GetName() == chunkActivity {
			v.chunks = append(v.chunks, chunkOf(a))
		}
	}
	return v, nil
}

// chunkActivity is the activity type of a backfill's chunk.
const chunkActivity = "BackfillChunk"

// chunkOf reads a pending chunk activity; its progress is its last
// heartbeat's activities.Cursor.
func chunkOf(a *workflowpb.PendingActivityInfo) chunkView {
	ch := chunkView{index: -1, attempt: a.GetAttempt(), failure: a.GetLastFailure().GetMessage()}
	if a.GetLastHeartbeatTime() != nil {
		ch.heartbeat = a.GetLastHeartbeatTime().AsTime()
	}
	var cur activities.Cursor
	if a.GetHeartbeatDetails() != nil && converter.GetDefaultDataConverter().FromPayloads(a.GetHeartbeatDetails(), &cur) == nil {
		ch.index, ch.consumed, ch.committed = cur.Result.Index, max(cur.Consumed, cur.Ordinal), cur.Ordinal
	}
	return ch
}

func (v *backfillView) running() bool {
	return v.status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
}

// elapsed is the time since the backfill's first run started, up to its
// close: computed here, so that it runs on between the workflow's
// publications.
func (v *backfillView) elapsed(now time.Time) time.Duration {
	start := v.start
	if v.published && !v.progress.Started.IsZero() {
		start = v.progress.Started
	}
	end := now
	if !v.close.IsZero() {
		end = v.close
	}
	return max(end.Sub(start), 0)
}

// events counts the events (sample rows) of finished chunks and those the
// running chunks consumed so far.
func (v *backfillView) events() int {
	n := v.progress.Events
	for _, ch := range v.chunks {
		n += ch.consumed
	}
	return n
}

// eta is the time still needed at the rate so far, and false while it
// cannot be told (nothing done yet, or no longer running). A sample
// table's progress counts rows, a range's counts chunks.
func (v *backfillView) eta(now time.Time) (time.Duration, bool) {
	p := v.progress
	var done float64
	switch {
	case p.Rows > 0:
		done = float64(v.events()) / float64(p.Rows)
	case p.Chunks > 0:
		done = float64(p.Done) / float64(p.Chunks)
	}
	if !v.running() || done <= 0 || done >= 1 {
		return 0, false
	}
	return time.Duration(float64(v.elapsed(now)) * (1 - done) / done).Round(time.Second), true
}

// state is the backfill's state in words: "starting" until a worker has
// run its first task (then the workflow's state), and once it ended its
// execution status.
func (v *backfillView) state() string {
	switch {
	case v.running() && !v.published:
		return "starting"
	case v.running():
		return v.progress.State
	}
	return strings.ToLower(strings.TrimPrefix(v.status.String(), "WORKFLOW_EXECUTION_STATUS_"))
}

// line is the backfill's progress on one line.
func (v *backfillView) line(now time.Time) string {
	p := v.progress
	el := v.elapsed(now)
	rate := 0.0
	if el > 0 {
		rate = float64(v.events()) / el.Seconds()
	}
	of := "" // Percent counts a sample table's rows, a range's chunks
	if p.Rows > 0 {
		of = " of rows"
	}
	s := fmt.Sprintf("%d/%d chunks %5.1f%%%s  %d running  %d events  %d outputs  %d errors  %.0f ev/s  %v elapsed",
		p.Done, p.Chunks, p.Percent, of, len(v.chunks), v.events(), p.Outputs, p.Errors, rate, el.Round(time.Second))
	if eta, ok := v.eta(now); ok {
		s += fmt.Sprintf("  ETA %v", eta)
	}
	return s + "  " + v.state()
}

// bar is the progress's Percent as a bar of 30 characters in brackets.
func (v *backfillView) bar() string {
	const width = 30
	filled := min(width, max(0, int(width*v.progress.Percent/100)))
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
	if filled > 0 && filled < width {
		bar = bar[:filled-1] + ">" + bar[filled:]
	}
	return "[" + bar + "]"
}

// writeChunks writes a line per running chunk.
func (v *backfillView) writeChunks(w io.Writer, now time.Time) {
	for _, ch := range v.chunks {
		name := "chunk (not started)"
		if ch.index >= 0 {
			name = fmt.Sprintf("chunk %d", ch.index)
		}
		fmt.Fprintf(w, "  %s: %d events (%d committed), attempt %d", name, ch.consumed, ch.committed, ch.attempt)
		if !ch.heartbeat.IsZero() {
			fmt.Fprintf(w, ", heartbeat %v ago", now.Sub(ch.heartbeat).Round(time.Second))
		}
		if ch.failure != "" {
			fmt.Fprintf(w, ", last attempt failed: %s", ch.failure)
		}
		fmt.Fprintln(w)
	}
}

// pollerRecency is how recent a poll must be for its worker to count as
// polling: a worker's long poll lasts about a minute, and the server
// forgets a stopped worker at once but a vanished one only after minutes.
const pollerRecency = 2 * time.Minute

// missingWorkers says which of the workflow and activity pollers of queue
// no worker has polled within pollerRecency: "" when both have one.
func missingWorkers(ctx context.Context, c client.Client, queue string) (string, error) {
	var missing []string
	for _, tq := range []struct {
		kind enumspb.TaskQueueType
		name string
	}{{enumspb.TASK_QUEUE_TYPE_WORKFLOW, "workflows"}, {enumspb.TASK_QUEUE_TYPE_ACTIVITY, "activities"}} {
		d, err := c.DescribeTaskQueue(ctx, queue, tq.kind)
		if err != nil {
			return "", fmt.Errorf("describe task queue %s: %w", queue, err)
		}
		recent := false
		for _, p := range d.GetPollers() {
			recent = recent || time.Since(p.GetLastAccessTime().AsTime()) < pollerRecency
		}
		if !recent {
			missing = append(missing, tq.name)
		}
	}
	switch len(missing) {
	case 0:
		return "", nil
	case 2:
		return fmt.Sprintf("no worker is polling task queue %s", queue), nil
	}
	return fmt.Sprintf("no worker is polling task queue %s for %s", queue, missing[0]), nil
}

// followOptions say how follow waits and ends.
type followOptions struct {
	poll time.Duration // between two reads of the progress
	// workerTimeout: how long a backfill may go without a worker polling
	// its task queue before follow gives up; waitForWorker: never.
	workerTimeout time.Duration
	waitForWorker bool
	// cancelOnInterrupt cancels the backfill when ctx ends.
	cancelOnInterrupt bool
	// allowErrors: a backfill done with errors is a success.
	allowErrors bool
}

// workerCheckEvery is the time between two checks of the task queue's
// pollers while following.
const workerCheckEvery = 2 * time.Second

// follow shows the backfill's progress until it ends, then its summary,
// and returns an error when it did not end well: cancelled, failed,
// refused by the watermark check, done with errors (unless allowErrors),
// or left with no worker for longer than workerTimeout.
func (a *cli) follow(ctx context.Context, c client.Client, id string, o followOptions) error {
	if o.poll <= 0 {
		return usagef("--poll %v: want a positive interval", o.poll)
	}
	bar := newProgressLine(a.stderr)
	defer bar.done()
	tick := time.NewTicker(o.poll)
	defer tick.Stop()
	bg := context.WithoutCancel(ctx)
	var (
		checked     time.Time
		noWorker    string    // the message while the queue lacks a worker
		noneSince   time.Time // since when
		chunksShown string    // the running chunks' lines last written (without a terminal)
	)
	for {
		v, err := describeBackfill(bg, c, id)
		if err != nil {
			return err
		}
		if !v.running() {
			bar.show(v.bar()+" "+v.line(time.Now()), true)
			break
		}
		if time.Since(checked) >= workerCheckEvery {
			checked = time.Now()
			msg, err := missingWorkers(bg, c, v.taskQueue)
			if err != nil {
				return err
			}
			switch {
			case msg != "" && noWorker == "":
				noneSince = time.Now()
				bar.note(fmt.Sprintf("%s: backfill %s waits for one (start `%s worker --task-queue %s` against this Temporal)",
					msg, id, a.name, v.taskQueue))
			case msg == "" && noWorker != "":
				bar.note(fmt.Sprintf("a worker is polling task queue %s again", v.taskQueue))
			}
			noWorker = msg
			if msg != "" && !o.waitForWorker && time.Since(noneSince) >= o.workerTimeout {
				return fmt.Errorf("%s for %v: backfill %s stays started and runs once a worker polls %s; follow it with `%s backfill status --id %s --watch`, or stop it with `%s backfill cancel --id %s` (--wait-for-worker waits without a limit)",
					msg, o.workerTimeout, id, v.taskQueue, a.name, id, a.name, id)
			}
		}
		now := time.Now()
		if bar.show(v.bar()+" "+v.line(now), false) && !bar.tty {
			// Without a terminal (a log): the chunks when they changed.
			var b strings.Builder
			v.writeChunks(&b, now)
			if b.String() != chunksShown {
				io.WriteString(a.stderr, b.String())
				chunksShown = b.String()
			}
		}
		select {
		case <-ctx.Done():
			bar.done()
			if o.cancelOnInterrupt {
				fmt.Fprintf(a.stderr, "cancelling %s …\n", id)
				return c.CancelWorkflow(bg, id, "")
			}
			fmt.Fprintf(a.stderr, "backfill %s keeps running; see it with `%s backfill status --id %s`, stop it with `%s backfill cancel --id %s`\n",
				id, a.name, id, a.name, id)
			return nil
		case <-tick.C:
		}
	}
	bar.done()
	return a.outcome(bg, c, id, o.allowErrors)
}

// outcome prints the summary of the ended backfill id and returns the
// error its end means.
func (a *cli) outcome(ctx context.Context, c client.Client, id string, allowErrors bool) error {
	var sum workflows.Summary
	err := c.GetWorkflow(ctx, id, "").Get(ctx, &sum)
	var (
		canceled *temporal.CanceledError
		appErr   *temporal.ApplicationError
	)
	switch {
	case errors.As(err, &canceled):
		canceled.Details(&sum)
		printSummary(a.stdout, id, "cancelled", sum)
		return fmt.Errorf("backfill %s was cancelled", id)
	case errors.As(err, &appErr) && appErr.Type() == workflows.ErrTypeWatermark:
		return fmt.Errorf("backfill %s refused: %s\n"+
			"  With this command: --watermark wait (wait for it, at most --watermark-timeout); for a range, an earlier --to or --watermark truncate (run up to the watermark); for a sample table, one without the rows past the watermark",
			id, appErr.Message())
	case errors.As(err, &appErr) && appErr.HasDetails():
		appErr.Details(&sum)
		printSummary(a.stdout, id, "failed", sum)
		a.warnings(id, sum, false)
		return fmt.Errorf("backfill %s failed: %s", id, endReason(err))
	case errors.As(err, &appErr) && appErr.NonRetryable() && !errors.As(err, new(*temporal.TimeoutError)):
		// Refused before it had a summary (a plan refused its input): the
		// cause alone, without the workflow and activity errors around
		// it. A retryable cause, or one under a timeout (the last
		// attempt's cause may be an earlier attempt's), keeps them.
		return fmt.Errorf("backfill %s failed: %s (%s)", id, appErr.Message(), appErr.Type())
	case err != nil:
		return err
	}
	printSummary(a.stdout, id, "done", sum)
	a.warnings(id, sum, true)
	if sum.Errors > 0 && !allowErrors {
		return fmt.Errorf("backfill %s done with %d errors (%d failed, %d stale); --allow-errors exits 0 for that", id, sum.Errors, sum.Failed, sum.Stale)
	}
	return nil
}

// endReason is the cause of an ended backfill's error.
func endReason(err error) string {
	var appErr *temporal.ApplicationError
	switch {
	case temporal.IsCanceledError(err):
		return "cancelled"
	case errors.As(err, &appErr):
		return appErr.Message()
	}
	return err.Error()
}

// warnings prints the summary's warnings where they are seen, with what
// to do about an input that held no event (done: a backfill that failed
// may have run none for another reason).
func (a *cli) warnings(id string, s workflows.Summary, done bool) {
	for _, w := range s.Warnings {
		fmt.Fprintf(a.stderr, "WARNING: backfill %s: %s\n", id, w)
	}
	switch {
	case !done:
	case s.Events == 0 && s.ChunkRows > 0: // a sample table's plan sized its chunks
		fmt.Fprintf(a.stderr, "WARNING: backfill %s ran 0 rows and computed nothing: the sample table holds no row\n", id)
	case s.Events == 0:
		fmt.Fprintf(a.stderr, "WARNING: backfill %s ran 0 events and computed nothing: does the range hold the job's trigger events? "+
			"(the dev stack's demo holds the day before its first start and live data since: --from -24h --to -1m)\n", id)
	}
}

func printSummary(w io.Writer, id, state string, s workflows.Summary) {
	rate := 0.0
	if s.Duration > 0 {
		rate = float64(s.Events) / time.Duration(s.Duration).Seconds()
	}
	chunks := fmt.Sprintf("%d chunks", s.Chunks)
	if s.ChunkRows > 0 {
		chunks += fmt.Sprintf(" of about %d sample rows", s.ChunkRows)
	}
	fmt.Fprintf(w, "backfill %s %s: job %s, %s, %d events, %d outputs, %d errors (%d failed, %d stale), %d sample rows without state, %d written, %d unchanged, %d replaced, %d skipped, %d resumed chunks, %d runs, %v (%.0f events/s)\n",
		id, state, s.Job, chunks, s.Events, s.Outputs, s.Errors, s.Failed, s.Stale, s.Missing, s.Written, s.Unchanged, s.Replaced, s.Skipped, s.Resumed, s.Runs, s.Duration, rate)
	if s.Truncated {
		fmt.Fprintf(w, "  ran up to the watermark only: to %s\n", s.To.UTC().Format(time.RFC3339Nano))
	}
	for _, e := range s.FirstErrors {
		fmt.Fprintf(w, "  %s\n", e)
	}
}

// progressLine draws the progress on one terminal line, rewritten in
// place; on anything but a terminal (CI logs, pipes) it prints a line when
// the progress changes, at most every 5 seconds, and the last one.
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

// show draws line (final: even if it is too soon after the last) and
// tells whether it did.
func (b *progressLine) show(line string, final bool) bool {
	if b.tty {
		fmt.Fprintf(b.w, "\r\033[K%s", line)
		b.drawn = true
		return true
	}
	if (final || time.Since(b.last) >= 5*time.Second) && line != b.shown {
		fmt.Fprintln(b.w, line)
		b.shown, b.last = line, time.Now()
		return true
	}
	return false
}

// note prints msg on a line of its own.
func (b *progressLine) note(msg string) {
	b.done()
	fmt.Fprintln(b.w, msg)
}

func (b *progressLine) done() {
	if b.tty && b.drawn {
		fmt.Fprintln(b.w)
		b.drawn = false
	}
}
