package job_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/params"
)

// copyTriggers gives each evaluation its own trigger rows.
func copyTriggers(trig []eventcenter.Event) []eventcenter.Event {
	out := make([]eventcenter.Event, len(trig))
	for i, e := range trig {
		e.After, e.Before = maps.Clone(e.After), maps.Clone(e.Before)
		out[i] = e
	}
	return out
}

// TestRoundsReadNothingTwiceAtTheLimit: a chain of exactly roundsMax (4)
// reads ends in rounds, reading no more than the gathered path alone.
func TestRoundsReadNothingTwiceAtTheLimit(t *testing.T) {
	var evaluations atomic.Int64
	j := job.MustNew("four", followChain(3, &evaluations), job.Trigger("test.apps")) // 1 + 3 = 4 reads
	r, g := batchesOnBothPaths(t, j, 6)
	if r.batches > g.batches || r.reads > g.reads {
		t.Errorf("rounds: %d batches / %d reads, gathered alone: %d / %d", r.batches, r.reads, g.batches, g.reads)
	}
}

// batched counts the batches of reads an evaluation made, and the reads in
// them.
type batched struct{ batches, reads int64 }

// batchesOnBothPaths evaluates j over a chainFixture of links (see
// evaluateBoth) in rounds and on the gathered path alone, and returns the
// batches each read.
func batchesOnBothPaths(t *testing.T, j *job.Job, links int) (rounds, gathered batched) {
	count := func(t *testing.T) batched {
		remote, trig := chainFixture(t, 200, links)
		evaluateBoth(t, j, remote, trig)
		return batched{remote.batches.Load(), remote.batched.Load()}
	}
	t.Run("rounds", func(t *testing.T) { rounds = count(t) })
	t.Run("gathered", func(t *testing.T) {
		defer job.WithoutRounds()()
		gathered = count(t)
	})
	t.Logf("rounds: %d batches, %d reads; gathered alone: %d batches, %d reads", rounds.batches, rounds.reads, gathered.batches, gathered.reads)
	return rounds, gathered
}

// TestRoundsReadParametersOnceAndTogether: a job with a parameter, its
// values read as of each trigger from a registry on the remote store (the
// backfill's default, "asof"), reads the registry once per run, however
// many rounds it takes, and those reads are in flight together.
func TestRoundsReadParametersOnceAndTogether(t *testing.T) {
	const n = 200
	run := func(t *testing.T) (time.Duration, int64) {
		st, _, trig := gatherFixture(t, n)
		remote := &remoteStore{Store: st, width: 1024, latency: 2 * time.Millisecond}
		j := limitJob(job.Trigger("test.apps"))
		env := &job.Env{Store: remote, Params: job.ParamsAsOfTrigger(params.NewEventCenter(remote, nil))}
		res := make([]job.Result, n)
		start := time.Now()
		job.EvaluateAll(context.Background(), j, env, trig, res, 0)
		took := time.Since(start)
		for i := range res {
			if res[i].Outcome != job.OK {
				t.Fatalf("run %d: %v %v", i, res[i].Outcome, res[i].Err)
			}
		}
		return took, remote.reads.Load()
	}
	var rt, gt time.Duration
	var rr, gr int64
	t.Run("rounds", func(t *testing.T) { rt, rr = run(t) })
	t.Run("gathered", func(t *testing.T) {
		defer job.WithoutRounds()()
		gt, gr = run(t)
	})
	t.Logf("rounds: %v, %d single reads; gathered alone: %v, %d single reads", rt, rr, gt, gr)
	if rr > gr || rt > 5*gt+50*time.Millisecond {
		t.Errorf("rounds: %v and %d single reads; gathered alone %v and %d", rt, rr, gt, gr)
	}
}

// limitJob is a job with a parameter (limit) whose logic reads the
// trigger's user and outputs the user's v and the limit.
func limitJob(trigger job.Option) *job.Job {
	return job.MustNew("p", func(c *job.Context) (eventcenter.Row, error) {
		row, err := c.Get("test.users", c.Trigger().After["user"].(string))
		if errors.Is(err, eventcenter.ErrNotFound) {
			return eventcenter.Row{"v": nil, "lim": c.Int("limit")}, nil
		}
		if err != nil {
			return nil, err
		}
		return eventcenter.Row{"v": row["v"], "lim": c.Int("limit")}, nil
	}, trigger, job.Param(params.Decl{Name: "limit", Type: params.Int, Default: 3, Description: "d"}))
}

