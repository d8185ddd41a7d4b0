package job

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/params"
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
// or makes more than roundsMax reads in a chain is evaluated once more on
// the gathered path, its reads answered from what rounds read for it as
// long as it asks them again, the rest gathered. Every run of an Env with
// a Fallback takes the gathered path alone (a fallback read is a call of
// its own).
//
// A run's parameters are read once, before the first round, as
// concurrently as the gathered path reads them (a registry read each), and
// kept for its rounds. Each round hands the logic copies of the trigger's
// rows and of its answers' rows ([]byte values included): a logic may
// change the rows it was given before it is suspended on a later read, and
// must find them as read the next round. Result.Took times the last
// evaluation of a run.

// roundsOn is false only in tests of the gathered path.
var roundsOn = true

// roundsMax bounds the batches of reads of an evaluation in rounds: a run
// with more reads in a chain (each read's key from the previous answer)
// finishes on the gathered path.
const roundsMax = 4

// errRound fails a run for the current round: it asked a read not read
// yet, or something rounds do not answer.
var errRound = errors.New("job: run suspended until its reads are read")

// roundRun is what one run asked over the rounds.
type roundRun struct {
	reads   []roundRead
	asked   bool // its last read is to be read after this round
	blocked bool // it asked what rounds do not answer: evaluate it gathered
	// Its parameters, once read (paramsRead).
	paramsRead bool
	version    params.Version
	values     params.Values
	paramsErr  error
}

type roundRead struct {
	q   eventcenter.AsOf
	res eventcenter.AsOfResult // as read: the logic gets copies of its rows
}

// roundStore is the Store one worker's runs read through: as-of reads
// from the current run's answers, in the order it asked them. In a round
// (then nil), a read not read yet is recorded and suspends the run, and
// what rounds do not answer blocks it; on the gathered path, both go to
// then.
type roundStore struct {
	Store       // the remote store: index declarations
	then  Store // nil in a round
	run   *roundRun
	next  int // the run's reads answered so far; -1 once it asked another
}

// sameRead reports whether a and b ask the same thing.
func sameRead(a, b *eventcenter.AsOf) bool {
	return a.Source == b.Source && a.Key == b.Key && a.Time.Equal(b.Time) && a.KnownAt.Equal(b.KnownAt)
}

// AsOf implements eventcenter.Reader.
func (s *roundStore) AsOf(ctx context.Context, q eventcenter.AsOf) (eventcenter.Event, error) {
	if err := ctx.Err(); err != nil {
		return eventcenter.Event{}, err
	}
	r := s.run
	if s.next >= 0 && s.next < len(r.reads) && sameRead(&r.reads[s.next].q, &q) {
		rd := &r.reads[s.next]
		s.next++
		e := rd.res.Event
		e.After, e.Before = e.After.Clone(), e.Before.Clone()
		return e, rd.res.Err
	}
	if s.then != nil {
		s.next = -1
		return s.then.AsOf(ctx, q)
	}
	switch {
	case r.asked || r.blocked:
		// The logic went on after a suspended read.
	case s.next < len(r.reads):
		// Asked differently this time: the logic does not read the same
		// way twice. Rounds cannot settle it.
		r.blocked = true
	default:
		r.reads = append(r.reads, roundRead{q: q})
		r.asked = true
	}
	return eventcenter.Event{}, errRound
}

// block fails the run for rounds: it asked something rounds do not answer.
func (s *roundStore) block() error {
	s.run.blocked = true
	return errRound
}

// History implements eventcenter.Reader: not answered in rounds.
func (s *roundStore) History(ctx context.Context, q eventcenter.HistoryQuery) ([]eventcenter.Event, error) {
	if s.then != nil {
		return s.then.History(ctx, q)
	}
	return nil, s.block()
}

// Lookup implements eventcenter.Reader: not answered in rounds.
func (s *roundStore) Lookup(ctx context.Context, q eventcenter.LookupQuery) ([]eventcenter.Event, error) {
	if s.then != nil {
		return s.then.Lookup(ctx, q)
	}
	return nil, s.block()
}

// Watermark implements eventcenter.Watermarks: not answered in rounds. A
// run that checks a watermark (a consistency level above Eventual) would
// read it again every round, one round trip at a time where the gathered
// path has them all in flight at once.
func (s *roundStore) Watermark(ctx context.Context, source string) (time.Time, error) {
	if s.then != nil {
		return s.then.Watermark(ctx, source)
	}
	return time.Time{}, s.block()
}

// WaitWatermark implements eventcenter.Watermarks: not answered in rounds.
func (s *roundStore) WaitWatermark(ctx context.Context, source string, t time.Time) error {
	if s.then != nil {
		return s.then.WaitWatermark(ctx, source, t)
	}
	return s.block()
}

// ListIndexes implements eventcenter.Indexes; see listIndexes.
func (s *roundStore) ListIndexes(ctx context.Context, source string) ([]eventcenter.Index, error) {
	return listIndexes(ctx, s.Store, source)
}

