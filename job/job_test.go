package job_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/params"
)

// collect is a non-idempotent output that keeps what it is given.
type collect struct {
	name string
	mu   sync.Mutex
	recs []job.Record
	fail error
}

func (c *collect) Name() string { return c.name }
func (c *collect) Write(_ context.Context, recs []job.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return c.fail
	}
	c.recs = append(c.recs, recs...)
	return nil
}

func trigger(key string, at time.Time, off uint64) eventcenter.Event {
	return eventcenter.Event{Source: "test.apps", Key: key, Time: at, Pos: eventcenter.Position{Offset: off}, Op: eventcenter.OpInsert, After: eventcenter.Row{"user": "u1"}}
}

func TestParamChangeAppliesWithoutRestart(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	reg := params.NewEventCenter(st, nil)
	out := &collect{name: "c"}
	j := job.MustNew("thresholds", func(c *job.Context) (eventcenter.Row, error) {
		return eventcenter.Row{"limit": c.Int("limit"), "window": c.Duration("window").String()}, nil
	}, job.Trigger("test.apps"), job.Version("7"), job.Outputs(out),
		job.Param(params.Decl{Name: "limit", Type: params.Int, Default: 3, Min: 0, Max: 10, Description: "max open orders"}),
		job.Param(params.Decl{Name: "window", Type: params.Duration, Default: "2160h", Description: "repayment window"}))
	env := &job.Env{Store: st, Params: job.CurrentParams(reg)}
	if _, err := job.Run(ctx, j, trigger("a1", t0, 1), env); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Set(ctx, j.Name(), params.Values{"limit": 5, "window": "720h"}, "operator"); err != nil {
		t.Fatal(err)
	}
	res, err := job.Run(ctx, j, trigger("a2", t0.Add(time.Second), 2), env)
	if err != nil {
		t.Fatal(err)
	}
	if res.ParamVersion != 1 {
		t.Fatalf("param version %d", res.ParamVersion)
	}
	got := out.recs
	if len(got) != 2 || got[0].Features["limit"] != int64(3) || got[1].Features["limit"] != int64(5) || got[1].Features["window"] != "720h0m0s" {
		t.Fatalf("records: %+v", got)
	}
	if got[0].ParamVersion != 0 || got[1].ParamVersion != 1 || got[0].JobVersion != "7" || got[1].JobVersion != "7" {
		t.Fatalf("versions: %+v", got)
	}
	// The job's parameters are not declared in the registry, so Set cannot
	// check the value; the run does, and outputs nothing.
	if _, err := reg.Set(ctx, j.Name(), params.Values{"limit": 11}, "operator"); err != nil {
		t.Fatalf("set without declarations: %v", err)
	}
	res, err = job.Run(ctx, j, trigger("a3", t0.Add(2*time.Second), 3), env)
	if !errors.Is(err, job.ErrParams) || res.Outcome != job.Failed || len(out.recs) != 2 {
		t.Fatalf("out-of-bounds value: %v %v, %d records", res.Outcome, err, len(out.recs))
	}
}