// TestRoundsHandEachRoundItsOwnTrigger: a logic that takes a column out of
// its trigger's row before it reads finds the row whole when it is
// evaluated again in the next round.
func TestRoundsHandEachRoundItsOwnTrigger(t *testing.T) {
	remote, trig := chainFixture(t, 100, 3)
	j := job.MustNew("consume", func(c *job.Context) (eventcenter.Row, error) {
		f := c.Trigger().After
		user, _ := f["user"].(string)
		delete(f, "user") // the rest of the trigger's row goes out as features
		row, err := c.Get("test.users", user)
		if errors.Is(err, eventcenter.ErrNotFound) {
			return eventcenter.Row{"v": nil}, nil
		}
		if err != nil {
			return nil, err
		}
		f["v"] = row["v"]
		return f, nil
	}, job.Trigger("test.apps"))
	ctx := context.Background()
	want, got := make([]job.Result, len(trig)), make([]job.Result, len(trig))
	job.EvaluateAll(ctx, j, &job.Env{Store: remote.Store}, copyTriggers(trig), want, 0)
	job.EvaluateAll(ctx, j, &job.Env{Store: remote}, copyTriggers(trig), got, 0)
	for i := range trig {
		if got[i].Outcome != want[i].Outcome || !reflect.DeepEqual(got[i].Record, want[i].Record) {
			t.Fatalf("run %d: %v %v %+v; on the store: %v %+v", i, got[i].Outcome, got[i].Err, got[i].Record, want[i].Outcome, want[i].Record)
		}
	}
}

// TestRoundsCopyBytesValues: a logic that changes a []byte value of a row
// in place before its next read finds it as read the next round.
func TestRoundsCopyBytesValues(t *testing.T) {
	remote, trig := chainFixture(t, 100, 3)
	if err := remote.Store.Append(context.Background(), []eventcenter.Event{{Source: "test.blob", Key: "b", Time: t0.Add(-time.Hour),
		Op: eventcenter.OpInsert, After: eventcenter.Row{"b": []byte("abc")}}}); err != nil {
		t.Fatal(err)
	}
	j := job.MustNew("bytes", func(c *job.Context) (eventcenter.Row, error) {
		row, err := c.Get("test.blob", "b")
		if err != nil {
			return nil, err
		}
		b := row["b"].([]byte)
		first := string(b)
		b[0] = 'X' // decoded in place
		if _, err := c.Get("test.chain", "k1"); err != nil {
			return nil, err
		}
		return eventcenter.Row{"first": first}, nil
	}, job.Trigger("test.apps"))
	evaluateBoth(t, j, remote, trig)
}

// TestRoundsEndWithTheirContext: cancelled between two rounds, the
// evaluation returns, and every run not done fails on the context
// (retryably).
func TestRoundsEndWithTheirContext(t *testing.T) {
	remote, trig := chainFixture(t, 200, 5)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var n atomic.Int64
	remote.onBatch = func([]eventcenter.AsOf) {
		if n.Add(1) == 2 {
			cancel()
		}
	}
	var evaluations atomic.Int64
	j := job.MustNew("cancel", followChain(3, &evaluations), job.Trigger("test.apps"))
	res := make([]job.Result, len(trig))
	done := make(chan struct{})
	go func() {
		job.EvaluateAll(ctx, j, &job.Env{Store: remote}, trig, res, 0)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("hangs")
	}
	ok := 0
	for i := range res {
		switch {
		case res[i].Outcome == job.OK:
			ok++
		case !res[i].Retryable() || !errors.Is(res[i].Err, context.Canceled):
			t.Errorf("run %d: %v %v", i, res[i].Outcome, res[i].Err)
		}
	}
	t.Logf("%d OK (runs without a user finish after one read), batches %d", ok, remote.batches.Load())
}