// roundParams gives each run the parameters read for it once (see
// readParams), or reads them if they were not.
type roundParams struct {
	under ParamSource // nil: the default
	rs    *roundStore
}

func (p *roundParams) Params(ctx context.Context, j *Job, e *eventcenter.Event) (params.Version, params.Values, error) {
	r := p.rs.run
	if !r.paramsRead {
		under := p.under
		if under == nil {
			under = defaultParams
		}
		r.version, r.values, r.paramsErr = under.Params(ctx, j, e)
		r.paramsRead = true
	}
	return r.version, r.values, r.paramsErr
}

// readParams reads the parameters of the runs of events that the job
// accepts (a run it does not is skipped before it reads them), up to width
// at once: the concurrency of the gathered path, where each run reads its
// own.
func readParams(ctx context.Context, j *Job, env *Env, events []eventcenter.Event, runs []roundRun, width int) {
	if len(j.decls) == 0 || env.Params == nil {
		return // nothing to read: the default, or version 0 without a read
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(width, len(events)) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(events); i = int(next.Add(1)) - 1 {
				if !j.Accepts(&events[i]) {
					continue
				}
				r := &runs[i]
				r.version, r.values, r.paramsErr = env.Params.Params(ctx, j, &events[i])
				r.paramsRead = true
			}
		})
	}
	wg.Wait()
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

// replayOver returns the Store a worker's runs read through on the
// gathered path, store being their group's (see joinGather): rs answers
// what they read in rounds and passes the rest to the group.
func replayOver(store Store, rs *roundStore) Store {
	switch s := store.(type) {
	case *gatherGroup:
		rs.Store, rs.then = s.gathered.Store, s
		return rs
	case *Prefetch:
		return s.over(replayOver(s.store, rs))
	}
	return store
}

// evalRounds evaluates events[i] into results[i] in rounds (see above) on
// workers goroutines over env.Store, a store that gathers reads into
// batches of width. It returns the indices of the runs left to the
// gathered path, and what every run read in rounds (runs[i] for
// events[i]). If the store does not gather reads, it leaves them all.
func evalRounds(ctx context.Context, j *Job, env *Env, events []eventcenter.Event, results []Result, workers, width int) (rest []int, runs []roundRun) {
	runs = make([]roundRun, len(events))
	todo := make([]int, len(events))
	for i := range todo {
		todo[i] = i
	}
	var probe roundStore // its Store: where the rounds' reads go
	if _, ok := roundsOver(env.Store, &probe); !ok {
		return todo, runs
	}
	remote := probe.Store
	readParams(ctx, j, env, events, runs, width)
	// leave hands run i to the gathered path, with only the reads that
	// were read (a blocked run may have asked one too).
	leave := func(i int) {
		if r := &runs[i]; r.asked {
			r.reads, r.asked = r.reads[:len(r.reads)-1], false
		}
		rest = append(rest, i)
	}
	var qs []eventcenter.AsOf
	var out []eventcenter.AsOfResult
	for round := 0; len(todo) > 0; round++ {
		if ctx.Err() != nil {
			for _, i := range todo {
				leave(i)
			}
			return rest, runs
		}
		evalRound(ctx, j, env, events, results, runs, todo, workers)
		// The runs done leave; those suspended on a read go on to the next
		// round, those blocked to the gathered path.
		next := todo[:0]
		qs = qs[:0]
		for _, i := range todo {
			r := &runs[i]
			switch {
			case r.blocked:
				leave(i)
			case r.asked:
				qs = append(qs, r.reads[len(r.reads)-1].q)
				next = append(next, i)
			}
		}
		todo = next
		if len(todo) > 0 && round == roundsMax {
			// A chain of more reads than roundsMax: gathered, its reads
			// so far answered as read.
			for _, i := range todo {
				leave(i)
			}
			return rest, runs
		}
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
	return rest, runs
}

// evalRound evaluates the runs todo once, each on a roundStore answering
// from its reads, on workers goroutines. Each evaluation gets its own copy of the trigger's
// rows.
func evalRound(ctx context.Context, j *Job, env *Env, events []eventcenter.Event, results []Result, runs []roundRun, todo []int, workers int) {
	workers = max(1, min(workers, len(todo)/16))
	grain := max(1, min(16, len(todo)/workers))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		rs := &roundStore{}
		e := *env
		e.Store, _ = roundsOver(env.Store, rs)
		e.Params = &roundParams{under: env.Params, rs: rs}
		wg.Go(func() {
			for {
				lo := int(next.Add(int64(grain))) - grain
				if lo >= len(todo) {
					return
				}
				for _, i := range todo[lo:min(lo+grain, len(todo))] {
					rs.run, rs.next = &runs[i], 0
					trigger := events[i]
					trigger.After, trigger.Before = trigger.After.Clone(), trigger.Before.Clone()
					results[i], _ = Evaluate(ctx, j, trigger, &e)
				}
			}
		})
	}
	wg.Wait()
}
