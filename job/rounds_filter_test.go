package job_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/params"
)

// TestRoundsReadNoParametersForFilteredTriggers: EvaluateAll's callers
// (the live worker, the sample activity) pass triggers the job's filters
// have not seen. A run whose trigger the filters reject is skipped before
// its parameters are read, in rounds as on the gathered path.
func TestRoundsReadNoParametersForFilteredTriggers(t *testing.T) {
	const n = 200
	run := func(t *testing.T) (reads int64, ok int) {
		st, _, trig := gatherFixture(t, n)
		remote := &remoteStore{Store: st, width: 1024}
		j := limitJob(job.Trigger("test.apps", job.Where("one in ten", func(e *eventcenter.Event) bool { return e.Pos.Offset%10 == 0 })))
		env := &job.Env{Store: remote, Params: job.ParamsAsOfTrigger(params.NewEventCenter(remote, nil))}
		res := make([]job.Result, n)
		job.EvaluateAll(context.Background(), j, env, trig, res, 0)
		for i := range res {
			if res[i].Outcome == job.OK {
				ok++
			}
		}
		return remote.reads.Load(), ok
	}
	var rr, gr int64
	var rok, gok int
	t.Run("rounds", func(t *testing.T) { rr, rok = run(t) })
	t.Run("gathered", func(t *testing.T) {
		defer job.WithoutRounds()()
		gr, gok = run(t)
	})
	t.Logf("registry reads: rounds %d (%d OK runs), gathered alone %d (%d OK runs)", rr, rok, gr, gok)
	if rr > gr {
		t.Errorf("rounds read the registry %d times for %d accepted triggers; the gathered path alone %d", rr, rok, gr)
	}
}

// TestRoundsUnderAPrefetch: under a Prefetch (the sample
// activity), runs in rounds whose reads are partly prefetched, some of
// which go on to the gathered path (History) with their answers replayed,
// give the records of the store read one fetch at a time.
func TestRoundsUnderAPrefetch(t *testing.T) {
	ctx := context.Background()
	remote, trig := chainFixture(t, 200, 3)
	for _, src := range []string{"test.apps", "test.chain", "test.users"} {
		if err := remote.Store.AdvanceWatermark(ctx, src, 0, t0.Add(24*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	fill := func(s job.Store) *job.Prefetch {
		pf := job.NewPrefetch(s)
		var qs []eventcenter.AsOf
		for _, e := range trig {
			qs = append(qs, eventcenter.AsOf{Source: e.Source, Key: e.Key, Time: e.Time},
				eventcenter.AsOf{Source: "test.chain", Key: "k0", Time: e.Time})
		}
		if err := pf.Fill(ctx, qs, make([]eventcenter.AsOfResult, len(qs))); err != nil {
			t.Fatal(err)
		}
		return pf
	}
	j := job.MustNew("pf", func(c *job.Context) (eventcenter.Row, error) {
		self, err := c.Get("test.apps", c.Trigger().Key)
		if err != nil {
			return nil, fmt.Errorf("self: %w", err)
		}
		user := self["user"].(string)
		u, err := c.Get("test.users", user)
		if err != nil && !errors.Is(err, eventcenter.ErrNotFound) {
			return nil, err
		}
		k0, err := c.Get("test.chain", "k0")
		if err != nil {
			return nil, err
		}
		out := eventcenter.Row{"u": u["v"], "k0": k0["v"]}
		if c.Trigger().Pos.Offset%3 == 0 {
			h, err := c.History("test.users", user, 24*time.Hour)
			if err != nil {
				return nil, err
			}
			out["h"] = int64(len(h))
		}
		k1, err := c.Get("test.chain", "k1")
		if err != nil {
			return nil, err
		}
		out["k1"] = k1["v"]
		return out, nil
	}, job.Trigger("test.apps"), job.Lineage())
	want, got := make([]job.Result, len(trig)), make([]job.Result, len(trig))
	job.EvaluateAll(ctx, j, &job.Env{Store: fill(remote.Store)}, trig, want, 0)
	job.EvaluateAll(ctx, j, &job.Env{Store: fill(remote)}, trig, got, 0)
	for i := range trig {
		if want[i].Outcome != job.OK {
			t.Fatalf("run %d on the store: %v %v", i, want[i].Outcome, want[i].Err)
		}
		if got[i].Outcome != job.OK || !reflect.DeepEqual(got[i].Record, want[i].Record) || got[i].Stats != want[i].Stats {
			t.Fatalf("run %d: %v %v %+v %+v; on the store %+v %+v", i, got[i].Outcome, got[i].Err, got[i].Record, got[i].Stats, want[i].Record, want[i].Stats)
		}
	}
	t.Logf("batches %d, batched reads %d, single reads %d", remote.batches.Load(), remote.batched.Load(), remote.reads.Load())
}