// TestRoundsResultsAsOnTheStore: results as on the store read one fetch at
// a time, outcome, error, record, lineage and stats: trigger-key reads
// (with and without a later change at the trigger's instant), not-found,
// invalid and future fetches, skipped and panicking runs, KnownAt.
func TestRoundsResultsAsOnTheStore(t *testing.T) {
	remote, trig := chainFixture(t, 300, 3)
	// A later change of some triggers' keys at their own instant.
	var later []eventcenter.Event
	for i := 0; i < len(trig); i += 7 {
		e := trig[i]
		e.Pos = eventcenter.Position{Offset: e.Pos.Offset + 100000}
		e.Op, e.After = eventcenter.OpUpdate, eventcenter.Row{"user": "later"}
		later = append(later, e)
	}
	if err := remote.Store.Append(context.Background(), later); err != nil {
		t.Fatal(err)
	}
	j := job.MustNew("broad", func(c *job.Context) (eventcenter.Row, error) {
		self, err := c.Get("test.apps", c.Trigger().Key)
		if err != nil {
			return nil, fmt.Errorf("self: %w", err)
		}
		_, nf := c.Get("test.users", "nobody")
		_, inv := c.Get("test.users", "u1", job.At(time.Time{}))
		_, fut := c.Get("test.users", "u1", job.At(c.Time().Add(time.Hour)))
		u, err := c.Get("test.users", c.Trigger().After["user"].(string), job.Ago(time.Minute))
		if err != nil && !errors.Is(err, eventcenter.ErrNotFound) {
			return nil, err
		}
		if c.Trigger().Pos.Offset%11 == 0 {
			return nil, nil // skipped
		}
		if c.Trigger().Pos.Offset%13 == 0 {
			panic("boom")
		}
		return eventcenter.Row{"self": self["user"], "nf": fmt.Sprint(nf), "inv": errors.Is(inv, job.ErrInvalidFetch),
			"fut": errors.Is(fut, job.ErrFuture), "u": u["v"]}, nil
	}, job.Trigger("test.apps"), job.Lineage())
	ctx := context.Background()
	for _, known := range []func(*eventcenter.Event) time.Time{nil, job.KnownAtFixed(time.Now().Add(time.Hour))} {
		want, got := make([]job.Result, len(trig)), make([]job.Result, len(trig))
		job.EvaluateAll(ctx, j, &job.Env{Store: remote.Store, KnownAt: known}, trig, want, 0)
		job.EvaluateAll(ctx, j, &job.Env{Store: remote, KnownAt: known}, trig, got, 0)
		for i := range trig {
			g, w := got[i], want[i]
			ge, we := fmt.Sprint(g.Err), fmt.Sprint(w.Err)
			if g.Outcome == job.Failed && w.Outcome == job.Failed && errors.Is(g.Err, job.ErrLogic) {
				ge, we = "", "" // panics carry stacks
			}
			if g.Outcome != w.Outcome || ge != we || !reflect.DeepEqual(g.Record, w.Record) || g.Stats != w.Stats {
				t.Fatalf("run %d: %v %v %+v %+v; on the store %v %v %+v %+v", i, g.Outcome, g.Err, g.Record, g.Stats, w.Outcome, w.Err, w.Record, w.Stats)
			}
		}
	}
}

// TestRoundsGatheredRunsKeepTheirAnswers: a run that reads History after an
// as-of read goes on to the gathered path with that read's answer, and
// does not read it again.
func TestRoundsGatheredRunsKeepTheirAnswers(t *testing.T) {
	j := job.MustNew("hist", func(c *job.Context) (eventcenter.Row, error) {
		user := c.Trigger().After["user"].(string)
		if _, err := c.Get("test.users", user); err != nil && !errors.Is(err, eventcenter.ErrNotFound) {
			return nil, err
		}
		h, err := c.History("test.users", user, time.Hour)
		if err != nil {
			return nil, err
		}
		return eventcenter.Row{"n": int64(len(h))}, nil
	}, job.Trigger("test.apps"))
	r, g := batchesOnBothPaths(t, j, 3)
	if r.reads > g.reads {
		t.Errorf("rounds: %d batches / %d reads, gathered alone: %d / %d", r.batches, r.reads, g.batches, g.reads)
	}
}
