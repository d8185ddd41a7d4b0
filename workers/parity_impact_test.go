package workers_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/client"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/ingest"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/source"
	"github.com/tidemark-dev/tidemark/wire"
	"github.com/tidemark-dev/tidemark/workers"
	"github.com/tidemark-dev/tidemark/workflows"
)

// TestLateImpactWorkflow runs the LateImpact workflow on a real Temporal
// server, started as ingest starts it (workers.LateImpactStarter, the
// ingest.Config.OnLate of `tidemark ingest`): nine applications of three
// users run live by two jobs reading the users' profiles, one opted in to
// re-runs (with lineage), one not (without); then a late profile change of
// u1. The run lists, for both jobs, exactly the triggers a brute-force
// re-evaluation of every trigger finds changed; it re-runs those of the
// opted-in job only, publishing records equal to a fresh evaluation that
// supersede the live ones. The same late event heard again starts no
// second run. With TIDEMARK_UPDATE_HISTORIES=1 it writes the history of
// the replay test (workflows/testdata/late_impact.json).
func TestLateImpactWorkflow(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, "")
	fx := newImpactFixture(t, st)
	// u1's income changed at 4m30s, stored now, behind the watermark 30m.
	late := eventcenter.Event{Source: "test.profiles", Key: "u1", Time: fx.base.Add(4*time.Minute + 30*time.Second), Op: eventcenter.OpUpdate, After: eventcenter.Row{"income": int64(50)}}
	if err := st.Append(ctx, []eventcenter.Event{late, ingest.Note(&late, fx.base.Add(30*time.Minute))}); err != nil {
		t.Fatal(err)
	}
	want := fx.bruteForce(t)
	rerun, listed, apps := fx.rerun, fx.listed, fx.apps

	srv := server(t, false)
	c := dial(t, srv)
	queue := "late-impact"
	startWorker(t, c, queue, workers.Deps{Store: st, Jobs: []*job.Job{listed, rerun}})
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	onLate := workers.LateImpactStarter(sctx, c, queue, 16, nil)
	heard := []ingest.Late{{Event: late.ID(), Watermark: fx.base.Add(30 * time.Minute)}}
	onLate(ctx, heard)
	id := activities.LateImpactID(late.ID())
	var sum workflows.LateImpactSummary
	first := waitRun(t, c, id)
	if err := c.GetWorkflow(ctx, id, first).Get(ctx, &sum); err != nil {
		t.Fatal(err)
	}

	if len(sum.Jobs) != 2 || sum.Jobs[0].Job != "impact-listed" || sum.Jobs[1].Job != "impact-rerun" {
		t.Fatalf("jobs %+v, want impact-listed and impact-rerun", sum.Jobs)
	}
	for _, ji := range sum.Jobs {
		var got []string
		for _, a := range ji.Affected {
			got = append(got, a.Trigger.Key)
		}
		if ji.Count != len(want) || !slices.Equal(got, want) {
			t.Errorf("%s: affected %v (count %d), brute force %v", ji.Job, got, ji.Count, want)
		}
	}
	if sum.Jobs[0].Rerun || sum.Jobs[0].Skipped == "" || !sum.Jobs[1].Rerun {
		t.Errorf("jobs %+v: want impact-listed skipped (no opt-in), impact-rerun re-run", sum.Jobs)
	}
	if len(sum.Reruns) != 1 || sum.Reruns[0].Job != "impact-rerun" || sum.Reruns[0].Replaced != len(want) || len(sum.Reruns[0].Failed) != 0 {
		t.Fatalf("re-runs %+v, want %d records of impact-rerun replaced", sum.Reruns, len(want))
	}
	for _, app := range apps {
		for _, j := range []*job.Job{rerun, listed} {
			e, err := st.AsOf(ctx, eventcenter.AsOf{Source: job.FeatureSource(j.Name()), Key: app.Key, Time: app.Time})
			if err != nil {
				t.Fatal(err)
			}
			got := job.RecordFromEvent(j.Name(), &e)
			superseded := j == rerun && slices.Contains(want, app.Key)
			if superseded != (got.Supersedes != "") {
				t.Errorf("%s %s: supersedes %q, want superseded %v", j.Name(), app.Key, got.Supersedes, superseded)
			}
			fresh, err := job.Evaluate(ctx, j, app, &job.Env{Mode: job.Backfill, Store: st})
			if err != nil {
				t.Fatal(err)
			}
			if superseded && fmt.Sprint(got.Features) != fmt.Sprint(fresh.Record.Features) {
				t.Errorf("%s: published %v, a fresh backfill gives %v", app.Key, got.Features, fresh.Record.Features)
			}
		}
	}

	// Heard again (ingest consuming the batch again): no second run.
	onLate(ctx, heard)
	time.Sleep(time.Second)
	if again := waitRun(t, c, id); again != first {
		t.Errorf("the late event heard again started run %s after %s", again, first)
	}
	if os.Getenv("TIDEMARK_UPDATE_HISTORIES") == "1" {
		writeHistory(t, c, id, "late_impact.json", nil)
	}
}

