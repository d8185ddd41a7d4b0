package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/auth"
	"github.com/tidemark-dev/tidemark/catalog"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/examples/credit"
	"github.com/tidemark-dev/tidemark/params"
	"github.com/tidemark-dev/tidemark/workflows"
)

// directory is an auth.Directory of fixed principals.
type directory map[string]auth.Principal

func (d directory) Principal(_ context.Context, id string) (auth.Principal, error) {
	p, ok := d[id]
	if !ok {
		return auth.Principal{}, fmt.Errorf("%w: %s", auth.ErrUnknownPrincipal, id)
	}
	return p, nil
}

var people = directory{
	"alice": {ID: "alice", Grants: []auth.Grant{{Role: auth.RoleOperator, Jobs: []string{credit.Name}}}},
	"bob":   {ID: "bob", Grants: []auth.Grant{{Role: auth.RoleApprover, Jobs: []string{credit.Name}}}},
	"carol": {ID: "carol", Grants: []auth.Grant{{Role: auth.RoleApprover}, {Role: auth.RoleOperator}}},
	"dave":  {ID: "dave", Grants: []auth.Grant{{Role: auth.RoleApprover, Jobs: []string{"other"}}}},
}

// paramEnv is a test environment running ParamChange with its real
// activities on an in-memory store and registry holding the credit job.
type paramEnv struct {
	*testsuite.TestWorkflowEnvironment
	acts     *activities.ParamChange
	registry *params.Memory
	notified []params.Version
}

func newParamEnv(t *testing.T) *paramEnv {
	t.Helper()
	st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	j, err := credit.New()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Publish(context.Background(), st, j); err != nil {
		t.Fatal(err)
	}
	e := &paramEnv{TestWorkflowEnvironment: newTestEnv(), registry: params.NewMemory(nil)}
	if err := e.registry.Declare(context.Background(), credit.Name, credit.Params()); err != nil {
		t.Fatal(err)
	}
	e.acts = &activities.ParamChange{Store: st, Registry: e.registry, Directory: people,
		Notify: func(_ context.Context, job string, v params.Version) error {
			e.notified = append(e.notified, v)
			return nil
		}}
	e.RegisterWorkflowWithOptions(workflows.ParamChange, workflow.RegisterOptions{Name: workflows.ParamChangeWorkflow})
	e.RegisterWorkflowWithOptions(workflows.ParamApply, workflow.RegisterOptions{Name: workflows.ParamApplyWorkflow})
	e.RegisterActivity(e.acts)
	return e
}

func (e *paramEnv) result(t *testing.T) workflows.ParamChangeStatus {
	t.Helper()
	if !e.IsWorkflowCompleted() {
		t.Fatal("the workflow did not complete")
	}
	if err := e.GetWorkflowError(); err != nil {
		t.Fatalf("workflow error: %v", err)
	}
	var st workflows.ParamChangeStatus
	if err := e.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// steps returns the audit trail of the credit job as "step by" strings.
func (e *paramEnv) steps(t *testing.T) []string {
	t.Helper()
	es, err := params.AuditHistory(context.Background(), e.acts.Store, credit.Name)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(es))
	for i, a := range es {
		out[i] = string(a.Step) + " " + a.By
	}
	return out
}

func change(vals params.Values) workflows.ParamChangeInput {
	return workflows.ParamChangeInput{Job: credit.Name, Changes: vals, Reason: "Q4 policy", Submitter: "alice"}
}

func (e *paramEnv) signal(after time.Duration, name, reviewer, comment string) {
	e.RegisterDelayedCallback(func() {
		e.SignalWorkflow(name, workflows.Decision{Reviewer: reviewer, Comment: comment})
	}, after)
}

