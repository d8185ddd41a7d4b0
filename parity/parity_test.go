package parity_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tidemark-dev/tidemark/correction"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/examples/credit"
	"github.com/tidemark-dev/tidemark/ingest"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/live"
	"github.com/tidemark-dev/tidemark/params"
	"github.com/tidemark-dev/tidemark/parity"
)

var t0 = time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)

// world is an in-memory event center whose clock (StoredAt) the test
// moves, and a parameter registry on the same clock.
type world struct {
	t     *testing.T
	ctx   context.Context
	clock time.Time
	st    *embedded.Store
	reg   *params.Memory
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, ctx: context.Background(), clock: t0.Add(-48 * time.Hour)}
	st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true, Now: func() time.Time { return w.clock }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w.st, w.reg = st, params.NewMemory(func() time.Time { return w.clock })
	if err := credit.DeclareIndexes(w.ctx, st); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) append(evs ...eventcenter.Event) {
	w.t.Helper()
	if err := w.st.Append(w.ctx, evs); err != nil {
		w.t.Fatal(err)
	}
}

// live runs j on trigger as the live worker does (job.Evaluate, the
// current parameters, the feature store appended), one second after
// storing the trigger.
func (w *world) live(j *job.Job, trigger eventcenter.Event) {
	w.t.Helper()
	w.clock = trigger.Time.Add(time.Second)
	w.append(trigger)
	w.clock = trigger.Time.Add(2 * time.Second)
	res, err := job.Run(w.ctx, j, trigger, &job.Env{Mode: job.Live, Store: w.st, Params: job.CurrentParams(w.reg)})
	if err != nil && res.Outcome != job.Failed {
		w.t.Fatalf("live run on %s: %v", trigger.Key, err)
	}
}

func dec(s string) eventcenter.Decimal { return eventcenter.Decimal(s) }

func user(n int) string { return fmt.Sprint("u", n) }

// seed stores users 1..n, each with a profile (kyc level kyc(i)) and one
// open order, a day before t0.
func (w *world) seed(n int, kyc func(i int) int64) {
	w.clock = t0.Add(-24 * time.Hour)
	for i := 1; i <= n; i++ {
		w.append(
			eventcenter.Event{Source: credit.Profiles, Key: user(i), Time: t0.Add(-24 * time.Hour), Op: eventcenter.OpInsert,
				After: eventcenter.Row{"id": user(i), "age": int64(30), "monthly_income": dec("5000.00"), "kyc_level": kyc(i)}},
			eventcenter.Event{Source: credit.Orders, Key: fmt.Sprint("o", i), Time: t0.Add(-24 * time.Hour), Op: eventcenter.OpInsert,
				After: eventcenter.Row{"id": int64(i), "user_id": user(i), "principal": dec("500.00"), "outstanding": dec("400.00"), "status": "open"}},
		)
	}
}

// application n of user u at t0+n minutes.
func application(n int, u string) eventcenter.Event {
	at := t0.Add(time.Duration(n) * time.Minute)
	return eventcenter.Event{Source: credit.Applications, Key: fmt.Sprint("app-", n), Time: at, Pos: eventcenter.Position{Offset: uint64(n)},
		Op: eventcenter.OpInsert, After: eventcenter.Row{"id": int64(n), "user_id": u, "amount": dec("1000.00"), "term_months": int64(12), "created_at": at}}
}