func TestRetriedTriggerDoesNotDuplicate(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	out := &collect{name: "c", fail: errors.New("broker down")}
	j := job.MustNew("dedup", func(c *job.Context) (eventcenter.Row, error) {
		return eventcenter.Row{"n": int64(1)}, nil
	}, job.Trigger("test.apps"), job.Outputs(out))
	env := &job.Env{Store: st, Ledger: job.EventLedger{Store: st}}
	tr := trigger("a1", t0, 1)
	if _, err := job.Run(ctx, j, tr, env); !errors.Is(err, job.ErrOutput) {
		t.Fatalf("first try: %v", err)
	}
	out.fail = nil
	for range 3 { // the retry, and redeliveries
		if _, err := job.Run(ctx, j, tr, env); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := job.Run(ctx, j, trigger("a2", t0, 2), env); err != nil {
		t.Fatal(err)
	}
	if len(out.recs) != 2 || out.recs[0].ID == out.recs[1].ID {
		t.Fatalf("delivered %d records: %+v", len(out.recs), out.recs)
	}
}

func TestStaleOutcome(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	if err := st.AdvanceWatermark(ctx, "test.other", 0, t0.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	for _, level := range []job.Level{job.TriggerStrong, job.FetchStrong, job.FetchStrongNoDelay} {
		out := &collect{name: "c"}
		j := job.MustNew("stale", func(c *job.Context) (eventcenter.Row, error) {
			if _, err := c.Get("test.other", "k"); err != nil && !errors.Is(err, job.ErrNotFound) {
				return nil, err
			}
			return eventcenter.Row{"x": 1}, nil
		}, job.Trigger("test.apps"), job.Outputs(out), job.Consistency(level), job.WaitTimeout(30*time.Millisecond))
		res, err := job.Run(ctx, j, trigger("a", t0, 1), &job.Env{Store: st})
		var se *job.StaleError
		if res.Outcome != job.Stale || !errors.Is(err, job.ErrStale) || !errors.Is(err, eventcenter.ErrWatermarkTimeout) || !errors.As(err, &se) {
			t.Fatalf("%v: outcome %v, err %v", level, res.Outcome, err)
		}
		want := "test.other"
		if level == job.TriggerStrong {
			want = "test.apps"
		}
		if se.Source != want || !se.Want.Equal(t0) || se.Waited < 30*time.Millisecond || res.Stats.Stale != 1 || len(out.recs) != 0 {
			t.Fatalf("%v: %+v, stats %+v, outputs %d", level, se, res.Stats, len(out.recs))
		}
	}
	// The logic may handle staleness itself and output what it has.
	j := job.MustNew("partial", func(c *job.Context) (eventcenter.Row, error) {
		_, err := c.Get("test.other", "k")
		return eventcenter.Row{"complete": !errors.Is(err, job.ErrStale)}, nil
	}, job.Trigger("test.apps"), job.Consistency(job.FetchStrong), job.WaitTimeout(10*time.Millisecond))
	res, err := job.Run(ctx, j, trigger("a", t0, 1), &job.Env{Store: st})
	if err != nil || res.Outcome != job.OK || res.Record.Features["complete"] != false {
		t.Fatalf("handled: %v %v %+v", res.Outcome, err, res.Record)
	}
}

func TestOutcomes(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	env := &job.Env{Store: st}
	for name, tc := range map[string]struct {
		logic job.Logic
		opts  []job.Option
		want  job.Outcome
		err   error
	}{
		"filtered":  {func(*job.Context) (eventcenter.Row, error) { return eventcenter.Row{"a": 1}, nil }, []job.Option{job.Trigger("test.apps", job.Ops(eventcenter.OpUpdate))}, job.Skipped, nil},
		"nothing":   {func(*job.Context) (eventcenter.Row, error) { return nil, nil }, nil, job.Skipped, nil},
		"error":     {func(*job.Context) (eventcenter.Row, error) { return nil, errors.New("boom") }, nil, job.Failed, job.ErrLogic},
		"panic":     {func(c *job.Context) (eventcenter.Row, error) { c.Int("undeclared"); return nil, nil }, nil, job.Failed, job.ErrLogic},
		"reserved":  {func(*job.Context) (eventcenter.Row, error) { return eventcenter.Row{"_x": 1}, nil }, nil, job.Failed, job.ErrLogic},
		"bad type":  {func(*job.Context) (eventcenter.Row, error) { return eventcenter.Row{"x": struct{}{}}, nil }, nil, job.Failed, job.ErrLogic},
		"ok":        {func(*job.Context) (eventcenter.Row, error) { return eventcenter.Row{"x": 1.5}, nil }, nil, job.OK, nil},
		"no entity": {func(*job.Context) (eventcenter.Row, error) { return eventcenter.Row{"x": 1}, nil }, []job.Option{job.Entity(func(*eventcenter.Event) string { return "" })}, job.Failed, job.ErrLogic},
	} {
		opts := tc.opts
		if name != "filtered" { // the filtered case has its own trigger
			opts = append([]job.Option{job.Trigger("test.apps")}, opts...)
		}
		j := job.MustNew("outcomes", tc.logic, opts...)
		res, err := job.Run(ctx, j, trigger("a", t0, 1), env)
		if res.Outcome != tc.want || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("%s: outcome %v, err %v", name, res.Outcome, err)
		}
	}
	if _, err := job.New("x", nil, job.Trigger("s")); err == nil {
		t.Error("no logic accepted")
	}
	if _, err := job.New("x", func(*job.Context) (eventcenter.Row, error) { return nil, nil }); err == nil || !strings.Contains(err.Error(), "trigger") {
		t.Errorf("no trigger: %v", err)
	}
}

// TestKnownAt: a backfill bounded by "known at" sees what was stored then,
// not a later correction of the same moment.
func TestKnownAt(t *testing.T) {
	ctx := context.Background()
	clock := t0
	st, err := openStoreClock(t, func() time.Time { return clock })
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Append(ctx, []eventcenter.Event{{Source: "test.profile", Key: "u1", Time: t0.Add(-time.Hour), Op: eventcenter.OpInsert, After: eventcenter.Row{"income": int64(100)}}}); err != nil {
		t.Fatal(err)
	}
	clock = t0.Add(24 * time.Hour) // the nightly correction
	if err := st.Append(ctx, []eventcenter.Event{{Source: "test.profile", Key: "u1", Time: t0.Add(-time.Hour), Pos: eventcenter.Position{Offset: 1}, Op: eventcenter.OpCorrection, After: eventcenter.Row{"income": int64(90)}}}); err != nil {
		t.Fatal(err)
	}
	j := job.MustNew("income", func(c *job.Context) (eventcenter.Row, error) {
		row, err := c.Get("test.profile", "u1")
		if err != nil {
			return nil, err
		}
		return eventcenter.Row{"income": row["income"]}, nil
	}, job.Trigger("test.apps"))
	tr := trigger("a", t0, 1)
	tr.StoredAt = t0.Add(time.Second)
	for _, tc := range []struct {
		knownAt func(*eventcenter.Event) time.Time
		want    int64
	}{{nil, 90}, {job.KnownAtTrigger, 100}, {job.KnownAtFixed(t0.Add(48 * time.Hour)), 90}} {
		res, err := job.Evaluate(ctx, j, tr, &job.Env{Store: st, KnownAt: tc.knownAt, Mode: job.Backfill})
		if err != nil || res.Record.Features["income"] != tc.want {
			t.Errorf("known at: got %v %v, want %d", res.Record, err, tc.want)
		}
	}
}

func TestRunAllOverReplay(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	var evs []eventcenter.Event
	for i := range 100 {
		evs = append(evs, trigger(fmt.Sprint("a", i), t0.Add(time.Duration(i)*time.Second), uint64(i)))
		evs = append(evs, eventcenter.Event{Source: "test.other", Key: fmt.Sprint("a", i), Time: t0.Add(time.Duration(i) * time.Second), Op: eventcenter.OpInsert, After: eventcenter.Row{"v": int64(i)}})
	}
	if err := st.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	out := &collect{name: "c"}
	j := job.MustNew("replay", func(c *job.Context) (eventcenter.Row, error) {
		row, err := c.Get("test.other", c.Trigger().Key)
		if err != nil {
			return nil, err
		}
		if row["v"].(int64)%10 == 0 {
			return nil, nil
		}
		return eventcenter.Row{"v": row["v"]}, nil
	}, job.Trigger("test.apps"))
	env := &job.Env{Store: st, Mode: job.Backfill, Outputs: []job.Output{out}}
	sum, err := job.RunAll(ctx, j, env, st.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{"test.apps", "test.other"}, From: t0, To: t0.Add(time.Hour)}), job.RunOptions{BatchSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Events != 200 || sum.Counts[job.OK] != 90 || sum.Counts[job.Skipped] != 110 || len(out.recs) != 90 {
		t.Fatalf("summary %+v, %d records", sum, len(out.recs))
	}
}

// TestLedgerOnRetentionStore: on a store that keeps a recent window (HBase's
// hot tier), the ledger still tells delivered records from new ones: a
// record never marked is pending (its absent mark is not a read behind the
// horizon that fails every write), and a record marked within the window
// is not, whatever its trigger's time (a late trigger, a backfill).
func TestLedgerOnRetentionStore(t *testing.T) {
	ctx := context.Background()
	now := t0.Add(30 * 24 * time.Hour)
	st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true, Retention: 24 * time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	out := &collect{name: "c"}
	j := job.MustNew("ledger", func(c *job.Context) (eventcenter.Row, error) {
		return eventcenter.Row{"n": int64(1)}, nil
	}, job.Trigger("test.apps"), job.Outputs(out))
	env := &job.Env{Store: st, Ledger: job.EventLedger{Store: st, Now: func() time.Time { return now }}}
	for _, tr := range []eventcenter.Event{trigger("new", now.Add(-time.Minute), 1), trigger("old", t0, 2)} {
		for range 2 { // the delivery and a redelivery
			if _, err := job.Run(ctx, j, tr, env); err != nil {
				t.Fatalf("%s: %v", tr.Key, err)
			}
		}
	}
	if len(out.recs) != 2 || out.recs[0].Entity != "new" || out.recs[1].Entity != "old" {
		t.Fatalf("delivered %+v, want new and old once each", out.recs)
	}
}

// TestSeveralTriggers: a job given several job.Trigger options runs on an
// event of any of them, each judged by its own source's filters (before
// the fix the last source won and the filters were ANDed: it ran on
// nothing), in Accepts and in a call's Run; a source given twice is refused.
func TestSeveralTriggers(t *testing.T) {
	logic := func(c *job.Context) (eventcenter.Row, error) { return eventcenter.Row{"src": c.Trigger().Source}, nil }
	j, err := job.New("two-streams", logic,
		job.Trigger("test.orders", job.Ops(eventcenter.OpInsert)),
		job.Trigger("test.repayments", job.Ops(eventcenter.OpUpdate)))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	env := &job.Env{Mode: job.Call, Store: openStore(t)}
	for _, tc := range []struct {
		source string
		op     eventcenter.Op
		want   bool
	}{
		{"test.orders", eventcenter.OpInsert, true},
		{"test.orders", eventcenter.OpUpdate, false},
		{"test.repayments", eventcenter.OpUpdate, true},
		{"test.repayments", eventcenter.OpInsert, false},
		{"test.apps", eventcenter.OpInsert, false},
	} {
		e := eventcenter.Event{Source: tc.source, Key: "k", Time: at, Op: tc.op, After: eventcenter.Row{}}
		if got := j.Accepts(&e); got != tc.want {
			t.Errorf("Accepts(%s %v) = %v, want %v", tc.source, tc.op, got, tc.want)
		}
		res, err := job.Run(context.Background(), j, e, env)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]job.Outcome{true: job.OK, false: job.Skipped}[tc.want]; res.Outcome != want {
			t.Errorf("Run(%s %v): outcome %v, want %v", tc.source, tc.op, res.Outcome, want)
		}
	}
	if got := fmt.Sprint(j.Sources()); got != "[test.orders test.repayments]" {
		t.Errorf("Sources() = %s", got)
	}
	_, err = job.New("dup", logic, job.Trigger("test.orders"), job.Trigger("test.orders", job.Ops(eventcenter.OpInsert)))
	if err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("duplicate trigger source: err = %v, want \"given twice\"", err)
	}
}

