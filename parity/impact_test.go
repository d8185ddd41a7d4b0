package parity_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/correction"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/examples/credit"
	"github.com/tidemark-dev/tidemark/ingest"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/parity"
)

// TestImpactRerunsExactlyTheAffectedTriggers: after live runs of ten
// applications, late events (an order, a repayment, a correction of a
// profile, a delete of an order, an order after its user's application, an
// order stored late but before its user's application ran) change some
// runs' inputs. Impact lists exactly the triggers that a brute-force
// re-evaluation of every trigger finds changed — from the fetch lineage, and
// for a job without lineage from its declared sources — and Rerun
// publishes, for exactly those, records equal to a fresh evaluation that
// supersede the live ones.
func TestImpactRerunsExactlyTheAffectedTriggers(t *testing.T) {
	t.Run("lineage", func(t *testing.T) {
		w := newWorld(t)
		checkImpact(t, w, creditV2(t, job.Outputs(outputs.FeatureStore(w.st, "")), job.RerunLateData()))
	})
	t.Run("declared sources", func(t *testing.T) {
		w := newWorld(t)
		j, err := credit.New(job.Outputs(outputs.FeatureStore(w.st, "")), job.RerunLateData(), job.Reads(credit.Orders, credit.Repayments, credit.Profiles))
		if err != nil {
			t.Fatal(err)
		}
		checkImpact(t, w, j)
	})
}