// An approver's approval applies the change: a new version with the new
// values, workers notified, the audit complete with old → new values.
func TestParamChangeApproved(t *testing.T) {
	e := newParamEnv(t)
	e.signal(time.Minute, workflows.ApproveSignal, "bob", "backtest looks fine")
	e.ExecuteWorkflow(workflows.ParamChangeWorkflow, change(params.Values{"max_debt_to_income": 0.45, "repayment_window": "720h"}))
	st := e.result(t)
	if st.State != workflows.ChangeApplied || st.Version != 1 || st.Reviewer != "bob" || st.Comment != "backtest looks fine" || st.Base != 0 {
		t.Fatalf("status %+v", st)
	}
	v, vals, err := e.registry.Current(context.Background(), credit.Name)
	if err != nil || v != 1 || vals["max_debt_to_income"] != 0.45 || vals["repayment_window"] != 720*time.Hour {
		t.Fatalf("registry: %v %v %v", v, vals, err)
	}
	// The apply notifies at once; the workflow repeats it with retries.
	if !slices.Equal(e.notified, []params.Version{1, 1}) {
		t.Errorf("notified %v, want [1 1]", e.notified)
	}
	if got, want := e.steps(t), []string{"submitted alice", "approved bob", "applied " + st.ID}; !slices.Equal(got, want) {
		t.Fatalf("audit %q, want %q", got, want)
	}
	es, _ := params.AuditHistory(context.Background(), e.acts.Store, credit.Name)
	applied := es[2]
	if applied.Version != 1 || applied.New["repayment_window"] != "720h0m0s" || applied.Reason != "Q4 policy" || applied.Comment != "backtest looks fine" {
		t.Errorf("applied entry %+v", applied)
	}
}

// Self-approval, a principal without the approver role on the job and an
// unknown principal are refused (and audited); nothing changes; then a
// rejection ends the change, and nothing is stored.
func TestParamChangeRefusedThenRejected(t *testing.T) {
	e := newParamEnv(t)
	e.signal(time.Minute, workflows.ApproveSignal, "alice", "")
	e.signal(2*time.Minute, workflows.ApproveSignal, "dave", "")
	e.signal(3*time.Minute, workflows.ApproveSignal, "mallory", "")
	e.signal(4*time.Minute, workflows.ApproveSignal, "", "")
	e.signal(5*time.Minute, workflows.RejectSignal, "carol", "too aggressive")
	e.signal(6*time.Minute, workflows.ApproveSignal, "bob", "") // too late
	e.ExecuteWorkflow(workflows.ParamChangeWorkflow, change(params.Values{"max_open_orders": 5}))
	st := e.result(t)
	if st.State != workflows.ChangeRejected || st.Reviewer != "carol" || st.Version != 0 {
		t.Fatalf("status %+v", st)
	}
	if v, _, _ := e.registry.Current(context.Background(), credit.Name); v != 0 {
		t.Fatalf("a rejected change stored version %d", v)
	}
	want := []string{"submitted alice", "refused alice", "refused dave", "refused mallory", "refused ", "rejected carol"}
	if got := e.steps(t); !slices.Equal(got[:len(want)], want) {
		t.Fatalf("audit %q, want %q first", got, want)
	}
	if len(e.notified) != 0 {
		t.Errorf("workers notified of a rejected change: %v", e.notified)
	}
}

// A change nobody decides expires after its Expiry and never applies.
func TestParamChangeExpires(t *testing.T) {
	for _, tc := range []struct {
		expiry workflows.Duration
		want   time.Duration
	}{{0, workflows.DefaultChangeExpiry}, {workflows.Duration(time.Hour), time.Hour}} {
		e := newParamEnv(t)
		in := change(params.Values{"max_open_orders": 5})
		in.Expiry = tc.expiry
		start := e.Now()
		e.ExecuteWorkflow(workflows.ParamChangeWorkflow, in)
		st := e.result(t)
		if st.State != workflows.ChangeExpired || st.Expires.Sub(start).Round(time.Second) != tc.want {
			t.Fatalf("expiry %v: status %+v (expires after %v)", tc.expiry, st, st.Expires.Sub(start))
		}
		if v, _, _ := e.registry.Current(context.Background(), credit.Name); v != 0 {
			t.Fatalf("an expired change stored version %d", v)
		}
		if got, want := e.steps(t), []string{"submitted alice", "expired " + st.ID}; !slices.Equal(got, want) {
			t.Fatalf("audit %q, want %q", got, want)
		}
	}
}

