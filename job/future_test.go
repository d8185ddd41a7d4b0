package job_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
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

// testSeed returns the seed of a randomized test: JOBTEST_SEED if set,
// else one from the clock. It is logged with the way to replay it.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("JOBTEST_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("JOBTEST_SEED=%q: %v", s, err)
		}
	}
	t.Logf("seed %d (replay: JOBTEST_SEED=%d go test ./job -run '^%s$')", seed, seed, t.Name())
	return seed
}

// TestNoFetchSeesTheFuture runs a job whose logic fetches everything it can
// (as-of of every key, histories, index lookups), at the trigger's time and
// at earlier times asked with At, Ago and both, on random triggers over
// random events, many sharing a time. Every answer must be the one a
// brute-force model gives for the asked time: no event after that time
// (nor, at the trigger's time, a change of the trigger's own key after the
// trigger's position), and nothing missing. Asking for a later time fails.
func TestNoFetchSeesTheFuture(t *testing.T) {
	seed := testSeed(t)
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

	// after reports whether e comes after the time at of a run on trigger
	// tr: a later time, or at the trigger's own time a later change of its
	// own key.
	after := func(e, tr *eventcenter.Event, at time.Time) bool {
		if e.Time.After(at) {
			return true
		}
		return at.Equal(tr.Time) && e.Source == tr.Source && e.Key == tr.Key && e.Time.Equal(tr.Time) && e.Pos.Compare(tr.Pos) > 0
	}
	// model returns the expected state of (src, key) at time at for a run on tr.
	model := func(src, key string, tr *eventcenter.Event, at time.Time) (eventcenter.Event, bool) {
		var best *eventcenter.Event
		for i := range all {
			e := &all[i]
			if e.Source != src || e.Key != key || after(e, tr, at) {
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
	// modelHistory returns the expected history of (src, key) in [at-window, at].
	modelHistory := func(src, key string, tr *eventcenter.Event, at time.Time, window time.Duration) []eventcenter.ID {
		var ids []eventcenter.ID
		for i := range all {
			e := &all[i]
			if e.Source == src && e.Key == key && !e.Time.Before(at.Add(-window)) && !after(e, tr, at) {
				ids = append(ids, e.ID())
			}
		}
		slices.SortFunc(ids, func(a, b eventcenter.ID) int {
			if c := a.Time.Compare(b.Time); c != 0 {
				return c
			}
			return a.Pos.Compare(b.Pos)
		})
		return ids
	}

	var problems []string
	report := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	logic := func(c *job.Context) (eventcenter.Row, error) {
		tr := c.Trigger()
		// The times asked: the trigger's, and earlier ones through At, Ago
		// and both (often an event's time, which many events share).
		type asked struct {
			name string
			at   time.Time
			opts []job.FetchOption
		}
		times := []asked{{"trigger", tr.Time, nil}}
		back := time.Duration(rng.IntN(20)) * time.Second
		if rng.IntN(4) == 0 {
			back += time.Duration(rng.IntN(1000)) * time.Millisecond
		}
		at := tr.Time.Add(-back)
		times = append(times,
			asked{"At", at, []job.FetchOption{job.At(at)}},
			asked{"Ago", at, []job.FetchOption{job.Ago(back)}},
			asked{"At+Ago", at, []job.FetchOption{job.At(at.Add(time.Second)), job.Ago(time.Second)}},
			asked{"Ago+At", at, []job.FetchOption{job.Ago(time.Second), job.At(at.Add(time.Second))}},
		)
		if at.Add(time.Second).After(tr.Time) { // At later than the trigger: not asked
			times = times[:3]
		}
		for _, a := range times {
			for _, src := range []string{trig, other} {
				for _, k := range keys {
					e, err := c.AsOf(src, k, a.opts...)
					want, ok := model(src, k, &tr, a.at)
					switch {
					case errors.Is(err, job.ErrNotFound) && !ok:
					case errors.Is(err, job.ErrNotFound):
						report("%s as-of %s/%s at %v for trigger %v: not found, want %v", a.name, src, k, a.at, tr.ID(), want.ID())
					case err != nil:
						return nil, err
					case !ok || e.ID() != want.ID():
						report("%s as-of %s/%s at %v for trigger %v: got %v, want %v (found %v)", a.name, src, k, a.at, tr.ID(), e.ID(), want.ID(), ok)
					}
					window := time.Duration(rng.IntN(10)) * time.Second
					hist, err := c.History(src, k, window, a.opts...)
					if err != nil {
						return nil, err
					}
					var got []eventcenter.ID
					for _, e := range hist {
						got = append(got, e.ID())
					}
					if wantH := modelHistory(src, k, &tr, a.at, window); !slices.Equal(got, wantH) {
						report("%s history %s/%s [%v-%v] for trigger %v: got %v, want %v", a.name, src, k, a.at, window, tr.ID(), got, wantH)
					}
				}
				for _, u := range []string{"u0", "u1"} {
					evs, err := c.Lookup(src, "user", u, a.opts...)
					if err != nil {
						return nil, err
					}
					var got, wantL []eventcenter.ID
					for _, e := range evs {
						got = append(got, e.ID())
					}
					for _, k := range keys {
						if e, ok := model(src, k, &tr, a.at); ok && e.After["user"] == u {
							wantL = append(wantL, e.ID())
						}
					}
					if !slices.Equal(got, wantL) {
						report("%s lookup %s user=%s at %v for trigger %v: got %v, want %v", a.name, src, u, a.at, tr.ID(), got, wantL)
					}
				}
			}
		}
		if _, err := c.AsOf(other, "k1", job.At(tr.Time.Add(time.Nanosecond))); !errors.Is(err, job.ErrFuture) {
			report("At(later): got %v", err)
		}
		if _, err := c.History(other, "k1", time.Hour, job.Ago(-time.Second)); !errors.Is(err, job.ErrFuture) {
			report("Ago(-1s): got %v", err)
		}
		if _, err := c.Lookup(trig, "user", "u0", job.At(t0.Add(time.Hour)), job.Ago(2*time.Hour)); !errors.Is(err, job.ErrFuture) {
			report("lookup At(later) then Ago: got %v", err)
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
	t.Logf("%d runs, no fetch saw the future or missed the past", runs)
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
	res, err := job.Run(ctx, j, trigger, &job.Env{Store: st, Fallback: fb})
	if err != nil {
		t.Fatal(err)
	}
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
