package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/tidemark-dev/tidemark/workflows"
)

// endedRun is a workflow run that ended with err.
type endedRun struct {
	client.WorkflowRun
	err error
}

func (r endedRun) Get(context.Context, any) error { return r.err }

type endedClient struct {
	client.Client
	err error
}

func (c endedClient) GetWorkflow(context.Context, string, string) client.WorkflowRun {
	return endedRun{err: c.err}
}

// TestOutcomeOfAFailureWithoutSummary: a backfill that failed before it
// had a summary prints its cause alone when the cause is a refusal (a
// non-retryable application error); a retryable cause that ran out of
// attempts, or one under a timeout (the server gives a timed-out attempt
// the previous attempt's failure as its cause), keeps the layers that say
// so; a termination prints as it comes. (Failure chains as the server
// sends them, converted by the SDK.)
func TestOutcomeOfAFailureWithoutSummary(t *testing.T) {
	app := func(msg, typ string, nonRetryable bool) *failurepb.Failure {
		return &failurepb.Failure{Message: msg, FailureInfo: &failurepb.Failure_ApplicationFailureInfo{ApplicationFailureInfo: &failurepb.ApplicationFailureInfo{Type: typ, NonRetryable: nonRetryable}}}
	}
	activity := func(cause *failurepb.Failure) *failurepb.Failure {
		return &failurepb.Failure{Message: "activity error", Cause: cause, FailureInfo: &failurepb.Failure_ActivityFailureInfo{ActivityFailureInfo: &failurepb.ActivityFailureInfo{
			ActivityType: &commonpb.ActivityType{Name: "BackfillPlan"}, ScheduledEventId: 15, StartedEventId: 16, RetryState: enumspb.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED}}}
	}
	const slow = `backfill: sample "s3://b/s.csv": StatusCode: 503, SlowDown`
	for _, c := range []struct {
		name    string
		failure *failurepb.Failure
		want    []string
		notWant string
	}{
		{"refused", activity(app(`backfill: sample "s.csv": header ["id" "time"] needs a key (or entity) column and a time column`, "BadSample", true)),
			[]string{`backfill bf failed: backfill: sample "s.csv": header ["id" "time"] needs a key (or entity) column and a time column (BadSample)`}, "scheduledEventID"},
		{"retries exhausted", activity(app(slow, "*fmt.wrapError", false)), []string{"activity error", "BackfillPlan", "SlowDown"}, "backfill bf failed"},
		{"timed out after a failed attempt", activity(&failurepb.Failure{Message: "activity Heartbeat timeout", Cause: app(slow, "*fmt.wrapError", false),
			FailureInfo: &failurepb.Failure_TimeoutFailureInfo{TimeoutFailureInfo: &failurepb.TimeoutFailureInfo{TimeoutType: enumspb.TIMEOUT_TYPE_HEARTBEAT}}}),
			[]string{"Heartbeat", "timeout"}, "backfill bf failed"},
		{"terminated", &failurepb.Failure{Message: "terminated", FailureInfo: &failurepb.Failure_TerminatedFailureInfo{TerminatedFailureInfo: &failurepb.TerminatedFailureInfo{}}},
			[]string{"terminated"}, "backfill bf failed"},
	} {
		err := fmt.Errorf("workflow execution error (type: Backfill, workflowID: bf, runID: r1): %w", temporal.GetDefaultFailureConverter().FailureToError(c.failure))
		var out, errOut bytes.Buffer
		a := &cli{name: "tidemark", stdout: &out, stderr: &errOut}
		got := a.outcome(context.Background(), endedClient{err: err}, "bf", false)
		if got == nil {
			t.Fatalf("%s: no error", c.name)
		}
		for _, w := range c.want {
			if !strings.Contains(got.Error(), w) {
				t.Errorf("%s: %q lacks %q", c.name, got, w)
			}
		}
		if strings.Contains(got.Error(), c.notWant) {
			t.Errorf("%s: %q has %q", c.name, got, c.notWant)
		}
	}
}

// TestWarningsOfNoEvents: the hint about an input that held no event is
// for a backfill that is done — a range's asks about the range, a sample
// table's says it holds no row; a failed backfill (whose chunk may have
// failed on its first row) gets neither.
func TestWarningsOfNoEvents(t *testing.T) {
	for _, c := range []struct {
		name string
		sum  workflows.Summary
		done bool
		want string
	}{
		{"range", workflows.Summary{}, true, "does the range hold the job's trigger events?"},
		{"sample", workflows.Summary{ChunkRows: 10}, true, "ran 0 rows and computed nothing: the sample table holds no row"},
		{"failed", workflows.Summary{ChunkRows: 10}, false, ""},
		{"failed range", workflows.Summary{}, false, ""},
	} {
		var errOut bytes.Buffer
		a := &cli{name: "tidemark", stdout: io.Discard, stderr: &errOut}
		a.warnings("bf", c.sum, c.done)
		if got := errOut.String(); c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
