package job_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/job"
)

// remoteStore makes an embedded store look remote
// (eventcenter.RemoteBatchReader): every AsOf and every AsOfBatch costs
// latency, as a round trip to HBase does, and both are counted.
type remoteStore struct {
	*embedded.Store
	latency        time.Duration
	width          int
	reads, batches atomic.Int64
	batched        atomic.Int64 // reads answered by batches
	fail           error        // every batch fails with it, if set
	// onBatch, if set, sees the reads of each batch before they are read.
	onBatch func(qs []eventcenter.AsOf)
	// onHistory, if set, runs before each History; its error fails it.
	onHistory func() error
}

func (s *remoteStore) History(ctx context.Context, q eventcenter.HistoryQuery) ([]eventcenter.Event, error) {
	if s.onHistory != nil {
		if err := s.onHistory(); err != nil {
			return nil, err
		}
	}
	return s.Store.History(ctx, q)
}

func (s *remoteStore) GatherWidth() int { return s.width }

func (s *remoteStore) AsOf(ctx context.Context, q eventcenter.AsOf) (eventcenter.Event, error) {
	s.reads.Add(1)
	if err := sleep(ctx, s.latency); err != nil {
		return eventcenter.Event{}, err
	}
	return s.Store.AsOf(ctx, q)
}

func (s *remoteStore) AsOfBatch(ctx context.Context, qs []eventcenter.AsOf, out []eventcenter.AsOfResult) error {
	s.batches.Add(1)
	s.batched.Add(int64(len(qs)))
	if len(qs) > s.width {
		return fmt.Errorf("a batch of %d reads, wider than GatherWidth %d", len(qs), s.width)
	}
	if s.onBatch != nil {
		s.onBatch(qs)
	}
	if err := sleep(ctx, s.latency); err != nil {
		return err
	}
	if s.fail != nil {
		return s.fail
	}
	return s.Store.AsOfBatch(ctx, qs, out)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// gatherFixture stores n triggers and, for most of them, a user whose
// state their job's logic fetches; the job's records carry the user's row.
func gatherFixture(t *testing.T, n int) (*embedded.Store, *job.Job, []eventcenter.Event) {
	ctx := context.Background()
	st := openStore(t)
	var evs, trig []eventcenter.Event
	for i := range n {
		e := trigger(fmt.Sprint("a", i), t0.Add(time.Duration(i)*time.Second), uint64(i))
		e.After = eventcenter.Row{"user": fmt.Sprint("u", i%97)}
		trig = append(trig, e)
		if i%97 != 13 {
			evs = append(evs, eventcenter.Event{Source: "test.users", Key: fmt.Sprint("u", i%97), Time: t0.Add(time.Duration(i) * time.Second),
				Pos: eventcenter.Position{Offset: uint64(i)}, Op: eventcenter.OpUpdate, After: eventcenter.Row{"v": int64(i)}})
		}
	}
	if err := st.Append(ctx, append(evs, trig...)); err != nil {
		t.Fatal(err)
	}
	j := job.MustNew("gather", func(c *job.Context) (eventcenter.Row, error) {
		row, err := c.Get("test.users", c.Trigger().After["user"].(string))
		if errors.Is(err, eventcenter.ErrNotFound) {
			return eventcenter.Row{"v": nil}, nil
		}
		if err != nil {
			return nil, err
		}
		return eventcenter.Row{"v": row["v"]}, nil
	}, job.Trigger("test.apps"))
	return st, j, trig
}

// bothPaths runs test twice: as runs are evaluated on a store that
// gathers reads (in rounds first, see rounds.go), and on the gathered path
// alone (a goroutine per run waiting on its read), which rounds fall back
// to.
func bothPaths(t *testing.T, test func(t *testing.T)) {
	t.Run("rounds", test)
	t.Run("gathered", func(t *testing.T) {
		defer job.WithoutRounds()()
		test(t)
	})
}

// seq yields evs, as a replay would.
func seq(evs []eventcenter.Event) iter.Seq2[eventcenter.Event, error] {
	return func(yield func(eventcenter.Event, error) bool) {
		for _, e := range evs {
			if !yield(e, nil) {
				return
			}
		}
	}
}

// TestRunAllGathersRemoteReads: on a store whose reads are remote, RunAll
// gathers the runs' fetches into few batches (none reads alone beyond the
// first of each wave) and writes the same records as on the store read
// one fetch at a time.
func TestRunAllGathersRemoteReads(t *testing.T) { bothPaths(t, testRunAllGathersRemoteReads) }

func testRunAllGathersRemoteReads(t *testing.T) {
	ctx := context.Background()
	const n = 2000
	st, j, trig := gatherFixture(t, n)
	run := func(store job.Store) []job.Record {
		out := &collect{name: "c"}
		env := &job.Env{Store: store, Mode: job.Backfill, Outputs: []job.Output{out}}
		sum, err := job.RunAll(ctx, j, env, seq(trig), job.RunOptions{BatchSize: 500})
		if err != nil {
			t.Fatal(err)
		}
		if sum.Counts[job.OK] != n {
			t.Fatalf("summary %+v, failures %v", sum, sum.Failures)
		}
		return out.recs
	}
	want := run(st)
	remote := &remoteStore{Store: st, latency: 2 * time.Millisecond, width: 256}
	start := time.Now()
	got := run(remote)
	took := time.Since(start)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("records through gathered reads differ from one read at a time")
	}
	if r := remote.reads.Load(); r != 0 {
		t.Errorf("%d reads went to the store one by one", r)
	}
	// 2000 reads of 2ms each, one by one on GOMAXPROCS workers, would take
	// seconds; gathered, each chunk of 500 costs a few batches.
	b := remote.batches.Load()
	t.Logf("%d reads in %d batches, %v", remote.batched.Load(), b, took)
	if remote.batched.Load() != n || b > n/20 {
		t.Errorf("%d reads in %d batches: want all %d reads in at most %d batches", remote.batched.Load(), b, n, n/20)
	}
}

