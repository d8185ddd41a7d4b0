// Package backfilltest is the fixture of the backfill tests and
// benchmarks: a job with exactly one fetch per event, a generator of its
// events, and readers of the records a backfill writes.
package backfilltest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/params"
)

// Sources of the fixture.
const (
	Apps  = "test.apps"  // the trigger: an application of a user
	Users = "test.users" // fetched once per application
	// JobName is the fixture job's name.
	JobName = "test-score"
)

// T0 is the start of the fixture's events.
var T0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// Job returns the fixture job: on each insert of Apps it fetches the
// application's user as of the application's time (one fetch) and outputs
// a score. Parameter "factor" (Int, default 3) scales it.
func Job(opts ...job.Option) *job.Job { return SlowJob(0, opts...) }

// SlowJob is Job sleeping delay in each run, for tests that need slow
// chunks; its records are Job's.
func SlowJob(delay time.Duration, opts ...job.Option) *job.Job {
	all := []job.Option{
		job.Trigger(Apps, job.Ops(eventcenter.OpInsert)),
		job.Version("1"),
		job.Param(params.Decl{Name: "factor", Type: params.Int, Default: 3, Min: 0, Max: 1000, Description: "score factor"}),
	}
	return job.MustNew(JobName, func(c *job.Context) (eventcenter.Row, error) {
		if delay > 0 {
			time.Sleep(delay)
		}
		return logic(c)
	}, append(all, opts...)...)
}

func logic(c *job.Context) (eventcenter.Row, error) {
	app := c.Trigger().After
	user, _ := app["user"].(string)
	u, err := c.Get(Users, user)
	if err != nil {
		return nil, err
	}
	amount, _ := app["amount"].(int64)
	limit, _ := u["limit"].(int64)
	return eventcenter.Row{"user": user, "amount": amount, "limit": limit, "score": (limit - amount) * c.Int("factor")}, nil
}

// Events returns n applications spread evenly over [T0, T0+span) (span/n
// apart), by users
// users, preceded (at T0-1h) by one insert per user and followed by one
// update of every user per tenth of the span, so fetches as of different
// times see different rows. Application i has key "app-<i>"; every tenth
// application is an update (not a trigger).
func Events(n, users int, span time.Duration) []eventcenter.Event {
	var evs []eventcenter.Event
	for u := range users {
		evs = append(evs, eventcenter.Event{Source: Users, Key: userKey(u), Time: T0.Add(-time.Hour), Op: eventcenter.OpInsert,
			Pos: eventcenter.Position{Offset: uint64(u)}, After: eventcenter.Row{"limit": int64(1000 + u)}})
	}
	for step := 1; step < 10; step++ {
		at := T0.Add(span * time.Duration(step) / 10)
		for u := range users {
			evs = append(evs, eventcenter.Event{Source: Users, Key: userKey(u), Time: at, Op: eventcenter.OpUpdate,
				Pos: eventcenter.Position{Log: uint64(step), Offset: uint64(u)}, After: eventcenter.Row{"limit": int64(1000 + u + 100*step)}})
		}
	}
	step := span / time.Duration(n) // not span*i/n: that overflows for long spans
	for i := range n {
		op := eventcenter.OpInsert
		if i%10 == 9 {
			op = eventcenter.OpUpdate
		}
		evs = append(evs, eventcenter.Event{Source: Apps, Key: fmt.Sprint("app-", i), Time: T0.Add(step * time.Duration(i)),
			Op: op, Pos: eventcenter.Position{Offset: uint64(i)}, After: eventcenter.Row{"user": userKey(i % users), "amount": int64(i % 500)}})
	}
	return evs
}

func userKey(u int) string { return fmt.Sprint("user-", u) }

// Fill appends events to store in batches and moves every fixture source's
// watermark past them.
func Fill(ctx context.Context, store eventcenter.Store, events []eventcenter.Event) error {
	for len(events) > 0 {
		n := min(len(events), 5000)
		if err := store.Append(ctx, events[:n]); err != nil {
			return err
		}
		events = events[n:]
	}
	for _, src := range []string{Apps, Users} {
		if err := store.AdvanceWatermark(ctx, src, 0, T0.Add(100*365*24*time.Hour)); err != nil {
			return err
		}
	}
	return nil
}

// Triggers counts the events of evs that trigger Job.
func Triggers(evs []eventcenter.Event) int {
	j := Job()
	n := 0
	for i := range evs {
		if j.Accepts(&evs[i]) {
			n++
		}
	}
	return n
}

// ReadDir reads every JSON Lines record under dir, object by object in
// name order, and the names of the objects.
func ReadDir(dir string) ([]job.Record, []string, error) {
	var recs []job.Record
	var names []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".jsonl") {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		names = append(names, filepath.ToSlash(rel))
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			var r job.Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
			recs = append(recs, r)
		}
		return sc.Err()
	})
	return recs, names, err
}

// FeatureRecords reads back every record of the feature source src of the
// job named jobName between from and to, in replay order.
func FeatureRecords(ctx context.Context, store eventcenter.Replayer, jobName, src string, from, to time.Time) ([]job.Record, error) {
	var recs []job.Record
	for e, err := range store.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{src}, From: from, To: to}) {
		if err != nil {
			return nil, err
		}
		recs = append(recs, job.RecordFromEvent(jobName, &e))
	}
	return recs, nil
}

// Diff compares two sets of records by ID, ignoring order, and describes
// the first differences: duplicates within one set, records missing from
// one, and records whose content differs (features compared as JSON).
func Diff(got, want []job.Record) []string {
	var out []string
	index := func(name string, recs []job.Record) map[string]job.Record {
		m := make(map[string]job.Record, len(recs))
		for _, r := range recs {
			if _, dup := m[r.ID]; dup {
				out = append(out, fmt.Sprintf("%s holds record %s (%s) twice", name, r.ID, r.Trigger.Key))
			}
			m[r.ID] = r
		}
		return m
	}
	g, w := index("got", got), index("want", want)
	for id, r := range w {
		gr, ok := g[id]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("missing record %s (%s)", id, r.Trigger.Key))
		case !Same(gr, r):
			out = append(out, fmt.Sprintf("record %s differs:\n got %+v\nwant %+v", id, gr, r))
		}
	}
	for id, r := range g {
		if _, ok := w[id]; !ok {
			out = append(out, fmt.Sprintf("extra record %s (%s)", id, r.Trigger.Key))
		}
	}
	slices.Sort(out)
	if len(out) > 10 {
		out = append(out[:10], fmt.Sprintf("… and %d more", len(out)-10))
	}
	return out
}

// Same reports whether two records are equal, comparing features through
// their JSON form (records read from files have float64 numbers).
func Same(a, b job.Record) bool {
	if a.ID != b.ID || a.Job != b.Job || a.JobVersion != b.JobVersion || a.ParamVersion != b.ParamVersion || a.Entity != b.Entity ||
		a.Trigger.Source != b.Trigger.Source || a.Trigger.Key != b.Trigger.Key || !a.Trigger.Time.Equal(b.Trigger.Time) || a.Trigger.Pos != b.Trigger.Pos {
		return false
	}
	fa, err1 := json.Marshal(normalize(a.Features))
	fb, err2 := json.Marshal(normalize(b.Features))
	return err1 == nil && err2 == nil && string(fa) == string(fb)
}

func normalize(r eventcenter.Row) map[string]any {
	b, _ := json.Marshal(r)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}
