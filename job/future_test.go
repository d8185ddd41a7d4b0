package job_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/job"
)

func openStore(t testing.TB) *embedded.Store {
	t.Helper()
	st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

var t0 = time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)

// TestNoFetchSeesTheFuture runs a job whose logic fetches everything it can
// (as-of of every key, full history, index lookups, explicit later times)
// on random triggers over random events, many sharing a time, and checks
// that no fetch returns an event after the trigger (time, or for the
// trigger's own key time and position), and that every as-of answer is the
// one a brute-force model gives.
func TestNoFetchSeesTheFuture(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	ctx := context.Background()
	st := openStore(t)
	const trig, other = "test.trigger", "test.other"
	for _, src := range []string{trig, other} {
		if err := st.DeclareIndex(ctx, eventcenter.Index{Source: src, Name: "user", Column: "user"}); err != nil {
			t.Fatal(err)
		}
	}
	var all []eventcenter.Event
	keys := []string{"k1", "k2", "k3", "k4"}
	for i := range 400 {
		src := []string{trig, other}[rng.IntN(2)]
		e := eventcenter.Event{
			Source: src, Key: keys[rng.IntN(len(keys))],
			Time: t0.Add(time.Duration(rng.IntN(20)) * time.Second), // many equal times
			Pos:  eventcenter.Position{Log: uint64(rng.IntN(2)), Offset: uint64(i)},
			Op:   eventcenter.OpUpdate,
		}
		if rng.IntN(8) == 0 {
			e.Op = eventcenter.OpDelete
		} else {
			e.After = eventcenter.Row{"user": fmt.Sprint("u", rng.IntN(2)), "n": int64(i)}
		}
		all = append(all, e)
	}
	if err := st.Append(ctx, all); err != nil {
		t.Fatal(err)
	}

	// after reports whether e comes after trigger tr for a run on tr.
	after := func(e, tr *eventcenter.Event) bool {
		if e.Time.After(tr.Time) {
			return true
		}
		return e.Source == tr.Source && e.Key == tr.Key && e.Time.Equal(tr.Time) && e.Pos.Compare(tr.Pos) > 0
	}
	// model returns the expected as-of state of (src, key) for a run on tr.
	model := func(src, key string, tr *eventcenter.Event) (eventcenter.Event, bool) {
		var best *eventcenter.Event
		for i := range all {
			e := &all[i]
			if e.Source != src || e.Key != key || after(e, tr) {
				continue
			}
			if best == nil || e.Time.After(best.Time) || e.Time.Equal(best.Time) && e.Pos.Compare(best.Pos) > 0 {
				best = e
			}
		}
		if best == nil || best.After == nil {
			return eventcenter.Event{}, false
		}
		return *best, true
	}

	var problems []string
	logic := func(c *job.Context) (eventcenter.Row, error) {
		tr := c.Trigger()
		check := func(what string, e eventcenter.Event) {
			if after(&e, &tr) {
				problems = append(problems, fmt.Sprintf("%s: run on %s/%s@%v%v saw %s/%s@%v%v", what, tr.Source, tr.Key, tr.Time, tr.Pos, e.Source, e.Key, e.Time, e.Pos))
			}
		}
		for _, src := range []string{trig, other} {
			for _, k := range keys {
				e, err := c.AsOf(src, k)
				want, ok := model(src, k, &tr)
				switch {
				case errors.Is(err, job.ErrNotFound) && !ok:
				case errors.Is(err, job.ErrNotFound):
					problems = append(problems, fmt.Sprintf("as-of %s/%s for trigger %v: not found, want %v", src, k, tr.ID(), want.ID()))
				case err != nil:
					return nil, err
				case !ok || e.ID() != want.ID():
					problems = append(problems, fmt.Sprintf("as-of %s/%s for trigger %v: got %v, want %v (found %v)", src, k, tr.ID(), e.ID(), want.ID(), ok))
				}
				if err == nil {
					check("as-of", e)
				}
				hist, err := c.History(src, k, 24*time.Hour)
				if err != nil {
					return nil, err
				}
				for _, e := range hist {
					check("history", e)
				}
			}
			for _, u := range []string{"u0", "u1"} {
				evs, err := c.Lookup(src, "user", u)
				if err != nil {
					return nil, err
				}
				for _, e := range evs {
					check("lookup", e)
					if want, ok := model(src, e.Key, &tr); !ok || want.ID() != e.ID() {
						problems = append(problems, fmt.Sprintf("lookup %s %s for %v: %v is not the state", src, u, tr.ID(), e.ID()))
					}
				}
			}
			if _, err := c.AsOf(src, "k1", job.At(tr.Time.Add(time.Nanosecond))); !errors.Is(err, job.ErrFuture) {
				problems = append(problems, fmt.Sprintf("At(later): got %v", err))
			}
			if _, err := c.History(src, "k1", time.Hour, job.Ago(-time.Second)); !errors.Is(err, job.ErrFuture) {
				problems = append(problems, fmt.Sprintf("Ago(-1s): got %v", err))
			}
			if _, err := c.Lookup(src, "user", "u0", job.At(t0.Add(time.Hour))); !errors.Is(err, job.ErrFuture) {
				problems = append(problems, fmt.Sprintf("lookup At(later): got %v", err))
			}
		}
		return eventcenter.Row{"ok": true}, nil
	}
	j := job.MustNew("no-future", logic, job.Trigger(trig))
	env := &job.Env{Store: st}
	runs := 0
	for i := range all {
		if all[i].Source != trig || all[i].After == nil {
			continue
		}
		if _, err := job.Run(ctx, j, all[i], env); err != nil {
			t.Fatal(err)
		}
		runs++
		if len(problems) > 0 {
			t.Fatalf("seed %d: %d problems, first: %v", seed, len(problems), problems[:min(5, len(problems))])
		}
	}
	t.Logf("%d runs, no fetch saw the future", runs)
}

// TestNoFallbackSeesTheFuture: a source fallback that answers with a row
// changed after the fetch time is not believed.
func TestNoFallbackSeesTheFuture(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	trigger := eventcenter.Event{Source: "test.t", Key: "a", Time: t0, Op: eventcenter.OpInsert, After: eventcenter.Row{"x": 1}}
	fb := fallbackFunc(func(source, key string, at time.Time) (eventcenter.Event, error) {
		return eventcenter.Event{Source: source, Key: key, Time: at.Add(time.Second), Op: eventcenter.OpUpdate, After: eventcenter.Row{"v": "future"}}, nil
	})
	var got error
	j := job.MustNew("fb", func(c *job.Context) (eventcenter.Row, error) {
		_, got = c.Get("test.src", "k")
		return nil, nil
	}, job.Trigger("test.t"), job.Consistency(job.FetchStrongNoDelay), job.WaitTimeout(20*time.Millisecond))
	res, _ := job.Run(ctx, j, trigger, &job.Env{Store: st, Fallback: fb})
	if !errors.Is(got, job.ErrStale) || res.Stats.Misses != 1 || res.Stats.Fallbacks != 0 {
		t.Fatalf("fetch: %v, stats %+v", got, res.Stats)
	}
}

type fallbackFunc func(source, key string, at time.Time) (eventcenter.Event, error)

func (f fallbackFunc) Covers(string) bool { return true }
func (f fallbackFunc) Read(_ context.Context, source, key string, at time.Time) (eventcenter.Event, error) {
	return f(source, key, at)
}

func openStoreClock(t testing.TB, now func() time.Time) (*embedded.Store, error) {
	st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true, Now: now})
	if err == nil {
		t.Cleanup(func() { st.Close() })
	}
	return st, err
}