// TestRunAllReadsAheadWhileEvaluating: the reads of the next batch of
// runs are in flight while the logic of the current batch runs, not after
// it. The logic of the first batch waits, up to a deadline it fails on, for
// a read of the second batch to be sent.
func TestRunAllReadsAheadWhileEvaluating(t *testing.T) {
	bothPaths(t, testRunAllReadsAheadWhileEvaluating)
}

func testRunAllReadsAheadWhileEvaluating(t *testing.T) {
	ctx := context.Background()
	const n, batch = 200, 100
	st, _, trig := gatherFixture(t, n)
	second := make(chan struct{})
	var once sync.Once
	secondFrom := trig[batch].Time
	remote := &remoteStore{Store: st, width: 64, latency: time.Millisecond, onBatch: func(qs []eventcenter.AsOf) {
		if slices.ContainsFunc(qs, func(q eventcenter.AsOf) bool { return !q.Time.Before(secondFrom) }) {
			once.Do(func() { close(second) })
		}
	}}
	j := job.MustNew("ahead", func(c *job.Context) (eventcenter.Row, error) {
		if _, err := c.Get("test.users", c.Trigger().After["user"].(string)); err != nil && !errors.Is(err, eventcenter.ErrNotFound) {
			return nil, err
		}
		if c.Time().Before(secondFrom) {
			select {
			case <-second:
			case <-time.After(5 * time.Second):
				return nil, errors.New("the next batch's reads were not sent while this batch's logic ran")
			}
		}
		return eventcenter.Row{"ok": true}, nil
	}, job.Trigger("test.apps"))
	env := &job.Env{Store: remote, Mode: job.Backfill, Outputs: []job.Output{&collect{name: "c"}}}
	sum, err := job.RunAll(ctx, j, env, seq(trig), job.RunOptions{BatchSize: batch})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Counts[job.OK] != n {
		t.Fatalf("summary %+v, first failure %v", sum.Counts, sum.Failures[0].Err)
	}
}

// TestGatheredReadsWaitForTheirRuns: the reads of runs evaluated together
// go in one batch, however the runs' goroutines are scheduled: the first
// read does not leave alone while the others are on their way.
func TestGatheredReadsWaitForTheirRuns(t *testing.T) { bothPaths(t, testGatheredReadsWaitForTheirRuns) }

func testGatheredReadsWaitForTheirRuns(t *testing.T) {
	ctx := context.Background()
	st, j, trig := gatherFixture(t, 100)
	remote := &remoteStore{Store: st, width: 1024, latency: time.Millisecond}
	results := make([]job.Result, len(trig))
	job.EvaluateAll(ctx, j, &job.Env{Store: remote}, trig, results, 0)
	for i, r := range results {
		if r.Outcome != job.OK {
			t.Fatalf("run %d: %v, %v", i, r.Outcome, r.Err)
		}
	}
	if b := remote.batches.Load(); b != 1 || remote.reads.Load() != 0 {
		t.Errorf("%d runs read in %d batches and %d single reads, want 1 batch", len(trig), b, remote.reads.Load())
	}
}

// TestGatheredReadsGoWhileARunWaitsOnTheStore: a run waiting on another
// call to the store (here a History that returns only once a batch of
// the others' reads was sent) does not hold their batch.
func TestGatheredReadsGoWhileARunWaitsOnTheStore(t *testing.T) {
	bothPaths(t, testGatheredReadsGoWhileARunWaitsOnTheStore)
}

