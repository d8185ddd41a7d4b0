package job

import (
	"context"
	"errors"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// Runs in rounds. On a store whose reads are remote, the runs of an
// evaluation read in batches. Gathering their reads (gathered) keeps a
// goroutine per run waiting on its read: per run a goroutine started, its
// stack grown, parked and woken, which on a cheap logic costs more CPU
// than the logic and the read's share of the batch together. So an
// evaluation first runs in rounds, on a few workers, none of them waiting:
//
//   - in a round, each run not yet done is evaluated from its start; its
//     as-of reads are answered from what earlier rounds read for it, in
//     the order it asked them, and the first read that was not read yet is
//     recorded and fails the run for this round (errRound);
//   - after the round, the recorded reads of all runs are read in one
//     batch (eventcenter.AsOfAll), and the runs that recorded one go
//     again.
//
// A run that completes a round without a read left to make is done: that
// evaluation saw every read answered as the store answered it, so its
// result is what the run gives anywhere. A logic then runs once per read
// it makes plus once, each time from the start; as a retried chunk reruns
// it, a logic must not depend on running once. A run that asks the store
// anything rounds do not answer (History, Lookup, a watermark: the levels
// above Eventual), asks its reads differently from one round to the next,
// or is not done after roundsMax rounds is evaluated again with its reads
// gathered, as before rounds. So is every run of an Env with a Fallback
// (a fallback read is a call of its own).
//
// Each answer is the run's own, and each round hands the logic a copy of
// its rows: a logic may change the rows it was given before it is
// suspended on a later read, and must find them as read the next round.

// roundsOn is false only in tests of the gathered path.
var roundsOn = true

// roundsMax bounds the rounds of an evaluation: a run with more reads in a
// chain (each read's key from the previous answer) than this finishes
// with its reads gathered.
const roundsMax = 4

// errRound fails a run for the current round: it asked a read not read
// yet, or something rounds do not answer.
var errRound = errors.New("job: run suspended until its reads are read")

// roundRun is what one run asked of the store over the rounds.
type roundRun struct {
	reads   []roundRead
	asked   bool // its last read is to be read after this round
	blocked bool // it asked what rounds do not answer: evaluate it gathered
}

type roundRead struct {
	q   eventcenter.AsOf
	res eventcenter.AsOfResult // as read: the logic gets copies of its rows
}

// roundStore is the Store one worker's runs read through in a round: as-of
// reads from the current run's answers, watermarks and index declarations
// from the store underneath.
type roundStore struct {
	Store // the remote store
	run   *roundRun
	next  int // the run's reads answered so far in this round
}

// sameRead reports whether a and b ask the same thing.
func sameRead(a, b *eventcenter.AsOf) bool {
	return a.Source == b.Source && a.Key == b.Key && a.Time.Equal(b.Time) && a.KnownAt.Equal(b.KnownAt)
}

// AsOf implements eventcenter.Reader.
func (s *roundStore) AsOf(ctx context.Context, q eventcenter.AsOf) (eventcenter.Event, error) {
	r := s.run
	if r.asked || r.blocked {
		return eventcenter.Event{}, errRound // the logic went on after a suspended read
	}
	if s.next < len(r.reads) {
		rd := &r.reads[s.next]
		if sameRead(&rd.q, &q) {
			s.next++
			e := rd.res.Event
			e.After, e.Before = maps.Clone(e.After), maps.Clone(e.Before)
			return e, rd.res.Err
		}
		// Asked differently this time: the logic does not read the same
		// way twice. Rounds cannot settle it.
		r.blocked = true
		return eventcenter.Event{}, errRound
	}
	r.reads = append(r.reads, roundRead{q: q})
	r.asked = true
	return eventcenter.Event{}, errRound
}

// block fails the run for rounds: it asked something rounds do not answer.
func (s *roundStore) block() error {
	s.run.blocked = true
	return errRound
}

// History implements eventcenter.Reader: not answered in rounds.
func (s *roundStore) History(context.Context, eventcenter.HistoryQuery) ([]eventcenter.Event, error) {
	return nil, s.block()
}

// Lookup implements eventcenter.Reader: not answered in rounds.
func (s *roundStore) Lookup(context.Context, eventcenter.LookupQuery) ([]eventcenter.Event, error) {
	return nil, s.block()
}

// Watermark implements eventcenter.Watermarks: not answered in rounds. A
// run that checks a watermark (a consistency level above Eventual) would
// read it again every round, one round trip at a time where the gathered
// path has them all in flight at once.
func (s *roundStore) Watermark(context.Context, string) (time.Time, error) {
	return time.Time{}, s.block()
}

// WaitWatermark implements eventcenter.Watermarks: not answered in rounds.
func (s *roundStore) WaitWatermark(context.Context, string, time.Time) error {
	return s.block()
}

// ListIndexes implements eventcenter.Indexes; see listIndexes.
func (s *roundStore) ListIndexes(ctx context.Context, source string) ([]eventcenter.Index, error) {
	return listIndexes(ctx, s.Store, source)
}

// roundsOver returns the Store a worker's runs read through in rounds,
// with rs answering their as-of reads, if store gathers reads (see
// gather); ok false otherwise. It sets rs.Store.
func roundsOver(store Store, rs *roundStore) (_ Store, ok bool) {
	switch s := store.(type) {
	case *gathered:
		rs.Store = s.Store
		return rs, true
	case *Prefetch:
		if under, ok := roundsOver(s.store, rs); ok {
			return s.over(under), true
		}
	}
	return store, false
}

// evalRounds evaluates events[i] into results[i] in rounds (see above) on
// workers goroutines over env.Store, a store that gathers reads into
// batches of width, and returns the indices of the runs left to evaluate
// with their reads gathered. It returns all of them (nil results) if the
// store does not gather reads.
func evalRounds(ctx context.Context, j *Job, env *Env, events []eventcenter.Event, results []Result, workers, width int) []int {
	runs := make([]roundRun, len(events))
	todo := make([]int, len(events))
	for i := range todo {
		todo[i] = i
	}
	var remote Store
	if _, ok := roundsOver(env.Store, &roundStore{}); !ok {
		return todo
	}
	var rest []int
	var qs []eventcenter.AsOf
	var out []eventcenter.AsOfResult
	for round := 0; len(todo) > 0; round++ {
		if round == roundsMax || ctx.Err() != nil {
			return append(rest, todo...)
		}
		evalRound(ctx, j, env, events, results, runs, todo, workers, &remote)
		// Sort the runs: done, suspended on a read (the next round's), or
		// left to their reads gathered.
		next := todo[:0]
		qs = qs[:0]
		for _, i := range todo {
			r := &runs[i]
			switch {
			case r.blocked:
				rest = append(rest, i)
			case r.asked:
				qs = append(qs, r.reads[len(r.reads)-1].q)
				next = append(next, i)
			}
		}
		todo = next
		if len(qs) == 0 {
			break
		}
		out = append(out[:0], make([]eventcenter.AsOfResult, len(qs))...)
		for lo := 0; lo < len(qs); lo += width {
			hi := min(lo+width, len(qs))
			if err := eventcenter.AsOfAll(ctx, remote, qs[lo:hi], out[lo:hi]); err != nil {
				// The store failed: every read of the batch fails with it,
				// as a gathered batch's do.
				for k := lo; k < hi; k++ {
					out[k] = eventcenter.AsOfResult{Err: err}
				}
			}
		}
		for k, i := range todo {
			r := &runs[i]
			r.reads[len(r.reads)-1].res = out[k]
			r.asked = false
		}
	}
	return rest
}

// evalRound evaluates the runs todo once, each on a roundStore answering
// from its reads, on workers goroutines; remote is set to the store the
// rounds' reads go to.
func evalRound(ctx context.Context, j *Job, env *Env, events []eventcenter.Event, results []Result, runs []roundRun, todo []int, workers int, remote *Store) {
	workers = max(1, min(workers, len(todo)/16))
	grain := max(1, min(16, len(todo)/workers))
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		rs := &roundStore{}
		e := *env
		e.Store, _ = roundsOver(env.Store, rs)
		if w == 0 {
			*remote = rs.Store
		}
		wg.Go(func() {
			for {
				lo := int(next.Add(int64(grain))) - grain
				if lo >= len(todo) {
					return
				}
				for _, i := range todo[lo:min(lo+grain, len(todo))] {
					rs.run, rs.next = &runs[i], 0
					results[i], _ = Evaluate(ctx, j, events[i], &e)
				}
			}
		})
	}
	wg.Wait()
}