// TestRunsShareNothingThroughTheirContext: runs evaluated one after the
// other on one goroutine (which reuse one Context) each start afresh: here
// the first run learns that nothing changed its key after its trigger,
// and the second, whose key was deleted after its trigger at the same
// instant, must still read its key's state as of its trigger.
func TestRunsShareNothingThroughTheirContext(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	const src = "test.apps"
	a := eventcenter.Event{Source: src, Key: "a", Time: t0, Pos: eventcenter.Position{Log: 1, Offset: 1}, Op: eventcenter.OpInsert, After: eventcenter.Row{"v": int64(1)}}
	b := eventcenter.Event{Source: src, Key: "b", Time: t0.Add(time.Hour), Pos: eventcenter.Position{Log: 1, Offset: 2}, Op: eventcenter.OpInsert, After: eventcenter.Row{"v": int64(2)}}
	gone := eventcenter.Event{Source: src, Key: "b", Time: b.Time, Pos: eventcenter.Position{Log: 1, Offset: 3}, Op: eventcenter.OpDelete, Before: b.After}
	if err := st.Append(ctx, []eventcenter.Event{a, b, gone}); err != nil {
		t.Fatal(err)
	}
	j := job.MustNew("fresh", func(c *job.Context) (eventcenter.Row, error) {
		r, err := c.Get(src, c.Trigger().Key)
		if err != nil {
			return nil, err
		}
		return eventcenter.Row{"v": r["v"]}, nil
	}, job.Trigger(src))
	results := make([]job.Result, 2)
	job.EvaluateAll(ctx, j, &job.Env{Store: st}, []eventcenter.Event{a, b}, results, 1)
	for i, want := range []int64{1, 2} {
		if r := results[i]; r.Outcome != job.OK || r.Record.Features["v"] != want {
			t.Fatalf("run %d: %v %v %+v, want v %d", i, r.Outcome, r.Err, r.Record, want)
		}
	}
}