func testGatheredReadsGoWhileARunWaitsOnTheStore(t *testing.T) {
	ctx := context.Background()
	st, _, trig := gatherFixture(t, 50)
	sent := make(chan struct{})
	var once sync.Once
	remote := &remoteStore{Store: st, width: 1024, latency: time.Millisecond,
		onBatch: func([]eventcenter.AsOf) { once.Do(func() { close(sent) }) },
		onHistory: func() error {
			select {
			case <-sent:
				return nil
			case <-time.After(5 * time.Second):
				return errors.New("no batch was sent while this History waited")
			}
		}}
	j := job.MustNew("waits", func(c *job.Context) (eventcenter.Row, error) {
		if c.Trigger().Key == trig[0].Key {
			if _, err := c.History("test.users", "u0", time.Hour); err != nil {
				return nil, err
			}
		}
		if _, err := c.Get("test.users", c.Trigger().After["user"].(string)); err != nil && !errors.Is(err, eventcenter.ErrNotFound) {
			return nil, err
		}
		return eventcenter.Row{"ok": true}, nil
	}, job.Trigger("test.apps"))
	results := make([]job.Result, len(trig))
	job.EvaluateAll(ctx, j, &job.Env{Store: remote}, trig, results, 0)
	for i, r := range results {
		if r.Outcome != job.OK {
			t.Fatalf("run %d: %v, %v", i, r.Outcome, r.Err)
		}
	}
}

// TestGatheredReadsFailAsTheStore: a failed batch fails every run whose
// read was in it as a fetch failure (retryable), and a run's own context
// ends its wait.
func TestGatheredReadsFailAsTheStore(t *testing.T) { bothPaths(t, testGatheredReadsFailAsTheStore) }

func testGatheredReadsFailAsTheStore(t *testing.T) {
	ctx := context.Background()
	st, j, trig := gatherFixture(t, 100)
	remote := &remoteStore{Store: st, width: 64, fail: errors.New("region server gone")}
	results := make([]job.Result, len(trig))
	job.EvaluateAll(ctx, j, &job.Env{Store: remote}, trig, results, 0)
	for i, r := range results {
		if r.Outcome != job.Failed || !errors.Is(r.Err, job.ErrFetch) || !r.Retryable() {
			t.Fatalf("run %d: %v, %v; want a retryable fetch failure", i, r.Outcome, r.Err)
		}
	}

	remote = &remoteStore{Store: st, width: 64, latency: time.Hour}
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	job.EvaluateAll(cctx, j, &job.Env{Store: remote}, trig[:1], results, 0)
	if !errors.Is(results[0].Err, context.DeadlineExceeded) || time.Since(start) > 10*time.Second {
		t.Fatalf("a run whose context ended while its read waited: %v after %v", results[0].Err, time.Since(start))
	}
}

// TestPrefetchOverRemoteStoreGathers: under a Prefetch (a sample
// backfill), what the prefetch does not answer is gathered too, and the
// answers are those of the store.
func TestPrefetchOverRemoteStoreGathers(t *testing.T) {
	bothPaths(t, testPrefetchOverRemoteStoreGathers)
}

func testPrefetchOverRemoteStoreGathers(t *testing.T) {
	ctx := context.Background()
	st, j, trig := gatherFixture(t, 600)
	remote := &remoteStore{Store: st, width: 1024, latency: time.Millisecond}
	pf := job.NewPrefetch(remote)
	qs := []eventcenter.AsOf{{Source: "test.users", Key: "u1", Time: t0.Add(time.Hour)}}
	if err := pf.Fill(ctx, qs, make([]eventcenter.AsOfResult, 1)); err != nil {
		t.Fatal(err)
	}
	before := remote.batches.Load()
	got := make([]job.Result, len(trig))
	job.EvaluateAll(ctx, j, &job.Env{Store: pf}, trig, got, 0)
	want := make([]job.Result, len(trig))
	job.EvaluateAll(ctx, j, &job.Env{Store: st}, trig, want, 0)
	for i := range trig {
		if got[i].Err != nil || !reflect.DeepEqual(got[i].Record, want[i].Record) {
			t.Fatalf("run %d: %+v, %v; the store gives %+v", i, got[i].Record, got[i].Err, want[i].Record)
		}
	}
	if b := remote.batches.Load() - before; remote.reads.Load() != 0 || b > int64(len(trig)/10) {
		t.Errorf("%d single reads and %d batches for %d runs under a Prefetch", remote.reads.Load(), b, len(trig))
	}
	if !slices.ContainsFunc(got, func(r job.Result) bool { return r.Record.Features["v"] == nil }) {
		t.Errorf("no run met a user without state: a weak test")
	}
}