func checkImpact(t *testing.T, w *world, j *job.Job) {
	const n = 10
	w.seed(n, func(int) int64 { return 4 })
	// An order of user 10 stored 70m after its time, but before the live
	// run of application 10, which read it: late, yet no live record's
	// change.
	early := eventcenter.Event{Source: credit.Orders, Key: "o10-early", Time: t0.Add(-time.Hour), Pos: eventcenter.Position{Offset: 103}, Op: eventcenter.OpInsert,
		After: eventcenter.Row{"id": int64(103), "user_id": user(10), "principal": dec("900.00"), "outstanding": dec("900.00"), "status": "open"}}
	for i := 1; i <= n; i++ {
		if i == 10 {
			w.clock = t0.Add(10 * time.Minute)
			w.append(early)
		}
		w.live(j, application(i, user(i)))
	}
	w.clock = t0.Add(time.Hour)
	late := []eventcenter.Event{
		early, // stored already: appending it again changes nothing
		{Source: credit.Orders, Key: "o2-late", Time: t0.Add(time.Minute), Pos: eventcenter.Position{Offset: 100}, Op: eventcenter.OpInsert,
			After: eventcenter.Row{"id": int64(100), "user_id": user(2), "principal": dec("900.00"), "outstanding": dec("900.00"), "status": "open"}},
		{Source: credit.Repayments, Key: "r4-late", Time: t0, Pos: eventcenter.Position{Offset: 101}, Op: eventcenter.OpInsert,
			After: eventcenter.Row{"id": int64(101), "user_id": user(4), "order_id": int64(4), "amount": dec("50.00"), "late": true, "paid_at": t0.Add(-time.Hour)}},
		{Source: credit.Profiles, Key: user(6), Time: t0.Add(-24 * time.Hour), Pos: eventcenter.Position{Log: 1, Offset: 1 << 16}, Op: eventcenter.OpCorrection,
			After: eventcenter.Row{"id": user(6), "age": int64(30), "monthly_income": dec("2500.00"), "kyc_level": int64(4)}},
		{Source: credit.Orders, Key: "o8-after", Time: t0.Add(9 * time.Minute), Pos: eventcenter.Position{Offset: 102}, Op: eventcenter.OpInsert,
			After: eventcenter.Row{"id": int64(102), "user_id": user(8), "principal": dec("900.00"), "outstanding": dec("900.00"), "status": "open"}},
		// User 3's order deleted before application 3 (a late delete, or a
		// correction leaving the key absent): read by no run now.
		{Source: credit.Orders, Key: "o3", Time: t0.Add(time.Minute), Pos: eventcenter.Position{Offset: 104}, Op: eventcenter.OpDelete,
			Before: eventcenter.Row{"id": int64(3), "user_id": user(3), "principal": dec("500.00"), "outstanding": dec("400.00"), "status": "open"}},
	}
	w.append(late...)
	if err := correction.WriteLedger(w.ctx, w.st, []correction.Entry{{Run: "c-1", Source: credit.Profiles, Started: w.clock}}); err != nil {
		t.Fatal(err)
	}
	stored := make([]eventcenter.Event, len(late)) // as stored: with StoredAt
	for i, e := range late {
		evs, err := w.st.History(w.ctx, eventcenter.HistoryQuery{Source: e.Source, Key: e.Key, From: e.Time, To: e.Time.Add(time.Nanosecond)})
		if err != nil {
			t.Fatal(err)
		}
		k := slices.IndexFunc(evs, func(s eventcenter.Event) bool { return s.Pos == e.Pos })
		if k < 0 {
			t.Fatalf("late event %s not stored", e.Key)
		}
		stored[i] = evs[k]
	}

	found, err := parity.LateEvents(w.ctx, w.st, []string{credit.Applications, credit.Orders, credit.Repayments, credit.Profiles}, t0.Add(-48*time.Hour), t0.Add(time.Hour), 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != len(stored) {
		t.Fatalf("LateEvents found %d events, want the %d late ones", len(found), len(stored))
	}
	for _, e := range found {
		if !slices.ContainsFunc(stored, func(s eventcenter.Event) bool { return s.ID() == e.ID() }) {
			t.Fatalf("LateEvents found %s %s, not late", e.Source, e.Key)
		}
	}

	// Brute force: every trigger, re-evaluated now, whose record differs
	// from its live one.
	var want []string
	for i := 1; i <= n; i++ {
		tr := application(i, user(i))
		res, err := job.Evaluate(w.ctx, j, tr, &job.Env{Store: w.st, Params: job.CurrentParams(w.reg)})
		if err != nil {
			t.Fatal(err)
		}
		e, err := w.st.AsOf(w.ctx, eventcenter.AsOf{Source: job.FeatureSource(j.Name()), Key: tr.Key, Time: tr.Time})
		if err != nil {
			t.Fatal(err)
		}
		if live := job.RecordFromEvent(j.Name(), &e); fmt.Sprint(live.Features) != fmt.Sprint(res.Record.Features) {
			want = append(want, tr.Key)
		}
	}
	if !slices.Equal(want, []string{"app-2", "app-3", "app-4", "app-6"}) {
		t.Fatalf("brute force: %v (the fixture is not what the test means)", want)
	}

	keys := func(as []parity.Affected) []string {
		var ks []string
		for _, a := range as {
			ks = append(ks, a.Trigger.Key)
		}
		return ks
	}
	cfg := parity.Config{Job: j, Store: w.st, Params: w.reg}
	affected, err := parity.Impact(w.ctx, cfg, stored, t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got := keys(affected); !slices.Equal(got, want) {
		t.Fatalf("impact: %v, brute force %v (lineage %v)", got, want, j.RecordsLineage())
	}
	if _, _, err := parity.Rerun(w.ctx, parity.Config{Job: creditV2(t), Store: w.st}, affected, "impact-1"); err == nil {
		t.Fatal("a job that did not opt in was re-run")
	}
	counts, failed, err := parity.Rerun(w.ctx, cfg, affected, "impact-1")
	if err != nil || len(failed) != 0 {
		t.Fatalf("rerun: %v, failed %v", err, failed)
	}
	if counts.Replaced != len(want) || counts.Written != 0 {
		t.Fatalf("rerun wrote %+v, want %d replaced", counts, len(want))
	}
	// A retry of the same re-run (its activity retried after it published)
	// stores no second version, nor does another re-run.
	if again, _, err := parity.Rerun(w.ctx, cfg, affected, "impact-1"); err != nil || again != counts {
		t.Fatalf("rerun retried: %+v, %v; want the first run's counts %+v", again, err, counts)
	}
	// Another re-run of the same triggers (`tidemark parity impact --rerun`
	// after the LateImpact run) finds them superseded by what it computes:
	// it publishes nothing.
	if other, _, err := parity.Rerun(w.ctx, cfg, affected, "impact-2"); err != nil || other != (outputs.WriteCounts{Unchanged: len(want)}) {
		t.Fatalf("another re-run: %+v, %v; want %d unchanged", other, err, len(want))
	}
	for _, a := range affected {
		versions, err := w.st.History(w.ctx, eventcenter.HistoryQuery{Source: job.FeatureSource(j.Name()), Key: a.Trigger.Key, From: a.Trigger.Time, To: a.Trigger.Time.Add(time.Nanosecond)})
		if err != nil {
			t.Fatal(err)
		}
		if len(versions) != 2 {
			t.Errorf("%s: %d versions of its record, want the live one and one replacement", a.Trigger.Key, len(versions))
		}
	}
	for i := 1; i <= n; i++ {
		tr := application(i, user(i))
		fresh, err := job.Evaluate(w.ctx, j, tr, &job.Env{Mode: job.Backfill, Store: w.st, Params: job.CurrentParams(w.reg)})
		if err != nil {
			t.Fatal(err)
		}
		e, err := w.st.AsOf(w.ctx, eventcenter.AsOf{Source: job.FeatureSource(j.Name()), Key: fresh.Record.Entity, Time: tr.Time})
		if err != nil {
			t.Fatal(err)
		}
		got := job.RecordFromEvent(j.Name(), &e)
		affectedNow := slices.Contains(want, tr.Key)
		if affectedNow != (got.Supersedes != "") {
			t.Errorf("%s: supersedes %q, affected %v", tr.Key, got.Supersedes, affectedNow)
		}
		if affectedNow && (got.Supersedes[:len(got.ID)] != got.ID || fmt.Sprint(got.Features) != fmt.Sprint(fresh.Record.Features)) {
			t.Errorf("%s: published %v (supersedes %s), a fresh backfill gives %v", tr.Key, got.Features, got.Supersedes, fresh.Record.Features)
		}
	}
}

// TestNotedLateEvents: the events ingest noted late are returned as
// stored, in replay order; an event without a note, however late, is not.
func TestNotedLateEvents(t *testing.T) {
	w := newWorld(t)
	w.clock = t0.Add(time.Hour)
	order := func(n int, at time.Time) eventcenter.Event {
		return eventcenter.Event{Source: credit.Orders, Key: fmt.Sprint("o", n), Time: at, Pos: eventcenter.Position{Offset: uint64(n)}, Op: eventcenter.OpInsert,
			After: eventcenter.Row{"id": int64(n), "user_id": user(n), "principal": dec("900.00"), "outstanding": dec("900.00"), "status": "open"}}
	}
	a, b, c := order(1, t0.Add(2*time.Minute)), order(2, t0.Add(time.Minute)), order(3, t0.Add(3*time.Minute))
	w.append(a, b, c, ingest.Note(&a, t0.Add(10*time.Minute)), ingest.Note(&b, t0.Add(10*time.Minute)))
	got, err := parity.NotedLateEvents(w.ctx, w.st, []string{credit.Orders, credit.Profiles}, t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Key != "o2" || got[1].Key != "o1" || !got[0].StoredAt.Equal(w.clock) {
		t.Fatalf("noted late events %+v, want o2 then o1, as stored", got)
	}
}

// TestNotedLateEventsRecoverTheImpact: ingest stored a late order with its
// note and died before OnLate started the impact run; the note is enough
// (`tidemark parity impact --noted`): the sources the job's live runs read
// (from their lineage: the job declares none) hold the noted event, and
// Impact lists the one live record it changes.
func TestNotedLateEventsRecoverTheImpact(t *testing.T) {
	w := newWorld(t)
	w.seed(3, func(int) int64 { return 4 })
	j := creditV2(t, job.Outputs(outputs.FeatureStore(w.st, "")))
	for i := 1; i <= 3; i++ {
		w.live(j, application(i, user(i)))
	}
	w.clock = t0.Add(time.Hour)
	late := eventcenter.Event{Source: credit.Orders, Key: "o2-late", Time: t0.Add(time.Minute), Pos: eventcenter.Position{Offset: 100}, Op: eventcenter.OpInsert,
		After: eventcenter.Row{"id": int64(100), "user_id": user(2), "principal": dec("900.00"), "outstanding": dec("900.00"), "status": "open"}}
	w.append(ingest.Note(&late, t0.Add(30*time.Minute)))
	w.append(late)

	cfg := parity.Config{Job: j, Store: w.st, Params: w.reg}
	from, to := t0, t0.Add(time.Hour)
	sources, err := parity.ImpactSources(w.ctx, cfg, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{credit.Applications, credit.Orders, credit.Profiles, credit.Repayments}; !slices.Equal(sources, slices.Sorted(slices.Values(want))) {
		t.Fatalf("impact sources %v, want %v", sources, want)
	}
	noted, err := parity.NotedLateEvents(w.ctx, w.st, sources, from.Add(-7*24*time.Hour), to)
	if err != nil {
		t.Fatal(err)
	}
	affected, err := parity.Impact(w.ctx, cfg, noted, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if len(noted) != 1 || len(affected) != 1 || affected[0].Trigger.Key != "app-2" {
		t.Fatalf("noted %d late events, affected %+v; want o2-late changing app-2", len(noted), affected)
	}
}

// racing is a store on which another re-run of the same triggers (another
// late event's LateImpact) publishes its records between a re-run's read
// of the versions and its Append: the first Append of feature records
// finds each version taken by the other run's record (with another
// feature), and so stores nothing.
type racing struct {
	eventcenter.Store
	raced bool
}

func (r *racing) Append(ctx context.Context, evs []eventcenter.Event) error {
	if !r.raced && len(evs) > 0 && strings.HasPrefix(evs[0].Source, job.FeatureSource("")) {
		r.raced = true
		other := make([]eventcenter.Event, len(evs))
		for i, e := range evs {
			e.After = maps.Clone(e.After)
			e.After[job.ColBackfill], e.After["raced"] = "late-impact-other", true
			other[i] = e
		}
		if err := r.Store.Append(ctx, other); err != nil {
			return err
		}
	}
	return r.Store.Append(ctx, evs)
}

// TestRerunRacingAnotherRerun: a re-run whose record version another
// re-run took at the same moment publishes again, as the next version:
// the latest record of each affected trigger is the fresh evaluation.
func TestRerunRacingAnotherRerun(t *testing.T) {
	w := newWorld(t)
	w.seed(3, func(int) int64 { return 4 })
	j := creditV2(t, job.Outputs(outputs.FeatureStore(w.st, "")), job.RerunLateData())
	for i := 1; i <= 3; i++ {
		w.live(j, application(i, user(i)))
	}
	w.clock = t0.Add(time.Hour)
	late := eventcenter.Event{Source: credit.Orders, Key: "o2-late", Time: t0.Add(time.Minute), Pos: eventcenter.Position{Offset: 100}, Op: eventcenter.OpInsert,
		After: eventcenter.Row{"id": int64(100), "user_id": user(2), "principal": dec("900.00"), "outstanding": dec("900.00"), "status": "open"}}
	w.append(late)
	late.StoredAt = w.clock
	cfg := parity.Config{Job: j, Store: w.st, Params: w.reg}
	affected, err := parity.Impact(w.ctx, cfg, []eventcenter.Event{late}, t0, t0.Add(time.Hour))
	if err != nil || len(affected) != 1 {
		t.Fatalf("impact %+v, %v; want app-2", affected, err)
	}
	cfg.Store = &racing{Store: w.st}
	if _, _, err := parity.Rerun(w.ctx, cfg, affected, "late-impact-mine"); err != nil {
		t.Fatal(err)
	}
	tr := application(2, user(2))
	fresh, err := job.Evaluate(w.ctx, j, tr, &job.Env{Mode: job.Backfill, Store: w.st, Params: job.CurrentParams(w.reg)})
	if err != nil {
		t.Fatal(err)
	}
	e, err := w.st.AsOf(w.ctx, eventcenter.AsOf{Source: job.FeatureSource(j.Name()), Key: tr.Key, Time: tr.Time})
	if err != nil {
		t.Fatal(err)
	}
	if got := job.RecordFromEvent(j.Name(), &e); fmt.Sprint(got.Features) != fmt.Sprint(fresh.Record.Features) {
		t.Fatalf("latest record %v, a fresh evaluation gives %v", got.Features, fresh.Record.Features)
	}
}