// creditV2 is the example job's next version: the same features and a
// scorecard name, recording fetch lineage.
func creditV2(t *testing.T, opts ...job.Option) *job.Job {
	t.Helper()
	logic := func(c *job.Context) (eventcenter.Row, error) {
		row, err := credit.Logic(c)
		if row != nil {
			row["scorecard"] = "v2"
		}
		return row, err
	}
	all := []job.Option{job.Trigger(credit.Applications, job.Ops(eventcenter.OpInsert)), job.Version("2.0.0"), job.Lineage()}
	for _, d := range credit.Params() {
		all = append(all, job.Param(d))
	}
	j, err := job.New(credit.Name, logic, append(all, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// TestScenarioEveryDifferenceHasItsCause: live runs of the example job,
// then a job-version change, late data, a correction, a parameter change,
// a dropped and a failing live run, each at a known trigger: the report
// attributes every difference to exactly its cause, none unexplained.
//
// The live runs go through job.Run with the live mode's environment (the
// evaluation path and feature store output of live.Worker), not through
// Kafka.
func TestScenarioEveryDifferenceHasItsCause(t *testing.T) {
	w := newWorld(t)
	const n = 12
	w.seed(n, func(i int) int64 {
		if i == 9 {
			return 2 // passes min_kyc_level 2, not 3
		}
		return 4
	})
	fs := outputs.FeatureStore(w.st, "")
	v1, err := credit.New(job.Outputs(fs))
	if err != nil {
		t.Fatal(err)
	}
	v2 := creditV2(t, job.Outputs(fs))
	for i := 1; i <= n; i++ {
		u := user(i)
		switch i {
		case 11: // the live run never happened
			w.clock = t0.Add(time.Duration(i)*time.Minute + time.Second)
			w.append(application(i, u))
			continue
		case 12: // no user: the logic fails
			u = ""
		}
		j := v2
		if i <= 3 {
			j = v1 // before the deploy of 2.0.0
		}
		w.live(j, application(i, u))
	}

	// After the live runs: a late order of user 5 (before application 5),
	// stored by ingest with the orders' watermark then at t0+30m (its
	// note), a correction of user 7's profile, and min_kyc_level raised to
	// 3. The orders' watermark has since moved to t0+5h.
	w.clock = t0.Add(time.Hour)
	late := eventcenter.Event{Source: credit.Orders, Key: "o5-late", Time: t0.Add(time.Minute), Pos: eventcenter.Position{Offset: 99}, Op: eventcenter.OpInsert,
		After: eventcenter.Row{"id": int64(99), "user_id": user(5), "principal": dec("900.00"), "outstanding": dec("900.00"), "status": "open"}}
	w.append(late, ingest.Note(&late, t0.Add(30*time.Minute)))
	if err := w.st.AdvanceWatermark(w.ctx, credit.Orders, 0, t0.Add(5*time.Hour)); err != nil {
		t.Fatal(err)
	}
	// The drift ledger of the profiles: the run that stored the correction
	// (the latest one started before it was stored) among an older run, a
	// skipped one and one started after it.
	w.clock = t0.Add(2 * time.Hour)
	if err := correction.WriteLedger(w.ctx, w.st, []correction.Entry{
		{Run: "correction-old", Source: credit.Profiles, Started: w.clock.Add(-30 * time.Minute)},
		{Run: "correction-7", Source: credit.Profiles, Started: w.clock.Add(-2 * time.Second)},
		{Run: "correction-skipped", Source: credit.Profiles, Started: w.clock.Add(-time.Second), Skipped: "no drift"},
		{Run: "correction-later", Source: credit.Profiles, Started: w.clock.Add(time.Second)},
	}); err != nil {
		t.Fatal(err)
	}
	w.append(eventcenter.Event{Source: credit.Profiles, Key: user(7), Time: t0.Add(-24 * time.Hour), Pos: eventcenter.Position{Log: 1, Offset: 1 << 16}, Op: eventcenter.OpCorrection,
		After: eventcenter.Row{"id": user(7), "age": int64(30), "monthly_income": dec("2500.00"), "kyc_level": int64(4)}})
	w.clock = t0.Add(3 * time.Hour)
	if _, err := w.reg.Set(w.ctx, credit.Name, params.Values{"min_kyc_level": int64(3)}, "test"); err != nil {
		t.Fatal(err)
	}

	rep, err := parity.Compare(w.ctx, parity.Config{Job: v2, Store: w.st, Params: w.reg}, t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]parity.Cause{
		"app-1": parity.JobVersion, "app-2": parity.JobVersion, "app-3": parity.JobVersion,
		"app-5": parity.LateData, "app-7": parity.Correction, "app-9": parity.Params,
		"app-11": parity.LiveMissing, "app-12": parity.LiveFailed,
	}
	got := map[string]parity.Cause{}
	for _, d := range rep.Diffs {
		got[d.Trigger.Key] = d.Cause
		t.Logf("%s: %s — %s", d.Trigger.Key, d.Cause, d.Detail)
	}
	for k, c := range want {
		if got[k] != c {
			t.Errorf("%s: cause %q, want %q", k, got[k], c)
		}
	}
	if len(got) != len(want) || rep.Counts[parity.Unexplained] != 0 || rep.Triggers != n || rep.Agree != n-len(want) {
		t.Fatalf("report: %d triggers, %d agree, counts %v; want %d, %d and no other difference", rep.Triggers, rep.Agree, rep.Counts, n, n-len(want))
	}
	for _, d := range rep.Diffs {
		switch d.Cause {
		case parity.LateData:
			if len(d.Late) != 1 || d.Late[0].Event.Key != "o5-late" || d.Late[0].AfterLive != time.Hour-(5*time.Minute+2*time.Second) {
				t.Errorf("late data: %+v, want o5-late stored 54m58s after the live run", d.Late)
			}
			if l := d.Late[0]; l.BehindWatermark != 29*time.Minute || !l.Watermark.Equal(t0.Add(30*time.Minute)) {
				t.Errorf("late data: %v behind the watermark, want 29m (behind the watermark when stored, t0+30m)", l.BehindWatermark)
			}
			if d.LiveLineage == nil || len(d.LiveLineage.Fetches) != 3 {
				t.Errorf("late data: live lineage %+v, want the live run's 3 fetches", d.LiveLineage)
			}
		case parity.Correction:
			if d.Run != "correction-7" || len(d.Corrected) != 1 || d.Corrected[0].Key != user(7) {
				t.Errorf("correction: run %q, corrected %v; want correction-7 of u7", d.Run, d.Corrected)
			}
		}
	}
}

// TestWallClockJobIsUnexplained: a job whose output depends on the wall
// clock differs from its own re-evaluation on the same inputs: every
// trigger is unexplained, with the live record and lineage, both
// re-evaluations' records and the events they read.
func TestWallClockJobIsUnexplained(t *testing.T) {
	w := newWorld(t)
	w.seed(3, func(int) int64 { return 4 })
	fs := outputs.FeatureStore(w.st, "")
	j := job.MustNew("clocky", func(c *job.Context) (eventcenter.Row, error) {
		if _, err := c.Get(credit.Profiles, c.Trigger().After["user_id"].(string)); err != nil {
			return nil, err
		}
		return eventcenter.Row{"computed_at": time.Now().UnixNano()}, nil
	}, job.Trigger(credit.Applications), job.Outputs(fs), job.Lineage())
	for i := 1; i <= 3; i++ {
		w.live(j, application(i, user(i)))
	}
	rep, err := parity.Compare(w.ctx, parity.Config{Job: j, Store: w.st}, t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Counts[parity.Unexplained] != 3 || rep.Differences() != 3 {
		t.Fatalf("counts %v, want 3 unexplained", rep.Counts)
	}
	d := rep.Diffs[0]
	if d.Live == nil || d.Then == nil || d.Now == nil || d.LiveLineage == nil || len(d.ThenRead) == 0 || len(d.NowRead) == 0 {
		t.Fatalf("unexplained difference without the live and re-evaluated records, the live lineage and the reads: %+v", d)
	}
}

// TestMetricsObserve: a report's counts reach the counters by job and cause.
func TestMetricsObserve(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := parity.NewMetrics(reg)
	m.Observe(&parity.Report{Job: "j", Triggers: 7, Counts: map[parity.Cause]int{parity.LateData: 2, parity.Unexplained: 1}})
	m.Observe(&parity.Report{Job: "j", Triggers: 3, Counts: map[parity.Cause]int{parity.LateData: 1}})
	if got := testutil.ToFloat64(m.Triggers.WithLabelValues("j")); got != 10 {
		t.Errorf("triggers %v, want 10", got)
	}
	if got := testutil.ToFloat64(m.Differences.WithLabelValues("j", string(parity.LateData))); got != 3 {
		t.Errorf("late-data %v, want 3", got)
	}
	if got := testutil.ToFloat64(m.Differences.WithLabelValues("j", string(parity.Unexplained))); got != 1 {
		t.Errorf("unexplained %v, want 1", got)
	}
}

// TestEventStoredDuringTheLiveRun: an order stored after the live run's
// fetches but before its record is not an unexplained difference but late
// data: what was stored when the trigger was gives the live answer.
func TestEventStoredDuringTheLiveRun(t *testing.T) {
	w := newWorld(t)
	w.seed(1, func(int) int64 { return 4 })
	fs := outputs.FeatureStore(w.st, "")
	j := creditV2(t)
	tr := application(1, user(1))
	w.clock = tr.Time.Add(time.Second)
	w.append(tr)
	res, err := job.Evaluate(w.ctx, j, tr, &job.Env{Mode: job.Live, Store: w.st})
	if err != nil {
		t.Fatal(err)
	}
	w.clock = tr.Time.Add(1500 * time.Millisecond)
	w.append(eventcenter.Event{Source: credit.Orders, Key: "o1-race", Time: t0, Pos: eventcenter.Position{Offset: 7}, Op: eventcenter.OpInsert,
		After: eventcenter.Row{"id": int64(7), "user_id": user(1), "principal": dec("900.00"), "outstanding": dec("900.00"), "status": "open"}})
	w.clock = tr.Time.Add(2 * time.Second)
	if err := fs.Write(w.ctx, []job.Record{*res.Record}); err != nil {
		t.Fatal(err)
	}
	rep, err := parity.Compare(w.ctx, parity.Config{Job: j, Store: w.st, Params: w.reg}, t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Counts[parity.LateData] != 1 || rep.Differences() != 1 || rep.Diffs[0].Late[0].Event.Key != "o1-race" {
		t.Fatalf("counts %v, diffs %+v; want one late-data naming o1-race", rep.Counts, rep.Diffs)
	}
}

// staleSource is a job.Fallback answering from a source row that the
// event center never got (a change the CDC lost, a time column that lies):
// profiles of every user, with another income.
type staleSource struct{}

func (staleSource) Covers(source string) bool { return source == credit.Profiles }

func (staleSource) Read(_ context.Context, source, key string, at time.Time) (eventcenter.Event, error) {
	return eventcenter.Event{Source: source, Key: key, Time: t0.Add(-12 * time.Hour), Op: eventcenter.OpSnapshot,
		After: eventcenter.Row{"id": key, "age": int64(30), "monthly_income": dec("9000.00"), "kyc_level": int64(4)}}, nil
}

// TestFallbackServedLiveRunIsLiveStale: at FetchStrongNoDelay, with the
// profiles' watermark behind, the live run of application 1 reads its
// profile from the source fallback, which disagrees with the event
// center. Its record is no determinism bug: its lineage names a profile
// the event center never held, so the difference is live-stale.
func TestFallbackServedLiveRunIsLiveStale(t *testing.T) {
	w := newWorld(t)
	w.seed(2, func(int) int64 { return 4 })
	fs := outputs.FeatureStore(w.st, "")
	j := creditV2(t, job.Outputs(fs), job.Consistency(job.FetchStrongNoDelay), job.WaitTimeout(10*time.Millisecond))
	for _, src := range []string{credit.Applications, credit.Orders, credit.Repayments} {
		if err := w.st.AdvanceWatermark(w.ctx, src, 0, t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	tr := application(1, user(1))
	w.clock = tr.Time.Add(time.Second)
	w.append(tr)
	w.clock = tr.Time.Add(2 * time.Second)
	res, err := job.Run(w.ctx, j, tr, &job.Env{Mode: job.Live, Store: w.st, Fallback: staleSource{}})
	if err != nil || res.Stats.Fallbacks != 1 {
		t.Fatalf("live run: %v, %d fallback reads; want one", err, res.Stats.Fallbacks)
	}
	w.clock = t0.Add(time.Hour)
	if err := w.st.AdvanceWatermark(w.ctx, credit.Profiles, 0, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	rep, err := parity.Compare(w.ctx, parity.Config{Job: j, Store: w.st, Params: w.reg}, t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Counts[parity.LiveStale] != 1 || rep.Differences() != 1 {
		t.Fatalf("counts %v, want one live-stale (%+v)", rep.Counts, rep.Diffs)
	}
	t.Log(rep.Diffs[0].Detail)
}

// gaveUp is a parity.DeadLetters of fixed dead letters.
type gaveUp []live.DeadLetter

func (g gaveUp) GaveUp(_ context.Context, job string, from, to time.Time) ([]live.DeadLetter, error) {
	return g, nil
}

func deadLetter(e eventcenter.Event, outcome string) live.DeadLetter {
	return live.DeadLetter{Job: credit.Name, JobVersion: "2.0.0", Outcome: outcome, Error: outcome + " run",
		Trigger: live.DeadTrigger{Source: e.Source, Key: e.Key, Time: e.Time, Pos: [2]uint64{e.Pos.Log, e.Pos.Offset}}}
}

// TestDeadLettersNameTheMissingRuns: triggers without a live record that
// the live worker dead-lettered are live-stale ("stale") or live-failed
// (any other outcome: "failed", "refused", "invalid"), whatever a
// re-evaluation gives now; one without a dead letter is live-missing; a
// dead letter of a trigger that has a live record (a later redelivery
// succeeded) changes nothing.
func TestDeadLettersNameTheMissingRuns(t *testing.T) {
	w := newWorld(t)
	w.seed(5, func(int) int64 { return 4 })
	fs := outputs.FeatureStore(w.st, "")
	j := creditV2(t, job.Outputs(fs))
	var dead gaveUp
	for i := 1; i <= 5; i++ {
		a := application(i, user(i))
		switch i {
		case 1:
			w.live(j, a)
			dead = append(dead, deadLetter(a, "stale"))
		case 2:
			w.append(a)
			dead = append(dead, deadLetter(a, "stale"))
		case 3:
			w.append(a)
			dead = append(dead, deadLetter(a, "refused"))
		case 4:
			w.append(a)
			dead = append(dead, deadLetter(a, "failed"))
		case 5:
			w.append(a)
		}
	}
	rep, err := parity.Compare(w.ctx, parity.Config{Job: j, Store: w.st, Params: w.reg, DeadLetters: dead}, t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]parity.Cause{"app-2": parity.LiveStale, "app-3": parity.LiveFailed, "app-4": parity.LiveFailed, "app-5": parity.LiveMissing}
	got := map[string]parity.Cause{}
	for _, d := range rep.Diffs {
		got[d.Trigger.Key] = d.Cause
		if d.Cause != parity.LiveMissing && d.Err == "" {
			t.Errorf("%s: %s without the dead letter's error", d.Trigger.Key, d.Cause)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || rep.Agree != 1 {
		t.Fatalf("causes %v (%d agree), want %v and app-1 in parity", got, rep.Agree, want)
	}
}
