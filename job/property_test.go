package job_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/job"
)

var (
	abSeed = flag.Uint64("ab.seed", 0, "master seed of the A/B property test (0: from the clock)")
	abRuns = flag.Int("ab.runs", 1000, "trials per consistency level in the A/B property test")
)

// TestFetchInsteadOfJoin is the guarantee of each consistency level (see
// the package documentation, "Consistency") as a property. Related events
// of two streams reach the event center through a simulated ingest (per
// partition, in order, after random delays, advancing the partition's
// watermark only past what it stored) and reach the jobs' workers in random
// interleavings. Each worker stores its trigger, as the live worker does,
// then runs the job, which fetches the related event.
//
//   - cross: A and B are two sources (an application and its credit
//     report, same key). Job JA on A fetches B's row; JB on B fetches A's.
//   - same: A and B are two rows of one source (two orders of one user).
//     Job J on the source looks up every row of the user.
//
// The two events of a pair share one event time (one transaction) in a
// third of the pairs; otherwise either may be up to 300ms earlier, so the
// streams' event times cross. One partition of each trial may lag (its
// ingest and its worker start up to 3ms late), so a pair is often
// processed in the opposite order of its event times.
//
// Under every level, of a pair with one event time at least one run sees
// both (the trigger is stored before the run). Under FetchStrong and
// FetchStrongNoDelay (cross) and TriggerStrong (same) every run sees every
// related event at or before its trigger's time, so of every pair the run
// on the later event sees both. Under Eventual that last claim is false: the
// test requires that it fails in some trials (pairs processed later-first).
// Thousands of trials per level; the master seed is printed (JOBTEST_SEED
// or -ab.seed replays it), and each failure names its trial seed.
func TestFetchInsteadOfJoin(t *testing.T) {
	seed := *abSeed
	if seed == 0 {
		seed = testSeed(t)
	}
	runs := *abRuns
	if testing.Short() {
		runs = 200
	}
	t.Logf("master seed %d, %d trials per level (rerun: go test ./job -run FetchInsteadOfJoin -ab.seed %d -ab.runs %d)", seed, runs, seed, runs)
	cases := []struct {
		scenario string
		level    job.Level
		complete bool // every run sees every related event up to its time
	}{
		{"cross", job.Eventual, false},
		{"cross", job.FetchStrong, true},
		{"cross", job.FetchStrongNoDelay, true},
		{"same", job.Eventual, false},
		{"same", job.TriggerStrong, true},
	}
	for ci, tc := range cases {
		t.Run(tc.scenario+"/"+tc.level.String(), func(t *testing.T) {
			st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var total abStats
			for i := range runs {
				trialSeed := seed + uint64(ci)<<32 + uint64(i)
				s, err := abTrial(st, tc.scenario, tc.level, trialSeed, false)
				if err != nil {
					t.Fatalf("trial seed %d: %v", trialSeed, err)
				}
				total.add(s)
				if s.equalLost > 0 {
					t.Fatalf("trial seed %d: %d related pairs of one event time where no run saw both", trialSeed, s.equalLost)
				}
				if tc.complete && (s.runsMissed > 0 || s.laterLost > 0) {
					t.Fatalf("trial seed %d: under %v %d runs missed a related event at or before their time, %d pairs seen by no run",
						trialSeed, tc.level, s.runsMissed, s.laterLost)
				}
			}
			t.Logf("%d trials, %d pairs (%d of one time), %d runs: %d missed a related event at or before their time; %d pairs of two times seen by no run; %d fallback reads, %d waits",
				runs, total.pairs, total.equalPairs, total.runs, total.runsMissed, total.laterLost, total.fallbacks, total.waits)
			if !tc.complete && total.laterLost == 0 {
				t.Errorf("under %v every pair was seen whole: the trials do not process pairs later-first, so they cannot show that %v is incomplete", tc.level, tc.level)
			}
			if tc.level == job.FetchStrongNoDelay && total.fallbacks == 0 {
				t.Error("no fetch used the source fallback: the test does not exercise it")
			}
		})
	}
	// The control: without storing the trigger before the run, eventual
	// loses pairs of one event time too, so the test can fail.
	st, err := embedded.Open(embedded.Config{InMemory: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	lost := 0
	for i := range min(runs, 500) {
		s, err := abTrial(st, "cross", job.Eventual, seed+uint64(i), true)
		if err != nil {
			t.Fatal(err)
		}
		lost += s.equalLost
	}
	t.Logf("control: without the store-before-run rule, %d related pairs of one time were seen by no run in %d trials", lost, min(runs, 500))
	if lost == 0 {
		t.Error("control: skipping the store-before-run rule lost no pair; the test is not sensitive")
	}
}

type abStats struct {
	pairs, equalPairs int
	runs, runsMissed  int // runsMissed: runs that missed a related event at or before their trigger's time
	equalLost         int // pairs of one event time that no run saw whole
	laterLost         int // pairs of two event times that no run saw whole
	fallbacks, waits  int
}

func (s *abStats) add(o abStats) {
	s.pairs += o.pairs
	s.equalPairs += o.equalPairs
	s.runs += o.runs
	s.runsMissed += o.runsMissed
	s.equalLost += o.equalLost
	s.laterLost += o.laterLost
	s.fallbacks += o.fallbacks
	s.waits += o.waits
}

var trialN atomic.Int64

// abTrial runs one trial on st, with sources of its own.
func abTrial(st *embedded.Store, scenario string, level job.Level, seed uint64, skipStore bool) (abStats, error) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, seed>>7|1))
	n := trialN.Add(1)
	srcA, srcB := fmt.Sprintf("ab%d.a", n), fmt.Sprintf("ab%d.b", n)
	if scenario == "same" {
		srcB = srcA
	}
	parts := 1 + rng.IntN(3)
	pairs := 1 + rng.IntN(4)
	if err := st.DeclareIndex(ctx, eventcenter.Index{Source: srcA, Name: "rel", Column: "rel"}); err != nil {
		return abStats{}, err
	}

	// The events: pair i around time t0+i (sometimes two pairs share a
	// time), its two events at one time or apart by up to 300ms either way,
	// each in a random partition of its source. Each partition holds its
	// events in time order (as a CDC topic does).
	type ev struct {
		e    eventcenter.Event
		part int
	}
	var events []ev
	pairTimes := map[string][2]time.Time{}
	tm := t0
	for i := range pairs {
		if i > 0 && rng.IntN(3) > 0 {
			tm = tm.Add(time.Duration(1+rng.IntN(1000)) * time.Millisecond)
		}
		rel := fmt.Sprintf("r%d", i)
		var times [2]time.Time
		for side, src := range []string{srcA, srcB} {
			key := rel // cross: one key in two sources
			if scenario == "same" {
				key = fmt.Sprintf("%s-%c", rel, 'x'+side)
			}
			times[side] = tm
			if side == 1 && rng.IntN(3) > 0 {
				times[side] = tm.Add(time.Duration(rng.IntN(601)-300) * time.Millisecond)
			}
			events = append(events, ev{part: rng.IntN(parts), e: eventcenter.Event{
				Source: src, Key: key, Time: times[side], Op: eventcenter.OpInsert, After: eventcenter.Row{"rel": rel, "side": int64(side)},
			}})
		}
		pairTimes[rel] = times
	}
	slices.SortStableFunc(events, func(a, b ev) int { return a.e.Time.Compare(b.e.Time) })
	offsets := map[string][]uint64{srcA: make([]uint64, parts), srcB: make([]uint64, parts)}
	for i := range events {
		x := &events[i]
		offsets[x.e.Source][x.part]++
		x.e.Pos = eventcenter.Position{Log: uint64(x.part), Offset: offsets[x.e.Source][x.part]}
	}
	begin, end := events[0].e.Time, events[len(events)-1].e.Time.Add(time.Hour)
	delay := func(r *rand.Rand) {
		switch r.IntN(4) {
		case 0:
		case 1:
			time.Sleep(time.Duration(r.IntN(50)) * time.Microsecond)
		case 2:
			time.Sleep(time.Duration(r.IntN(400)) * time.Microsecond)
		default:
			for range r.IntN(5) {
				runtimeGosched()
			}
		}
	}

	// Every partition reports a watermark below everything before the trial.
	sources := []string{srcA}
	if srcB != srcA {
		sources = append(sources, srcB)
	}
	for _, src := range sources {
		for p := range parts {
			if err := st.AdvanceWatermark(ctx, src, int32(p), begin.Add(-time.Second)); err != nil {
				return abStats{}, err
			}
		}
	}
	// Processing skew: in two trials of three one partition lags, its
	// ingest and its worker starting up to 3ms late.
	type partKey struct {
		src  string
		part int
	}
	start := time.Now()
	lagUntil := map[partKey]time.Time{}
	if rng.IntN(3) > 0 {
		lagUntil[partKey{sources[rng.IntN(len(sources))], rng.IntN(parts)}] = start.Add(time.Duration(100+rng.IntN(2900)) * time.Microsecond)
	}

	// The source database, for the no-delay fallback: every row is
	// committed before anything is delivered.
	committed := map[string]eventcenter.Event{}
	for _, x := range events {
		committed[x.e.Source+"/"+x.e.Key] = x.e
	}
	fb := fallbackFunc(func(source, key string, at time.Time) (eventcenter.Event, error) {
		e, ok := committed[source+"/"+key]
		if !ok || e.Time.After(at) {
			return eventcenter.Event{}, job.ErrFallback
		}
		return e, nil
	})

	var wg sync.WaitGroup
	errc := make(chan error, 64)
	// Ingest: one goroutine per (source, partition), in partition order.
	for si, src := range sources {
		for p := range parts {
			var mine []eventcenter.Event
			for _, x := range events {
				if x.e.Source == src && x.part == p {
					mine = append(mine, x.e)
				}
			}
			r := rand.New(rand.NewPCG(seed, uint64(100+si*10+p)))
			lag := lagUntil[partKey{src, p}]
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Until(lag))
				for k, e := range mine {
					delay(r)
					if err := st.Append(ctx, []eventcenter.Event{e}); err != nil {
						errc <- err
						return
					}
					wm := end
					if k+1 < len(mine) {
						wm = mine[k+1].Time.Add(-time.Nanosecond)
					}
					if err := st.AdvanceWatermark(ctx, src, int32(p), wm); err != nil && !errors.Is(err, eventcenter.ErrWatermarkRegression) {
						errc <- err
						return
					}
				}
				if len(mine) == 0 {
					if err := st.AdvanceWatermark(ctx, src, int32(p), end); err != nil {
						errc <- err
					}
				}
			}()
		}
	}

	// The jobs. Each run records whether it saw the other event of its pair.
	type seen struct {
		trigger eventcenter.Event
		rel     string
		other   bool
	}
	var mu sync.Mutex
	var runs []seen
	record := func(c *job.Context, other bool) {
		tr := c.Trigger()
		mu.Lock()
		runs = append(runs, seen{trigger: tr, rel: tr.After["rel"].(string), other: other})
		mu.Unlock()
	}
	var jobs []*job.Job
	if scenario == "cross" {
		for _, pair := range [][2]string{{srcA, srcB}, {srcB, srcA}} {
			other := pair[1]
			jobs = append(jobs, job.MustNew("fetch-"+other, func(c *job.Context) (eventcenter.Row, error) {
				_, err := c.Get(other, c.Trigger().Key)
				if err != nil && !errors.Is(err, job.ErrNotFound) {
					return nil, err
				}
				record(c, err == nil)
				return nil, nil
			}, job.Trigger(pair[0]), job.Consistency(level), job.WaitTimeout(10*time.Second)))
		}
	} else {
		jobs = append(jobs, job.MustNew("lookup", func(c *job.Context) (eventcenter.Row, error) {
			evs, err := c.Lookup(srcA, "rel", c.Trigger().After["rel"])
			if err != nil {
				return nil, err
			}
			record(c, len(evs) == 2)
			return nil, nil
		}, job.Trigger(srcA), job.Consistency(level), job.WaitTimeout(10*time.Second)))
	}
	env := &job.Env{Store: st, Fallback: fb}
	var statsMu sync.Mutex
	var out abStats
	// Workers: one per job, consuming its source's partitions in a random
	// interleaving (each partition in order, a lagging one only once its
	// lag is over), as a Kafka consumer does.
	for wi, j := range jobs {
		var byPart [][]eventcenter.Event = make([][]eventcenter.Event, parts)
		for _, x := range events {
			if x.e.Source == j.Source() {
				byPart[x.part] = append(byPart[x.part], x.e)
			}
		}
		r := rand.New(rand.NewPCG(seed, uint64(1000+wi)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				var ready []int
				var wake time.Time
				for p := range byPart {
					if len(byPart[p]) == 0 {
						continue
					}
					if lag := lagUntil[partKey{j.Source(), p}]; time.Now().Before(lag) {
						wake = lag
						continue
					}
					ready = append(ready, p)
				}
				if len(ready) == 0 {
					if wake.IsZero() {
						return
					}
					time.Sleep(time.Until(wake))
					continue
				}
				p := ready[r.IntN(len(ready))]
				e := byPart[p][0]
				byPart[p] = byPart[p][1:]
				delay(r)
				if !skipStore {
					if err := st.Append(ctx, []eventcenter.Event{e}); err != nil {
						errc <- err
						return
					}
				}
				res, err := job.Evaluate(ctx, j, e, env)
				if err != nil {
					errc <- fmt.Errorf("run on %v: %w", e.ID(), err)
					return
				}
				statsMu.Lock()
				out.fallbacks += res.Stats.Fallbacks
				out.waits += res.Stats.Waits
				statsMu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return out, err
	}
	out.pairs = pairs
	out.runs = len(runs)
	if len(runs) != 2*pairs {
		return out, fmt.Errorf("%d runs for %d pairs", len(runs), pairs)
	}
	sawPair := map[string]bool{}
	for _, r := range runs {
		times := pairTimes[r.rel]
		other := times[1-int(r.trigger.After["side"].(int64))]
		if r.other {
			sawPair[r.rel] = true
		} else if !other.After(r.trigger.Time) {
			out.runsMissed++
		}
	}
	for rel, times := range pairTimes {
		equal := times[0].Equal(times[1])
		if equal {
			out.equalPairs++
		}
		switch {
		case sawPair[rel]:
		case equal:
			out.equalLost++
		default:
			out.laterLost++
		}
	}
	return out, nil
}