// Invalid changes fail at once with a clear error and store nothing.
func TestParamChangeInvalid(t *testing.T) {
	for name, tc := range map[string]struct {
		in   workflows.ParamChangeInput
		want string
	}{
		"out of bounds": {change(params.Values{"max_open_orders": 99}), "above the maximum 20"},
		"wrong type":    {change(params.Values{"max_open_orders": "many"}), "not a valid int"},
		"unknown name":  {change(params.Values{"max_orders": 3}), `parameter "max_orders" is not declared`},
		"unknown job":   {workflows.ParamChangeInput{Job: "nope", Changes: params.Values{"x": 1}, Submitter: "alice"}, `unknown job "nope" (the catalog knows: credit-features)`},
		"empty":         {change(nil), "sets no parameter"},
		"no submitter":  {workflows.ParamChangeInput{Job: credit.Name, Changes: params.Values{"max_open_orders": 4}}, "needs a submitter"},
	} {
		t.Run(name, func(t *testing.T) {
			e := newParamEnv(t)
			e.ExecuteWorkflow(workflows.ParamChangeWorkflow, tc.in)
			err := e.GetWorkflowError()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			var appErr *temporal.ApplicationError
			if !errors.As(err, &appErr) || appErr.NonRetryable() == false {
				t.Errorf("not a non-retryable application error: %v", err)
			}
			if len(e.steps(t)) != 0 {
				t.Errorf("an invalid change was audited: %q", e.steps(t))
			}
		})
	}
}

// A change written against a version that is no longer current is a
// conflict at submit; one overtaken while it waited is a conflict at
// approval: neither overwrites the version applied in between.
func TestParamChangeConflicts(t *testing.T) {
	t.Run("stale at submit", func(t *testing.T) {
		e := newParamEnv(t)
		if _, err := e.registry.Set(context.Background(), credit.Name, params.Values{"max_open_orders": 4}, "x"); err != nil {
			t.Fatal(err)
		}
		in := change(params.Values{"max_open_orders": 5})
		base := params.Version(0)
		in.Base = &base
		e.ExecuteWorkflow(workflows.ParamChangeWorkflow, in)
		st := e.result(t)
		if st.State != workflows.ChangeConflict || !strings.Contains(st.Error, "at version 1") {
			t.Fatalf("status %+v", st)
		}
	})
	t.Run("overtaken before approval", func(t *testing.T) {
		e := newParamEnv(t)
		e.RegisterDelayedCallback(func() {
			// Another change applied meanwhile.
			if _, err := e.registry.SetIf(context.Background(), credit.Name, 0, params.Values{"max_open_orders": 4}, "carol", "param-credit-features-2"); err != nil {
				t.Error(err)
			}
		}, time.Minute)
		e.signal(2*time.Minute, workflows.ApproveSignal, "bob", "")
		e.ExecuteWorkflow(workflows.ParamChangeWorkflow, change(params.Values{"max_open_orders": 5}))
		st := e.result(t)
		if st.State != workflows.ChangeConflict || !strings.Contains(st.Error, "conflict") {
			t.Fatalf("status %+v", st)
		}
		if v, vals, _ := e.registry.Current(context.Background(), credit.Name); v != 1 || vals["max_open_orders"] != int64(4) {
			t.Fatalf("the overtaken change overwrote version 1: %v %v", v, vals)
		}
		if got, want := e.steps(t), []string{"submitted alice", "approved bob", "conflict " + st.ID}; !slices.Equal(got, want) {
			t.Fatalf("audit %q, want %q", got, want)
		}
		if len(e.notified) != 0 {
			t.Errorf("workers notified of a conflict: %v", e.notified)
		}
	})
}

