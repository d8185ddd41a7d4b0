package activities_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/catalog"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/examples/credit"
	"github.com/tidemark-dev/tidemark/internal/backfilltest"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/params"
)

// A backfill pinned to a parameter version runs every trigger with that
// version's values, whatever was in force at the trigger's time or is now.
func TestParamsVersionPin(t *testing.T) {
	ctx := context.Background()
	st, a, evs := fixture(t, 200)
	reg := params.NewMemory(nil)
	for _, f := range []int64{5, 7} {
		if _, err := reg.Set(ctx, backfilltest.JobName, params.Values{"factor": f}, "test"); err != nil {
			t.Fatal(err)
		}
	}
	a.Params = reg
	const src = "out.pinned"
	in := activities.ChunkInput{Backfill: "bf-pin", Job: backfilltest.JobName, From: backfilltest.T0, To: backfilltest.T0.Add(span),
		Options: activities.Options{Sink: "featurestore:" + src, ParamsVersion: 1}}
	r, _, err := runChunk(t, a, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	j := backfilltest.Job()
	n := 0
	for _, e := range evs {
		if !j.Accepts(&e) {
			continue
		}
		n++
		want, err := job.Evaluate(ctx, j, e, &job.Env{Store: st, Params: job.FixedParams(1, params.Values{"factor": int64(5)})})
		if err != nil {
			t.Fatal(err)
		}
		got, err := st.AsOf(ctx, eventcenter.AsOf{Source: src, Key: e.Key, Time: eventcenter.MaxTime})
		if err != nil {
			t.Fatalf("%s: %v", e.Key, err)
		}
		rec := job.RecordFromEvent(backfilltest.JobName, &got)
		if rec.ParamVersion != 1 || !backfilltest.Same(rec, *want.Record) {
			t.Fatalf("%s: %+v, want %+v", e.Key, rec, *want.Record)
		}
	}
	if r.Outputs != n || n == 0 {
		t.Fatalf("%d outputs, want %d", r.Outputs, n)
	}
}

// A pin to a version the job never had, or a pin with a policy, fails the
// plan without retry.
func TestParamsVersionPinRejects(t *testing.T) {
	_, a, _ := fixture(t, 10)
	a.Params = params.NewMemory(nil)
	for name, o := range map[string]activities.Options{
		"no such version":  {ParamsVersion: 3},
		"pin and policy":   {ParamsVersion: 1, Params: "current"},
		"negative version": {ParamsVersion: -1},
	} {
		var s testsuite.WorkflowTestSuite
		env := s.NewTestActivityEnvironment()
		env.RegisterActivity(a)
		_, err := env.ExecuteActivity(a.BackfillPlan, activities.PlanInput{Job: backfilltest.JobName, Options: o})
		var ae *temporal.ApplicationError
		if !errors.As(err, &ae) || !ae.NonRetryable() {
			t.Errorf("%s: want a non-retryable error, got %v", name, err)
		}
	}
}

// An approved change is stored with its declared types even on a registry
// that holds no declarations (the job never ran live): the change reaches
// ApplyParamChange through JSON, where an Int value used to arrive as a
// float64 and was stored so.
func TestApplyParamChangeStoresDeclaredTypes(t *testing.T) {
	ctx := context.Background()
	st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	j, err := credit.New()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Publish(ctx, st, j); err != nil {
		t.Fatal(err)
	}
	reg := params.NewMemory(nil) // no declarations
	a := &activities.ParamChange{Store: st, Registry: reg}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	in := activities.ApplyInput{Job: credit.Name, Change: "param-" + credit.Name + "-1", By: "bob",
		Changes: params.Values{"max_open_orders": int64(5), "max_debt_to_income": 1.0, "repayment_window": "720h0m0s"}}
	if _, err := env.ExecuteActivity(a.ApplyParamChange, in); err != nil {
		t.Fatal(err)
	}
	_, got, err := reg.Current(ctx, credit.Name)
	if err != nil {
		t.Fatal(err)
	}
	want := params.Values{"max_open_orders": int64(5), "max_debt_to_income": 1.0, "repayment_window": 720 * time.Hour}
	for k, w := range want {
		if g := got[k]; !reflect.DeepEqual(g, w) {
			t.Errorf("%s: stored %v (%T), want %v (%T)", k, g, g, w, w)
		}
	}
}
