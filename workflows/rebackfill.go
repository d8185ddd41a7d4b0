package workflows

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tidemark-dev/tidemark/activities"
)

// Re-backfills after a correction.
const (
	// RebackfillMemo is the memo field of a Correction listing the
	// re-backfills it started.
	RebackfillMemo = "rebackfills"
	// DefaultRebackfillParallelism is CorrectionInput.RebackfillParallelism's
	// default.
	DefaultRebackfillParallelism = 2
	// versionRebackfill: Correction histories from it re-backfill.
	versionRebackfill workflow.Version = 1
)

// RebackfillSource is a source a correction run changed: why a re-backfill
// was started.
type RebackfillSource struct {
	Source string `json:"source"`
	// Keys is the number of keys corrected.
	Keys int `json:"keys"`
	// First is the earliest time of the corrections.
	First time.Time `json:"first"`
}

// Rebackfill is one job's re-backfill after a correction run: the Backfill
// workflow ID, the job's trigger events From <= time < To it replays, and
// why.
type Rebackfill struct {
	Job string `json:"job"`
	// ID is the child Backfill workflow's ID: <correction run>/rebackfill/<job>.
	ID   string    `json:"id"`
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Clipped: the earliest correction was older than the job's max range;
	// From is To less the max range.
	Clipped bool `json:"clipped,omitempty"`
	// Sources the correction changed that the job triggers on or reads.
	Sources []RebackfillSource `json:"sources"`
	// Sink and Write of the backfill (the job's opt-in).
	Sink  string `json:"sink"`
	Write string `json:"write"`
	// Summary is the backfill's result when it succeeded, Error its
	// failure. Earlier: it had completed in an earlier attempt of this
	// correction (a retried run), so it was not started again.
	Summary *Summary `json:"summary,omitempty"`
	Error   string   `json:"error,omitempty"`
	Earlier bool     `json:"earlier,omitempty"`
}

// Reason is a line telling why the re-backfill runs: "source (n keys
// from T), …".
func (r *Rebackfill) Reason() string {
	var parts []string
	for _, s := range r.Sources {
		parts = append(parts, s.Source+" ("+strconv.Itoa(s.Keys)+" keys from "+s.First.UTC().Format(time.RFC3339)+")")
	}
	return strings.Join(parts, ", ")
}

// planRebackfills returns, per job (in jobs' order), the range whose
// outputs the changes may have changed: a correction at time T of a key
// changes what every fetch of that key's source reads as of T or later, so
// every trigger at or after T may output differently — not only up to the
// key's next event, since a job may read history (windows, counts) — hence
// [earliest correction of the sources the job reads, now). Ranges of one
// job all end now, so they merge into one, starting at the earliest; it is
// clipped to the job's MaxRange.
func planRebackfills(run string, changes []RebackfillSource, jobs []activities.RebackfillJob, now time.Time) []Rebackfill {
	var out []Rebackfill
	for _, j := range jobs {
		r := Rebackfill{Job: j.Job, ID: run + "/rebackfill/" + j.Job, To: now, Sink: j.Sink, Write: j.Write}
		for _, c := range changes {
			if !slices.Contains(j.Sources, c.Source) {
				continue
			}
			r.Sources = append(r.Sources, c)
			if r.From.IsZero() || c.First.Before(r.From) {
				r.From = c.First
			}
		}
		if len(r.Sources) == 0 {
			continue
		}
		if j.MaxRange > 0 && r.From.Before(now.Add(-j.MaxRange)) {
			r.From, r.Clipped = now.Add(-j.MaxRange), true
		}
		if !r.From.Before(r.To) {
			continue // corrections dated after now: no trigger seen yet
		}
		out = append(out, r)
	}
	return out
}

// rebackfill starts the re-backfills of the jobs opted in that read the
// changed sources, as child Backfill workflows, at most parallelism at
// once, and waits for them (they are terminated with the correction, the
// default parent close policy). publish is called with the plan and
// whenever one ends. A failed backfill is noted in its Rebackfill; only a
// failure to list the jobs is the workflow's error.
func rebackfill(ctx workflow.Context, run string, changes []RebackfillSource, parallelism int, heartbeat Duration, publish func([]Rebackfill)) ([]Rebackfill, error) {
	if len(changes) == 0 {
		return nil, nil
	}
	var a *activities.Correction
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 10},
	})
	var names []string
	for _, c := range changes {
		names = append(names, c.Source)
	}
	var jobs []activities.RebackfillJob
	if err := workflow.ExecuteActivity(actx, a.CorrectionRebackfillJobs, names).Get(ctx, &jobs); err != nil {
		return nil, err
	}
	rs := planRebackfills(run, changes, jobs, workflow.Now(ctx))
	if len(rs) == 0 {
		return nil, nil
	}
	publish(rs)
	sel := workflow.NewSelector(ctx)
	running := 0
	for next := 0; next < len(rs) || running > 0; {
		for running < parallelism && next < len(rs) {
			r := &rs[next]
			next++
			cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
				WorkflowID: r.ID,
				// A retried correction starts again a backfill that did not
				// complete (it is idempotent per ID), not one that did.
				WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
				StaticSummary:         "re-backfill of " + r.Job + " after correction " + run,
				StaticDetails:         r.Reason(),
			})
			in := BackfillInput{Job: r.Job, From: r.From, To: r.To, Watermark: WatermarkTruncate, HeartbeatTimeout: heartbeat}
			in.Sink, in.Write = r.Sink, r.Write
			f := workflow.ExecuteChildWorkflow(cctx, BackfillWorkflow, in)
			running++
			sel.AddFuture(f, func(f workflow.Future) {
				running--
				var sum Summary
				if err := f.Get(ctx, &sum); err != nil {
					var dup *temporal.ChildWorkflowExecutionAlreadyStartedError
					if errors.As(err, &dup) {
						r.Earlier = true
					} else {
						r.Error = errorMessage(err)
						workflow.GetLogger(ctx).Warn("correction: re-backfill failed", "job", r.Job, "error", err)
					}
				} else {
					r.Summary = &sum
				}
				publish(rs)
			})
		}
		sel.Select(ctx)
	}
	return rs, nil
}
