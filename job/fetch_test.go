package job_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/job"
)

// runFetch runs, on trigger, a job whose logic is fetch, and returns the
// run's result and error.
func runFetch(t *testing.T, env *job.Env, trigger eventcenter.Event, fetch func(c *job.Context) error, opts ...job.Option) (job.Result, error) {
	t.Helper()
	j := job.MustNew("fetch", func(c *job.Context) (eventcenter.Row, error) {
		if err := fetch(c); err != nil {
			return nil, err
		}
		return eventcenter.Row{"ok": true}, nil
	}, append([]job.Option{job.Trigger(trigger.Source)}, opts...)...)
	return job.Evaluate(context.Background(), j, trigger, env)
}

// TestTimeTravelDoesNotLeakTheTrigger: fetches of the trigger's own source
// at an earlier time (At, Ago) answer as of that time. The trigger key
// first exists at T and changes again at T after the trigger (so the run
// must patch its state at T): an hour earlier it did not exist.
func TestTimeTravelDoesNotLeakTheTrigger(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	if err := st.DeclareIndex(ctx, eventcenter.Index{Source: "test.apps", Name: "user", Column: "user"}); err != nil {
		t.Fatal(err)
	}
	old := trigger("a1", t0.Add(-2*time.Hour), 1)
	tr := trigger("a2", t0, 2)
	moved := trigger("a2", t0, 3) // same time, later position: another user
	moved.Op, moved.After = eventcenter.OpUpdate, eventcenter.Row{"user": "u2"}
	if err := st.Append(ctx, []eventcenter.Event{old, tr, moved}); err != nil {
		t.Fatal(err)
	}
	keys := func(evs []eventcenter.Event) string {
		var ks []string
		for _, e := range evs {
			ks = append(ks, e.Key)
		}
		return strings.Join(ks, ",")
	}
	env := &job.Env{Store: st}
	for _, tc := range []struct {
		name string
		opts []job.FetchOption
		want string // keys of user u1
	}{
		{"at the trigger", nil, "a1,a2"},
		{"Ago", []job.FetchOption{job.Ago(time.Hour)}, "a1"},
		{"At", []job.FetchOption{job.At(t0.Add(-time.Hour))}, "a1"},
		{"At and Ago", []job.FetchOption{job.At(t0.Add(-30 * time.Minute)), job.Ago(30 * time.Minute)}, "a1"},
		{"before everything", []job.FetchOption{job.Ago(3 * time.Hour)}, ""},
	} {
		_, err := runFetch(t, env, tr, func(c *job.Context) error {
			evs, err := c.Lookup("test.apps", "user", "u1", tc.opts...)
			if err != nil {
				return err
			}
			if got := keys(evs); got != tc.want {
				t.Errorf("%s: lookup of u1: %q, want %q", tc.name, got, tc.want)
			}
			e, err := c.AsOf("test.apps", "a2", tc.opts...)
			if tc.opts == nil {
				if err != nil || e.Pos != tr.Pos {
					t.Errorf("%s: as-of the trigger key: %v %v", tc.name, e.ID(), err)
				}
			} else if !errors.Is(err, job.ErrNotFound) {
				t.Errorf("%s: as-of the trigger key: %v %v, want not found", tc.name, e.ID(), err)
			}
			hist, err := c.History("test.apps", "a2", time.Hour, tc.opts...)
			if err != nil {
				return err
			}
			if n := len(hist); (tc.opts == nil) != (n == 1) || n > 1 {
				t.Errorf("%s: history of the trigger key: %d events", tc.name, n)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
}

// failingStore fails every read with err (a store outage).
type failingStore struct {
	job.Store
	err error
}

func (s failingStore) AsOf(context.Context, eventcenter.AsOf) (eventcenter.Event, error) {
	return eventcenter.Event{}, s.err
}
func (s failingStore) History(context.Context, eventcenter.HistoryQuery) ([]eventcenter.Event, error) {
	return nil, s.err
}
func (s failingStore) Lookup(context.Context, eventcenter.LookupQuery) ([]eventcenter.Event, error) {
	return nil, s.err
}

// TestErrorClasses: a fetch the logic asked wrongly fails the run as a
// logic error, never retried; a store outage fails it as ErrFetch,
// retryable, whichever fetch met it.
func TestErrorClasses(t *testing.T) {
	st := openStore(t)
	tr := trigger("a", t0, 1)
	invalid := map[string]func(c *job.Context) error{
		"empty key": func(c *job.Context) error { _, err := c.Get("test.other", ""); return err },
		"empty history key": func(c *job.Context) error {
			_, err := c.History("test.other", "", time.Hour)
			return err
		},
		"unknown index": func(c *job.Context) error { _, err := c.Lookup("test.other", "nope", "x"); return err },
		"zero time":     func(c *job.Context) error { _, err := c.Get("test.other", "k", job.At(time.Time{})); return err },
		"bad source":    func(c *job.Context) error { _, err := c.Get("no spaces allowed", "k"); return err },
		"bad level": func(c *job.Context) error {
			_, err := c.Get("test.other", "k", job.WithLevel(job.Level(9)))
			return err
		},
		"future": func(c *job.Context) error { _, err := c.Get("test.other", "k", job.Ago(-time.Second)); return err },
	}
	for name, fetch := range invalid {
		res, err := runFetch(t, &job.Env{Store: st}, tr, func(c *job.Context) error {
			if err := fetch(c); !errors.Is(err, job.ErrNotFound) {
				return err
			}
			return nil
		})
		wantErr := job.ErrInvalidFetch
		if name == "future" {
			wantErr = job.ErrFuture
		}
		if res.Outcome != job.Failed || !errors.Is(err, job.ErrLogic) || !errors.Is(err, wantErr) || errors.Is(err, job.ErrFetch) || res.Retryable() {
			t.Errorf("%s: outcome %v, retryable %v, err %v; want a logic failure", name, res.Outcome, res.Retryable(), err)
		}
	}
	outage := fmt.Errorf("dial tcp: connection refused")
	down := &job.Env{Store: failingStore{Store: st, err: outage}}
	for name, fetch := range map[string]func(c *job.Context) error{
		"as-of":   func(c *job.Context) error { _, err := c.Get("test.other", "k"); return err },
		"history": func(c *job.Context) error { _, err := c.History("test.other", "k", time.Hour); return err },
		"lookup":  func(c *job.Context) error { _, err := c.Lookup("test.other", "user", "u1"); return err },
	} {
		res, err := runFetch(t, down, tr, fetch)
		if res.Outcome != job.Failed || !errors.Is(err, job.ErrFetch) || errors.Is(err, job.ErrLogic) || !res.Retryable() || !errors.Is(err, outage) {
			t.Errorf("%s: outcome %v, retryable %v, err %v; want a retryable fetch failure", name, res.Outcome, res.Retryable(), err)
		}
	}
}

// TestUnknownSource: with the known sources given (Env.Sources), a fetch
// of any other source fails at once with an error naming it, even under
// FetchStrong (no watermark wait until the timeout).
func TestUnknownSource(t *testing.T) {
	st := openStore(t)
	known := func(s string) bool { return s == "test.other" }
	env := &job.Env{Store: st, Sources: known}
	tr := trigger("a", t0, 1)
	for name, fetch := range map[string]func(c *job.Context) error{
		"as-of":   func(c *job.Context) error { _, err := c.Get("test.othre", "k"); return err },
		"history": func(c *job.Context) error { _, err := c.History("test.othre", "k", time.Hour); return err },
		"lookup":  func(c *job.Context) error { _, err := c.Lookup("test.othre", "user", "u1"); return err },
	} {
		start := time.Now()
		res, err := runFetch(t, env, tr, fetch, job.Consistency(job.FetchStrong), job.WaitTimeout(5*time.Second))
		if res.Outcome != job.Failed || !errors.Is(err, job.ErrInvalidFetch) || !errors.Is(err, job.ErrLogic) || res.Retryable() ||
			!strings.Contains(err.Error(), `"test.othre"`) || time.Since(start) > time.Second {
			t.Errorf("%s: outcome %v after %v, err %v", name, res.Outcome, time.Since(start), err)
		}
	}
	// Known sources and the trigger's own source read as usual.
	if res, err := runFetch(t, env, tr, func(c *job.Context) error {
		if _, err := c.Get("test.other", "k"); !errors.Is(err, job.ErrNotFound) {
			return err
		}
		_, err := c.History("test.apps", "a", time.Hour)
		return err
	}); err != nil {
		t.Fatalf("known sources: %v %v", res.Outcome, err)
	}
}

// TestFetchTime: At sets the time a fetch reads as of, Ago goes back from
// it, in either order; asking for a time after the trigger fails with
// ErrFuture naming the trigger's time.
func TestFetchTime(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	var evs []eventcenter.Event
	for m := range 121 { // one event a minute over the two hours before t0
		evs = append(evs, eventcenter.Event{Source: "test.other", Key: "k", Time: t0.Add(time.Duration(m-120) * time.Minute), Op: eventcenter.OpUpdate, After: eventcenter.Row{"m": int64(m - 120)}})
	}
	if err := st.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	tr := trigger("a", t0, 1)
	for _, tc := range []struct {
		name string
		opts []job.FetchOption
		want int64 // minutes relative to t0
	}{
		{"none", nil, 0},
		{"Ago", []job.FetchOption{job.Ago(10 * time.Minute)}, -10},
		{"Ago twice", []job.FetchOption{job.Ago(10 * time.Minute), job.Ago(5 * time.Minute)}, -15},
		{"At", []job.FetchOption{job.At(t0.Add(-time.Hour))}, -60},
		{"At then Ago", []job.FetchOption{job.At(t0.Add(-time.Hour)), job.Ago(30 * time.Minute)}, -90},
		{"Ago then At", []job.FetchOption{job.Ago(30 * time.Minute), job.At(t0.Add(-time.Hour))}, -90},
	} {
		if _, err := runFetch(t, &job.Env{Store: st}, tr, func(c *job.Context) error {
			row, err := c.Get("test.other", "k", tc.opts...)
			if err != nil {
				return err
			}
			if row["m"] != tc.want {
				t.Errorf("%s: read as of minute %v, want %d", tc.name, row["m"], tc.want)
			}
			return nil
		}); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
	_, err := runFetch(t, &job.Env{Store: st}, tr, func(c *job.Context) error {
		_, err := c.Get("test.other", "k", job.Ago(time.Hour), job.At(t0.Add(time.Second)))
		return err
	})
	if !errors.Is(err, job.ErrFuture) || !strings.Contains(err.Error(), t0.Format(time.RFC3339Nano)) {
		t.Fatalf("At after the trigger: %v (must name the trigger time %v)", err, t0.Format(time.RFC3339Nano))
	}
}

// TestAgoOverflowIsRefused: Agos that add up past the largest duration
// must not wrap into a negative offset, which would read after the
// trigger: the fetch is invalid.
func TestAgoOverflowIsRefused(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	after := eventcenter.Event{Source: "test.other", Key: "k", Time: t0.Add(time.Nanosecond), Op: eventcenter.OpInsert, After: eventcenter.Row{"late": true}}
	if err := st.Append(ctx, []eventcenter.Event{after}); err != nil {
		t.Fatal(err)
	}
	res, err := runFetch(t, &job.Env{Store: st}, trigger("a", t0, 1), func(c *job.Context) error {
		row, err := c.Get("test.other", "k", job.Ago(math.MaxInt64), job.Ago(math.MaxInt64))
		if err == nil {
			t.Errorf("read %v, an event after the trigger", row)
		}
		return err
	})
	if res.Outcome != job.Failed || !errors.Is(err, job.ErrInvalidFetch) || res.Retryable() {
		t.Fatalf("outcome %v, err %v; want a failure with ErrInvalidFetch", res.Outcome, err)
	}
}

// TestBeyondHorizonIsNotRetried: a fetch that reaches behind a store's
// retention horizon cannot succeed when retried (the horizon only moves
// forward): the run fails for good (a dead letter in the live worker),
// it is not an outage retried until the worker gives up and restarts on
// the same batch.
func TestBeyondHorizonIsNotRetried(t *testing.T) {
	st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true, Retention: time.Hour, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	res, err := runFetch(t, &job.Env{Store: st}, trigger("a", t0, 1), func(c *job.Context) error {
		_, err := c.History("test.other", "k", 2*time.Hour)
		return err
	})
	if res.Outcome != job.Failed || !errors.Is(err, eventcenter.ErrBeyondHorizon) || errors.Is(err, job.ErrFetch) || res.Retryable() {
		t.Fatalf("outcome %v, retryable %v, err %v; want a failure that is not retried", res.Outcome, res.Retryable(), err)
	}
}

// readerOnly hides every method of a store but job.Store's (a wrapper, a
// cache): the store's index declarations are not at hand.
type readerOnly struct{ job.Store }

// listFails fails ListIndexes (a store outage).
type listFails struct{ *embedded.Store }

func (listFails) ListIndexes(context.Context, string) ([]eventcenter.Index, error) {
	return nil, errors.New("connection reset")
}

// TestLookupAtTriggerNeedsTheIndexColumn: a lookup at the trigger's time,
// whose key changed again at that time after the trigger, re-reads the
// trigger key's state and checks its value in the index's column. When the
// column cannot be known (the store does not list indexes, or fails to) the
// fetch fails; it must not guess the column from the index's name and drop
// the trigger key silently.
func TestLookupAtTriggerNeedsTheIndexColumn(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	if err := st.DeclareIndex(ctx, eventcenter.Index{Source: "test.apps", Name: "by_user", Column: "user"}); err != nil {
		t.Fatal(err)
	}
	tr := trigger("a2", t0, 2)
	moved := trigger("a2", t0, 3)
	moved.Op, moved.After = eventcenter.OpUpdate, eventcenter.Row{"user": "u2"}
	if err := st.Append(ctx, []eventcenter.Event{trigger("a1", t0.Add(-time.Hour), 1), tr, moved}); err != nil {
		t.Fatal(err)
	}
	lookup := func(c *job.Context) error {
		evs, err := c.Lookup("test.apps", "by_user", "u1")
		if err != nil {
			return err
		}
		if len(evs) != 2 || evs[1].Key != "a2" || evs[1].Pos != tr.Pos {
			t.Errorf("lookup of u1 at the trigger: %d events %+v, want a1 and the trigger", len(evs), evs)
		}
		return nil
	}
	if _, err := runFetch(t, &job.Env{Store: st}, tr, lookup); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]job.Store{"no index list": readerOnly{st}, "index list fails": listFails{st}} {
		res, err := runFetch(t, &job.Env{Store: s}, tr, lookup)
		if res.Outcome != job.Failed || err == nil {
			t.Errorf("%s: outcome %v, err %v; want a failed fetch", name, res.Outcome, err)
		}
	}
}

// TestTriggerKeyFetchReadsOnce: a fetch of the trigger's own key at the
// trigger's time costs one as-of read when the trigger is the key's latest
// change at that time (the store's answer then is the trigger's state), and
// answers the state as of the trigger's position whatever came after it at
// the same time: a change, or a removal.
func TestTriggerKeyFetchReadsOnce(t *testing.T) {
	ctx := context.Background()
	base := openStore(t)
	st := &countingStore{Store: base}
	row := func(e eventcenter.Event, op eventcenter.Op, after eventcenter.Row) eventcenter.Event {
		e.Op, e.After = op, after
		return e
	}
	alone := trigger("a1", t0, 1)
	changed := trigger("a2", t0, 2)
	removed := trigger("a3", t0, 4)
	gone := row(trigger("a4", t0, 6), eventcenter.OpDelete, nil)
	if err := base.Append(ctx, []eventcenter.Event{
		alone, changed, row(trigger("a2", t0, 3), eventcenter.OpUpdate, eventcenter.Row{"user": "u2"}),
		removed, row(trigger("a3", t0, 5), eventcenter.OpDelete, nil), gone,
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		trigger  eventcenter.Event
		want     error // of the fetch
		maxReads int64
	}{
		{"the latest change", alone, nil, 1},
		{"changed again at its time", changed, nil, 3},
		{"removed at its time", removed, nil, 3},
		{"a removal", gone, job.ErrNotFound, 3},
	} {
		before := st.reads.Load()
		_, err := runFetch(t, &job.Env{Store: st}, tc.trigger, func(c *job.Context) error {
			e, err := c.AsOf("test.apps", c.Trigger().Key)
			if !errors.Is(err, tc.want) || (err == nil && e.Pos != tc.trigger.Pos) {
				t.Errorf("%s: as-of the trigger key: %v, %v; want the trigger's state (%v)", tc.name, e.ID(), err, tc.want)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if n := st.reads.Load() - before; n > tc.maxReads {
			t.Errorf("%s: %d reads, want at most %d", tc.name, n, tc.maxReads)
		}
	}
}
