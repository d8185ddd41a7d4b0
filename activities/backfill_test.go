package activities_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/internal/backfilltest"
	"github.com/tidemark-dev/tidemark/job"
)

const span = time.Hour

func fixture(t testing.TB, n int) (*embedded.Store, *activities.Backfill, []eventcenter.Event) {
	t.Helper()
	st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	evs := backfilltest.Events(n, 50, span)
	if err := backfilltest.Fill(context.Background(), st, evs); err != nil {
		t.Fatal(err)
	}
	return st, &activities.Backfill{Store: st, Jobs: activities.NewJobs(backfilltest.Job())}, evs
}

// runChunk runs one chunk in the activity test environment, starting from
// the heartbeat hb (if not nil), and returns the result and every
// heartbeated cursor.
func runChunk(t *testing.T, a *activities.Backfill, in activities.ChunkInput, hb *activities.Cursor) (activities.ChunkResult, []activities.Cursor, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	s.SetLogger(sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	env := s.NewTestActivityEnvironment()
	var mu sync.Mutex
	var beats []activities.Cursor
	a2 := *a
	a2.OnSegment = func(_ activities.ChunkInput, c activities.Cursor) {
		mu.Lock()
		beats = append(beats, c)
		mu.Unlock()
	}
	a = &a2
	env.RegisterActivity(a)
	if hb != nil {
		env.SetHeartbeatDetails(*hb)
	}
	v, err := env.ExecuteActivity(a.BackfillChunk, in)
	if err != nil {
		return activities.ChunkResult{}, beats, err
	}
	var r activities.ChunkResult
	if err := v.Get(&r); err != nil {
		t.Fatal(err)
	}
	return r, beats, nil
}

// A chunk writes the records job.Evaluate computes for its triggers, each
// once, and counts what it did.
func TestChunkWritesEachTriggerOnce(t *testing.T) {
	st, a, evs := fixture(t, 2000)
	ctx := context.Background()
	in := activities.ChunkInput{Backfill: "bf-1", Job: backfilltest.JobName, From: backfilltest.T0, To: backfilltest.T0.Add(span),
		Options: activities.Options{Sink: "featurestore:out.clean", SegmentEvents: 300}}
	r, beats, err := runChunk(t, a, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	triggers := backfilltest.Triggers(evs)
	if r.Events != 2000 || r.Outputs != triggers || r.Failed != 0 || r.Skipped != 2000-triggers || r.Resumed || r.Attempt != 1 {
		t.Fatalf("result %+v, want %d outputs", r, triggers)
	}
	if len(beats) != 6 { // after each full segment but the last
		t.Fatalf("%d heartbeats, want 6: %+v", len(beats), beats)
	}
	got, err := backfilltest.FeatureRecords(ctx, st, backfilltest.JobName, "out.clean", backfilltest.T0, backfilltest.T0.Add(span))
	if err != nil {
		t.Fatal(err)
	}
	j := backfilltest.Job()
	var want []job.Record
	for _, e := range evs {
		if e.Source == backfilltest.Apps && j.Accepts(&e) {
			res, err := job.Evaluate(ctx, j, e, &job.Env{Store: st})
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, *res.Record)
		}
	}
	if d := backfilltest.Diff(got, want); len(d) > 0 {
		t.Fatalf("records differ from job.Evaluate:\n%s", strings.Join(d, "\n"))
	}
}

// A retried chunk that finds a heartbeat resumes after it: it redoes no
// committed segment, and the objects of a file sink end up exactly those of
// a clean run, including a segment the crashed attempt wrote partly.
func TestChunkResumesAfterHeartbeat(t *testing.T) {
	_, a, _ := fixture(t, 3000)
	clean, crashed := t.TempDir(), t.TempDir()
	in := activities.ChunkInput{Backfill: "bf-2", Job: backfilltest.JobName, Index: 7, From: backfilltest.T0, To: backfilltest.T0.Add(span),
		Options: activities.Options{Sink: "file://" + clean, SegmentEvents: 400}}
	want, beats, err := runChunk(t, a, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(beats) < 4 {
		t.Fatalf("%d heartbeats", len(beats))
	}
	wantRecs, wantNames, err := backfilltest.ReadDir(clean)
	if err != nil {
		t.Fatal(err)
	}

	// The crashed attempt committed 3 segments (heartbeat 3), wrote the
	// 4th object and died before heartbeating it; copy what it left.
	hb := beats[2]
	if hb.Ordinal != 1200 || hb.Last == nil {
		t.Fatalf("heartbeat %+v", hb)
	}
	for _, name := range wantNames[:4] {
		b, err := os.ReadFile(filepath.Join(clean, name))
		if err != nil {
			t.Fatal(err)
		}
		if name == wantNames[3] {
			b = b[:len(b)/2] // a torn write of a non-atomic destination
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(crashed, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(crashed, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	in.Options.Sink = "file://" + crashed
	got, _, err := runChunk(t, a, in, &hb)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Resumed || got.ResumedAt != 1200 || got.Events != want.Events || got.Outputs != want.Outputs || got.Skipped != want.Skipped {
		t.Fatalf("resumed result %+v, clean %+v", got, want)
	}
	gotRecs, gotNames, err := backfilltest.ReadDir(crashed)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotNames, wantNames) {
		t.Fatalf("objects %v, want %v", gotNames, wantNames)
	}
	if d := backfilltest.Diff(gotRecs, wantRecs); len(d) > 0 {
		t.Fatalf("resumed records differ:\n%s", strings.Join(d, "\n"))
	}
	if len(gotRecs) != want.Outputs {
		t.Fatalf("%d records, want %d", len(gotRecs), want.Outputs)
	}
}

// A sample table's rows run the job as of each row's time; rows whose key
// has no state then are counted missing; chunks are found by the plan.
func TestSampleChunks(t *testing.T) {
	ctx := context.Background()
	st, a, evs := fixture(t, 1000)
	var b strings.Builder
	b.WriteString("time,key,label\n")
	var rows []eventcenter.Event
	for i, e := range evs {
		if e.Source != backfilltest.Apps || i%7 != 0 {
			continue
		}
		at := e.Time.Add(time.Duration(i) * time.Millisecond) // after the app's own time
		fmt.Fprintf(&b, "%s,%s,%d\n", at.Format(time.RFC3339Nano), e.Key, i%2)
		rows = append(rows, eventcenter.Event{Key: e.Key, Time: at})
	}
	b.WriteString("2026-10-01 00:00:00,app-1,0\n") // before app-1 existed
	b.WriteString("2026-11-01,nobody,1\n")
	path := filepath.Join(t.TempDir(), "sample.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	plan := planOf(t, env, a, activities.PlanInput{Job: backfilltest.JobName, Sample: path, ChunkRows: 10})
	sp := plan.Sample
	if sp == nil || sp.Rows != len(rows)+2 || len(sp.Offsets) != (sp.Rows+9)/10 || sp.KeyCol != 1 || sp.TimeCol != 0 {
		t.Fatalf("plan %+v", sp)
	}
	var total activities.ChunkResult
	for i := range sp.Offsets {
		r, _, err := runChunk(t, a, activities.ChunkInput{Backfill: "bf-3", Job: backfilltest.JobName, Index: i, Sample: sp.Chunk(i),
			Options: activities.Options{Sink: "featurestore:out.sample", SegmentEvents: 4}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		total.Events += r.Events
		total.Outputs += r.Outputs
		total.Missing += r.Missing
		total.Skipped += r.Skipped
	}
	// Every seventh event: users too, and apps that are updates are skipped.
	if total.Events != sp.Rows || total.Missing != 2 || total.Outputs+total.Skipped != len(rows) {
		t.Fatalf("totals %+v for %d rows", total, len(rows))
	}
	got, err := backfilltest.FeatureRecords(ctx, st, backfilltest.JobName, "out.sample", backfilltest.T0.Add(-48*time.Hour), backfilltest.T0.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != total.Outputs {
		t.Fatalf("%d records, %d outputs", len(got), total.Outputs)
	}
	// Each record is as of its row's time: the user as of then.
	j := backfilltest.Job()
	byKey := map[string]job.Record{}
	for _, r := range got {
		byKey[r.Trigger.Key] = r
	}
	for _, row := range rows {
		r, ok := byKey[row.Key]
		if !ok {
			continue // an update: skipped
		}
		if !r.Trigger.Time.Equal(row.Time) {
			t.Fatalf("%s: trigger time %v, want the row's %v", row.Key, r.Trigger.Time, row.Time)
		}
		app, err := st.AsOf(ctx, eventcenter.AsOf{Source: backfilltest.Apps, Key: row.Key, Time: row.Time})
		if err != nil {
			t.Fatal(err)
		}
		app.Time, app.Pos = row.Time, eventcenter.Position{}
		res, err := job.Evaluate(ctx, j, app, &job.Env{Store: st})
		if err != nil || !backfilltest.Same(r, *res.Record) {
			t.Fatalf("%s: %+v, want %+v (%v)", row.Key, r, res.Record, err)
		}
	}
}

func TestPlanRejects(t *testing.T) {
	_, a, _ := fixture(t, 10)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("user,when\nu,2026-01-01\n"), 0o644)
	badTime := filepath.Join(dir, "badtime.csv")
	os.WriteFile(badTime, []byte("key,time\nu,yesterday\n"), 0o644)
	// Tables whose columns cannot be read as one meaning: each is refused
	// with an error that says so.
	headers := map[string]struct{ csv, says string }{
		"two keys":   {"key,time,entity\nu,2026-01-01,v\n", `columns "key" and "entity" are both a key column`},
		"two labels": {"key,time,label,Label\nu,2026-01-01,a,b\n", `columns 3 and 4 are both named "Label"`},
		"two times":  {"time,key,time\n2026-01-01,u,2026-01-02\n", `columns 1 and 3 are both named "time"`},
		"unnamed":    {",key,time\n0,u,2026-01-01\n", "column 1 of"},
		"year 1":     {"key,time\nu,0001-01-01T00:00:00Z\n", "outside the event center's times"},
		"year 2300":  {"key,time\nu,2300-01-01\n", "outside the event center's times"},
	}
	for name, h := range headers {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".csv")
		os.WriteFile(path, []byte(h.csv), 0o644)
		var s testsuite.WorkflowTestSuite
		env := s.NewTestActivityEnvironment()
		env.RegisterActivity(a)
		_, err := env.ExecuteActivity(a.BackfillPlan, activities.PlanInput{Job: backfilltest.JobName, Sample: path})
		var ae *temporal.ApplicationError
		if !errors.As(err, &ae) || ae.Type() != activities.ErrTypeBadSample || !ae.NonRetryable() || !strings.Contains(err.Error(), h.says) {
			t.Errorf("%s: %v, want a non-retryable BadSample error saying %q", name, err, h.says)
		}
	}
	for name, in := range map[string]activities.PlanInput{
		"unknown job":  {Job: "nope"},
		"bad sink":     {Job: backfilltest.JobName, Options: activities.Options{Sink: "ftp://x"}},
		"s3 no client": {Job: backfilltest.JobName, Options: activities.Options{Sink: "s3://bucket/p"}},
		"bad knownAt":  {Job: backfilltest.JobName, Options: activities.Options{KnownAt: "yesterday"}},
		"bad params":   {Job: backfilltest.JobName, Options: activities.Options{Params: "7"}},
		"no sample":    {Job: backfilltest.JobName, Sample: filepath.Join(dir, "absent.csv")},
		"bad header":   {Job: backfilltest.JobName, Sample: bad},
		"bad time":     {Job: backfilltest.JobName, Sample: badTime},
	} {
		var s testsuite.WorkflowTestSuite
		env := s.NewTestActivityEnvironment()
		env.RegisterActivity(a)
		_, err := env.ExecuteActivity(a.BackfillPlan, in)
		var ae *temporal.ApplicationError
		if !errors.As(err, &ae) || !ae.NonRetryable() {
			t.Errorf("%s: want a non-retryable error, got %v", name, err)
		}
	}
}

// A chunk that consumes no event for its StallTimeout fails its attempt as
// Stalled (retryable), instead of heartbeating until its 24 h timeout.
func TestChunkStalls(t *testing.T) {
	_, a, _ := fixture(t, 100)
	a.Jobs = activities.NewJobs(backfilltest.SlowJob(time.Second))
	a.BatchSize, a.Workers = 1, 1
	start := time.Now()
	_, _, err := runChunk(t, a, activities.ChunkInput{Backfill: "bf-stall", Job: backfilltest.JobName, From: backfilltest.T0, To: backfilltest.T0.Add(span),
		StallTimeout: 200 * time.Millisecond}, nil)
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) || ae.Type() != activities.ErrTypeStalled || ae.NonRetryable() || !strings.Contains(err.Error(), "no progress for 200ms") {
		t.Fatalf("%v, want a retryable Stalled error", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("stalled after %v", d)
	}
}

// A backfill given the source registry fails a run that fetches a source
// the registry does not list at once, naming it (as the live worker does),
// instead of reading it as not-found.
func TestChunkRefusesUnknownSource(t *testing.T) {
	_, a, evs := fixture(t, 200)
	in := activities.ChunkInput{Backfill: "bf-src", Job: backfilltest.JobName, From: backfilltest.T0, To: backfilltest.T0.Add(span),
		Options: activities.Options{Sink: "file://" + t.TempDir()}}
	triggers := backfilltest.Triggers(evs)
	for _, tc := range []struct {
		name   string
		known  func(string) bool
		failed int
	}{
		{"registry lists both", job.KnownSources(func(s string) bool { return s == backfilltest.Apps || s == backfilltest.Users }), 0},
		{"registry lacks the users source", job.KnownSources(func(s string) bool { return s == backfilltest.Apps }), triggers},
	} {
		a2 := *a
		a2.Sources = tc.known
		r, _, err := runChunk(t, &a2, in, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if r.Failed != tc.failed || r.Stale != 0 {
			t.Fatalf("%s: %d failed, %d stale; want %d failed", tc.name, r.Failed, r.Stale, tc.failed)
		}
		if tc.failed > 0 && (len(r.Errors) == 0 || !strings.Contains(r.Errors[0], backfilltest.Users)) {
			t.Fatalf("%s: errors %q do not name %s", tc.name, r.Errors, backfilltest.Users)
		}
	}
}

// The plan tells a trigger source without watermarks (Floor false) from one
// whose partitions are registered at the floor (Floor true: behind).
func TestPlanFloor(t *testing.T) {
	st, a, _ := fixture(t, 10)
	plan := func() activities.Plan {
		var s testsuite.WorkflowTestSuite
		env := s.NewTestActivityEnvironment()
		env.RegisterActivity(a)
		return planOf(t, env, a, activities.PlanInput{Job: backfilltest.JobName})
	}
	wm := plan().Watermark // the fixture's watermark
	if wm.IsZero() {
		t.Fatal("the fixture has no watermark")
	}
	// A partition added to the topic: registered at the floor, it holds
	// the source's watermark at zero until it reports.
	if err := st.RegisterPartitions(context.Background(), backfilltest.Apps, []int32{7}); err != nil {
		t.Fatal(err)
	}
	if p := plan(); !p.Watermark.IsZero() || !p.Floor ||
		len(p.Watermarks) != 1 || p.Watermarks[0] != (activities.SourceWatermark{Source: backfilltest.Apps, Floor: true}) {
		t.Fatalf("a partition at the floor: %+v, want zero and at the floor", p)
	}
	if err := st.AdvanceWatermark(context.Background(), backfilltest.Apps, 7, wm); err != nil {
		t.Fatal(err)
	}
	if p := plan(); !p.Watermark.Equal(wm) || p.Floor {
		t.Fatalf("every partition advanced: %+v, want %v", p, wm)
	}
	// A source that never reported any watermark: zero, not at the floor.
	st2, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st2.Close() })
	a.Store = st2
	if p := plan(); !p.Watermark.IsZero() || p.Floor ||
		len(p.Watermarks) != 1 || p.Watermarks[0] != (activities.SourceWatermark{Source: backfilltest.Apps}) {
		t.Fatalf("no watermarks: %+v, want zero and not at the floor", p)
	}
}