// waitRun waits for workflow id to have a run and returns its latest run's
// ID.
func waitRun(t *testing.T, c client.Client, id string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		desc, err := c.DescribeWorkflowExecution(context.Background(), id, "")
		if err == nil {
			return desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()
		}
		if time.Now().After(deadline) {
			t.Fatalf("workflow %s not started: %v", id, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// impactFixture: nine applications of three users (app-i of user u<i%3>,
// at base+i+1 minutes), each run live by two jobs reading the user's
// profile (income 100): impact-rerun opted in to re-runs, with lineage;
// impact-listed not, without.
type impactFixture struct {
	st            eventcenter.Store
	rerun, listed *job.Job
	apps          []eventcenter.Event
	base          time.Time
}

func newImpactFixture(t *testing.T, st eventcenter.Store) *impactFixture {
	t.Helper()
	ctx := context.Background()
	fs := outputs.FeatureStore(st, "")
	logic := func(c *job.Context) (eventcenter.Row, error) {
		u, _ := c.Trigger().After["user"].(string)
		p, err := c.Get("test.profiles", u)
		if err != nil {
			return nil, err
		}
		return eventcenter.Row{"income": p["income"]}, nil
	}
	fx := &impactFixture{st: st, base: time.Now().Add(-time.Hour).Truncate(time.Hour),
		rerun:  job.MustNew("impact-rerun", logic, job.Trigger("test.apps"), job.Lineage(), job.RerunLateData(), job.Outputs(fs)),
		listed: job.MustNew("impact-listed", logic, job.Trigger("test.apps"), job.Reads("test.profiles"), job.Outputs(fs)),
	}
	for i := range 3 {
		prof := eventcenter.Event{Source: "test.profiles", Key: fmt.Sprint("u", i), Time: fx.base, Op: eventcenter.OpInsert, After: eventcenter.Row{"income": int64(100)}}
		if err := st.Append(ctx, []eventcenter.Event{prof}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 9 {
		app := eventcenter.Event{Source: "test.apps", Key: fmt.Sprint("app-", i), Time: fx.base.Add(time.Duration(i+1) * time.Minute),
			Pos: eventcenter.Position{Offset: uint64(i)}, Op: eventcenter.OpInsert, After: eventcenter.Row{"user": fmt.Sprint("u", i%3)}}
		if err := st.Append(ctx, []eventcenter.Event{app}); err != nil {
			t.Fatal(err)
		}
		for _, j := range []*job.Job{fx.rerun, fx.listed} {
			if _, err := job.Run(ctx, j, app, &job.Env{Mode: job.Live, Store: st}); err != nil {
				t.Fatal(err)
			}
		}
		fx.apps = append(fx.apps, app)
	}
	return fx
}

// bruteForce returns the triggers whose evaluation now differs from live,
// after u1's income changed at 4m30s: app-4 and app-7.
func (fx *impactFixture) bruteForce(t *testing.T) []string {
	t.Helper()
	var want []string
	for _, app := range fx.apps {
		res, err := job.Evaluate(context.Background(), fx.rerun, app, &job.Env{Mode: job.Backfill, Store: fx.st})
		if err != nil {
			t.Fatal(err)
		}
		if res.Record.Features["income"] != int64(100) {
			want = append(want, app.Key)
		}
	}
	if !slices.Equal(want, []string{"app-4", "app-7"}) {
		t.Fatalf("brute force: %v (the fixture is not what the test means)", want)
	}
	return want
}

// TestLateImpactFromIngest is the path of `tidemark ingest --late-impact`
// on the real Kafka and a real Temporal server: ingest stores a profile
// change behind its source's watermark, notes it with that watermark, and
// its OnLate (workers.LateImpactStarter) starts the LateImpact run, which
// re-runs exactly the triggers a brute-force re-evaluation finds changed.
func TestLateImpactFromIngest(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx := t.Context()
	st := openStore(t, "")
	fx := newImpactFixture(t, st)
	wm := fx.base.Add(30 * time.Minute)
	if err := st.RegisterPartitions(ctx, "test.profiles", []int32{0}); err != nil {
		t.Fatal(err)
	}
	if err := st.AdvanceWatermark(ctx, "test.profiles", 0, wm); err != nil {
		t.Fatal(err)
	}
	topic := "impact-" + randomHex()
	reg, err := source.Parse(fmt.Appendf(nil, `
sources:
  - name: test.profiles
    kind: mysql
    topic: %s
    mysql: {database: test, table: profiles}
`, topic))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := source.EnsureTopics(ctx, pc, 1, topic, topic+".progress", topic+".dead"); err != nil {
		t.Fatal(err)
	}

	srv := server(t, false)
	c := dial(t, srv)
	queue := "late-impact-ingest"
	startWorker(t, c, queue, workers.Deps{Store: st, Jobs: []*job.Job{fx.listed, fx.rerun}})
	ictx, stop := context.WithCancel(ctx)
	in, err := ingest.New(ingest.Config{Brokers: brokers, Sources: reg, Store: st, Group: topic + ".g",
		ProgressTopic: topic + ".progress", DeadLetterTopic: topic + ".dead",
		OnLate: workers.LateImpactStarter(ictx, c, queue, 16, nil)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- in.Run(ictx) }()
	defer func() {
		stop()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("ingest: %v", err)
		}
	}()

	late := eventcenter.Event{Source: "test.profiles", Key: "u1", Time: fx.base.Add(4*time.Minute + 30*time.Second),
		Pos: eventcenter.Position{Log: 1, Offset: 1}, Op: eventcenter.OpUpdate, After: eventcenter.Row{"income": int64(50)}}
	v, err := wire.Binary.Append(nil, &late)
	if err != nil {
		t.Fatal(err)
	}
	rec := &kgo.Record{Topic: topic, Key: []byte(late.Key), Value: v, Headers: []kgo.RecordHeader{{Key: wire.HeaderCodec, Value: []byte(wire.Binary.Name())}}}
	if err := pc.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	id := activities.LateImpactID(late.ID())
	var sum workflows.LateImpactSummary
	if err := c.GetWorkflow(ctx, id, waitRun(t, c, id)).Get(ctx, &sum); err != nil {
		t.Fatal(err)
	}
	if note, ok, err := ingest.LateOf(ctx, st, late.ID()); err != nil || !ok || !note.Watermark.Equal(wm) {
		t.Errorf("late note %+v (%v, %v), want the watermark %v", note, ok, err, wm)
	}
	want := fx.bruteForce(t)
	if len(sum.Reruns) != 1 || sum.Reruns[0].Job != fx.rerun.Name() || sum.Reruns[0].Replaced != len(want) {
		t.Fatalf("re-runs %+v, want the %d triggers %v of %s", sum.Reruns, len(want), want, fx.rerun.Name())
	}
}
