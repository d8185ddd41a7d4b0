package job_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
)

// chainFixture adds to a gatherFixture's store a chain of rows
// test.chain/k0 → k1 → … (each row names the next), stored before every
// trigger.
func chainFixture(t *testing.T, n, links int) (*remoteStore, []eventcenter.Event) {
	st, _, trig := gatherFixture(t, n)
	var evs []eventcenter.Event
	for i := range links + 1 {
		evs = append(evs, eventcenter.Event{Source: "test.chain", Key: fmt.Sprint("k", i), Time: t0.Add(-time.Hour),
			Pos: eventcenter.Position{Offset: uint64(i)}, Op: eventcenter.OpInsert,
			After: eventcenter.Row{"next": fmt.Sprint("k", i+1), "v": int64(i)}})
	}
	if err := st.Append(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	return &remoteStore{Store: st, width: 1024, latency: time.Millisecond}, trig
}

// followChain is a logic that reads the trigger's user, then follows the
// chain from k<user's v mod 3> for links reads, each read's key taken from
// the answer before: links+1 reads in a chain.
func followChain(links int, evaluations *atomic.Int64) job.Logic {
	return func(c *job.Context) (eventcenter.Row, error) {
		evaluations.Add(1)
		u, err := c.Get("test.users", c.Trigger().After["user"].(string))
		if errors.Is(err, eventcenter.ErrNotFound) {
			return eventcenter.Row{"sum": nil}, nil
		}
		if err != nil {
			return nil, err
		}
		key, sum := fmt.Sprint("k", u["v"].(int64)%3), int64(0)
		for range links {
			row, err := c.Get("test.chain", key)
			if err != nil {
				return nil, err
			}
			sum += row["v"].(int64)
			key = row["next"].(string)
		}
		return eventcenter.Row{"sum": sum}, nil
	}
}

// evaluateBoth evaluates j over trig on the remote store and, for the
// answers to compare with, on the store underneath read one fetch at a
// time; every run must be OK on both, with the same records.
func evaluateBoth(t *testing.T, j *job.Job, remote *remoteStore, trig []eventcenter.Event) []job.Result {
	t.Helper()
	ctx := context.Background()
	got, want := make([]job.Result, len(trig)), make([]job.Result, len(trig))
	job.EvaluateAll(ctx, j, &job.Env{Store: remote.Store}, trig, want, 0)
	job.EvaluateAll(ctx, j, &job.Env{Store: remote}, trig, got, 0)
	for i := range trig {
		if want[i].Outcome != job.OK {
			t.Fatalf("run %d on the store: %v, %v", i, want[i].Outcome, want[i].Err)
		}
		if got[i].Outcome != job.OK || !reflect.DeepEqual(got[i].Record, want[i].Record) {
			t.Fatalf("run %d: %v %v %+v; read one at a time: %+v", i, got[i].Outcome, got[i].Err, got[i].Record, want[i].Record)
		}
	}
	return got
}

// TestRoundsChainedReads: runs whose reads form a chain (each key from the
// answer before) read in one batch per link, none alone, give the records
// of a store read one fetch at a time, and run their logic once per read
// plus once.
func TestRoundsChainedReads(t *testing.T) {
	const n, links = 300, 2
	remote, trig := chainFixture(t, n, links+3)
	var evaluations atomic.Int64
	j := job.MustNew("chain", followChain(links, &evaluations), job.Trigger("test.apps"))
	got := evaluateBoth(t, j, remote, trig)
	if b, r := remote.batches.Load(), remote.reads.Load(); b != links+1 || r != 0 {
		t.Errorf("%d batches and %d single reads for chains of %d reads: want %d batches", b, r, links+1, links+1)
	}
	// Runs with a user: links+1 reads, links+2 evaluations; without (every
	// 97th from 13): 1 read, 2 evaluations; and the reference's one each.
	var want int64
	for i := range got {
		if got[i].Record.Features["sum"] == nil {
			want += 2 + 1
		} else {
			want += links + 2 + 1
		}
	}
	if e := evaluations.Load(); e != want {
		t.Errorf("%d evaluations, want %d", e, want)
	}
}

// TestRoundsLongChainsFinishGathered: a chain of reads longer than rounds
// go finishes with its reads gathered, with the same records.
func TestRoundsLongChainsFinishGathered(t *testing.T) {
	const links = 7
	remote, trig := chainFixture(t, 200, links+3)
	var evaluations atomic.Int64
	j := job.MustNew("long", followChain(links, &evaluations), job.Trigger("test.apps"))
	got := evaluateBoth(t, j, remote, trig)
	// Each read once: what rounds read is not read again gathered.
	var reads, evals int64
	for i := range got {
		if got[i].Record.Features["sum"] == nil {
			reads, evals = reads+1, evals+2+1
		} else {
			// 4 batches in rounds (5 evaluations), the rest gathered (1).
			reads, evals = reads+links+1, evals+5+1+1
		}
	}
	if b, r := remote.batched.Load(), remote.reads.Load(); b != reads || r != 0 {
		t.Errorf("%d reads in batches and %d single reads, want %d in batches", b, r, reads)
	}
	if e := evaluations.Load(); e != evals {
		t.Errorf("%d evaluations, want %d", e, evals)
	}
}

// TestRoundsHandEachRunItsOwnRows: a logic that changes a row it was given
// and then reads again sees, when it is evaluated again, the row as read,
// not as it left it.
func TestRoundsHandEachRunItsOwnRows(t *testing.T) {
	remote, trig := chainFixture(t, 200, 3)
	j := job.MustNew("owns", func(c *job.Context) (eventcenter.Row, error) {
		u, err := c.Get("test.users", c.Trigger().After["user"].(string))
		if errors.Is(err, eventcenter.ErrNotFound) {
			return eventcenter.Row{"v": nil}, nil
		}
		if err != nil {
			return nil, err
		}
		v := u["v"]
		u["v"] = int64(-1)
		k, err := c.Get("test.chain", "k1")
		if err != nil {
			return nil, err
		}
		return eventcenter.Row{"v": v, "k": k["v"]}, nil
	}, job.Trigger("test.apps"))
	evaluateBoth(t, j, remote, trig)
}

// TestRoundsLeaveToGatheringWhatTheyCannotAnswer: runs that read history,
// that ask different reads each time they are evaluated, or that carry on
// after a failed read, end as on the store read one fetch at a time.
func TestRoundsLeaveToGatheringWhatTheyCannotAnswer(t *testing.T) {
	remote, trig := chainFixture(t, 300, 3)
	var calls atomic.Int64
	j := job.MustNew("mixed", func(c *job.Context) (eventcenter.Row, error) {
		user := c.Trigger().After["user"].(string)
		switch i := c.Trigger().Pos.Offset; i % 5 {
		case 0: // history, then a read
			h, err := c.History("test.users", user, 24*time.Hour)
			if err != nil {
				return nil, err
			}
			row, err := c.Get("test.chain", "k2")
			if err != nil {
				return nil, err
			}
			return eventcenter.Row{"changes": int64(len(h)), "k": row["v"]}, nil
		case 1: // a different key every evaluation; answered by the key asked
			n := calls.Add(1) % 3 // int64
			row, err := c.Get("test.chain", fmt.Sprint("k", n))
			if err != nil {
				return nil, err
			}
			if row["v"] != n {
				return nil, fmt.Errorf("read k%d, got %v", n, row)
			}
			return eventcenter.Row{"ok": true}, nil
		case 2: // carries on after an error, and reads again
			row, err := c.Get("test.users", user)
			found := err == nil
			k, err := c.Get("test.chain", "k0")
			if err != nil {
				return nil, err
			}
			return eventcenter.Row{"found": found, "v": row["v"], "k": k["v"]}, nil
		case 3: // carries on after an error, and reads history
			row, err := c.Get("test.users", user)
			found := err == nil
			h, err := c.History("test.users", user, 24*time.Hour)
			if err != nil {
				return nil, err
			}
			return eventcenter.Row{"found": found, "v": row["v"], "changes": int64(len(h))}, nil
		}
		row, err := c.Get("test.users", user)
		if errors.Is(err, eventcenter.ErrNotFound) {
			return eventcenter.Row{"v": nil}, nil
		}
		return eventcenter.Row{"v": row["v"]}, err
	}, job.Trigger("test.apps"))
	evaluateBoth(t, j, remote, trig)
}

// TestRoundsLeaveWatermarksToGathering: a job whose fetches wait for their
// source's watermark (FetchStrong) reads it on the gathered path, with the
// records of the store read one fetch at a time.
func TestRoundsLeaveWatermarksToGathering(t *testing.T) {
	remote, trig := chainFixture(t, 200, 3)
	for _, src := range []string{"test.users", "test.chain"} {
		if err := remote.Store.AdvanceWatermark(context.Background(), src, 0, t0.Add(24*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	var evaluations atomic.Int64
	j := job.MustNew("strong", followChain(2, &evaluations), job.Trigger("test.apps"), job.Consistency(job.FetchStrong))
	got := evaluateBoth(t, j, remote, trig)
	for i := range got {
		if got[i].Stats.Waits != 0 {
			t.Fatalf("run %d waited %d times: the watermark was past", i, got[i].Stats.Waits)
		}
	}
	if e, want := evaluations.Load(), int64(2*len(trig)+len(trig)); e != want {
		t.Errorf("%d evaluations: want %d (one in a round, one gathered, one on the store)", e, want)
	}
}