// The approve update answers the applied change at once; its validator
// refuses self-approval before anything is written.
func TestParamChangeUpdate(t *testing.T) {
	e := newParamEnv(t)
	var selfErr, forbidden error
	var got workflows.ParamChangeStatus
	e.RegisterDelayedCallback(func() {
		e.UpdateWorkflow(workflows.ApproveUpdate, "self", &testsuite.TestUpdateCallback{
			OnReject:   func(err error) { selfErr = err },
			OnAccept:   func() { t.Error("self-approval accepted") },
			OnComplete: func(any, error) {},
		}, workflows.Decision{Reviewer: "alice"})
	}, time.Minute)
	e.RegisterDelayedCallback(func() {
		e.UpdateWorkflow(workflows.ApproveUpdate, "dave", &testsuite.TestUpdateCallback{
			OnReject:   func(err error) { t.Errorf("validator refused dave: %v", err) },
			OnAccept:   func() {},
			OnComplete: func(_ any, err error) { forbidden = err },
		}, workflows.Decision{Reviewer: "dave"})
	}, 2*time.Minute)
	e.RegisterDelayedCallback(func() {
		e.UpdateWorkflow(workflows.ApproveUpdate, "bob", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { t.Errorf("bob's approval refused: %v", err) },
			OnAccept: func() {},
			OnComplete: func(v any, err error) {
				if err != nil {
					t.Errorf("bob's approval: %v", err)
					return
				}
				got = v.(workflows.ParamChangeStatus)
			},
		}, workflows.Decision{Reviewer: "bob", Comment: "ok"})
	}, 3*time.Minute)
	e.ExecuteWorkflow(workflows.ParamChangeWorkflow, change(params.Values{"min_kyc_level": 3}))
	st := e.result(t)
	if selfErr == nil || !strings.Contains(selfErr.Error(), "may not decide") {
		t.Errorf("self-approval: %v", selfErr)
	}
	if forbidden == nil || !strings.Contains(forbidden.Error(), "no approver role") {
		t.Errorf("dave's approval: %v", forbidden)
	}
	if got.State != workflows.ChangeApplied || got.Version != 1 || st.State != workflows.ChangeApplied {
		t.Fatalf("update answered %+v; result %+v", got, st)
	}
}

// Histories of ParamChange recorded from real runs
// (workers.TestParamChangeLive with TIDEMARK_UPDATE_HISTORIES=1 rewrites
// them) replay on today's code: applied after a refused self-approval (by
// signal and by update), rejected, expired, a conflict at apply, and the
// ParamApply child. The broken history, validated by an activity type the
// workflow never schedules, must fail as nondeterministic.
func TestReplayParamChange(t *testing.T) {
	for _, tc := range []struct {
		file             string
		nondeterministic bool
	}{
		{"paramchange_applied.json", false},
		{"paramchange_rejected.json", false},
		{"paramchange_expired.json", false},
		{"paramchange_conflict.json", false},
		{"paramapply.json", false},
		{"paramchange_nondeterministic.json", true},
	} {
		t.Run(strings.TrimSuffix(tc.file, ".json"), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(workflows.ParamChange, workflow.RegisterOptions{Name: workflows.ParamChangeWorkflow})
			r.RegisterWorkflowWithOptions(workflows.ParamApply, workflow.RegisterOptions{Name: workflows.ParamApplyWorkflow})
			err := r.ReplayWorkflowHistoryFromJSONFile(nil, filepath.Join("testdata", tc.file))
			switch {
			case !tc.nondeterministic && err != nil:
				t.Fatalf("replay: %v", err)
			case tc.nondeterministic && err == nil:
				t.Fatal("the broken history replayed without error")
			case tc.nondeterministic && !isNondeterminism(err):
				t.Fatalf("the broken history failed, but not as nondeterministic: %v", err)
			}
		})
	}
}
