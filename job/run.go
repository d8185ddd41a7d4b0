package job

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/params"
)

// Outcome is how a run ended.
type Outcome uint8

// Outcomes.
const (
	// OK: the logic returned features; Result.Record holds them.
	OK Outcome = iota + 1
	// Skipped: the trigger did not pass the job's filters, or the logic
	// returned no features. Nothing is output.
	Skipped
	// Stale: a strong consistency level's watermark wait timed out (the
	// error matches ErrStale). Nothing is output.
	Stale
	// Failed: parameters, logic or a fetch failed. Nothing is output.
	Failed
)

var outcomeNames = [...]string{OK: "ok", Skipped: "skipped", Stale: "stale", Failed: "failed"}

func (o Outcome) String() string {
	if o >= OK && o <= Failed {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// Result is the result of one run.
type Result struct {
	Job        string
	JobVersion string
	Mode       Mode
	Trigger    eventcenter.ID
	Outcome    Outcome
	// Err is why the run is Stale or Failed (nil otherwise).
	Err error
	// Record is the output of an OK run, nil for every other outcome:
	// failed, stale and skipped runs output nothing, in every mode.
	Record *Record
	// ParamVersion is the version of the parameter values the run used.
	ParamVersion params.Version
	Stats        Stats
	// Took is the run's duration (waits, fetches, logic; not outputs).
	Took time.Duration
}

// Retryable reports whether a Failed run may succeed when run again: it
// failed on the event center (ErrFetch) or on its context, not on its
// logic or parameters.
func (r *Result) Retryable() bool {
	return r.Outcome == Failed && (errors.Is(r.Err, ErrFetch) || errors.Is(r.Err, context.Canceled) || errors.Is(r.Err, context.DeadlineExceeded))
}

// Evaluate runs j on trigger in env and returns the result without writing
// outputs: the mode-agnostic core that the live worker, the backfill and
// the call API share. Its error is Result.Err (nil for OK and Skipped).
//
// In order: the filters (Skipped if the trigger does not pass them); the
// parameter values from env.Params; for TriggerStrong, the wait for the
// trigger source's watermark; the logic, whose fetches read as of the
// trigger time (bounded by env.KnownAt) and wait as the level says.
func Evaluate(ctx context.Context, j *Job, trigger eventcenter.Event, env *Env) (Result, error) {
	var res Result
	err := evaluateWith(ctx, j, &trigger, env, new(Context), nil, &res)
	return res, err
}

// evaluateWith is Evaluate of *trigger into *res with the run's Context c,
// which it resets (a Context is valid only during its run, so one
// goroutine's runs can share one), and the memory of an OK run's Record,
// rec (nil: a new one). A run of a batch reads its trigger from the
// batch's slice and writes its result into the batch's: neither is copied
// but for the trigger's copy in c.
func evaluateWith(ctx context.Context, j *Job, trigger *eventcenter.Event, env *Env, c *Context, rec *Record, res *Result) error {
	start := time.Now()
	*res = Result{Job: j.name, JobVersion: j.version, Mode: env.Mode, Trigger: trigger.ID()}
	if res.Mode == "" {
		res.Mode = Live
	}
	*c = Context{ctx: ctx, job: j, env: env, trigger: *trigger}
	if j.lineage > 0 {
		c.lineage = &FetchLineage{limit: j.lineage}
	}
	err := evaluate(c, res, rec)
	res.Stats, res.Took = c.stats, time.Since(start)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrStale):
		res.Outcome = Stale
	default:
		res.Outcome = Failed
	}
	// A run that did not end OK outputs nothing, whatever it built.
	res.Err, res.Record = err, nil
	return err
}

func evaluate(c *Context, res *Result, rec *Record) error {
	j, env, trigger := c.job, c.env, &c.trigger
	if !j.Accepts(trigger) {
		res.Outcome = Skipped
		return nil
	}
	if env.Store == nil {
		return errors.New("job: Env.Store is nil")
	}
	ps := env.Params
	if ps == nil {
		ps = defaultParams
	}
	var err error
	if c.version, c.values, err = ps.Params(c.ctx, j, trigger); err != nil {
		return fmt.Errorf("%w: %w", ErrParams, err)
	}
	res.ParamVersion = c.version
	if env.KnownAt != nil {
		c.knownAt = env.KnownAt(trigger)
	}
	if j.level == TriggerStrong {
		if err := c.wait(trigger.Source, trigger.Time); err != nil {
			return err
		}
	}
	features, err := callLogic(c)
	if err != nil {
		if err == errRound || errors.Is(err, ErrStale) || errors.Is(err, ErrFetch) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrLogic, err)
	}
	if features == nil {
		res.Outcome = Skipped
		return nil
	}
	if err := features.ValidateNames(featureName); err != nil {
		if errors.Is(err, ErrLogic) {
			return err
		}
		return fmt.Errorf("%w: features: %v", ErrLogic, err)
	}
	entity := j.entityOf(trigger)
	if entity == "" {
		return fmt.Errorf("%w: empty entity key", ErrLogic)
	}
	res.Outcome = OK
	if rec == nil {
		rec = new(Record)
	}
	*rec = Record{
		Job: j.name, JobVersion: j.version, ParamVersion: c.version,
		Entity: entity, Trigger: res.Trigger, TriggerIndex: j.triggerIndex(trigger.Source), Features: features, Lineage: c.lineage,
	}
	res.Record = rec
	if !env.NoRecordIDs {
		res.Record.ID = recordID(j.name, res.Trigger)
	}
	return nil
}

// featureName checks the name of a feature the logic returned.
func featureName(k string) error {
	if k == "" || k[0] == '_' {
		return fmt.Errorf("%w: feature name %q is empty or reserved ('_' prefix)", ErrLogic, k)
	}
	return nil
}

func callLogic(c *Context) (row eventcenter.Row, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return c.job.logic(c)
}

// outputsOf returns the outputs a run in env writes to.
func outputsOf(j *Job, env *Env) []Output {
	if env.Outputs != nil {
		return env.Outputs
	}
	return j.outputs
}

// Run evaluates j on trigger and writes an OK result to the outputs (see
// WriteOutputs). The returned error is the run's (Result.Err) or the
// outputs'.
func Run(ctx context.Context, j *Job, trigger eventcenter.Event, env *Env) (Result, error) {
	res, err := Evaluate(ctx, j, trigger, env)
	if err != nil || res.Record == nil {
		return res, err
	}
	return res, WriteOutputs(ctx, outputsOf(j, env), env.Ledger, []Record{*res.Record})
}

// Batch evaluates triggers one by one and writes their records to the
// outputs in batches: the fast path of backfills. Not safe for concurrent
// use; run one Batch per chunk.
type Batch struct {
	job     *Job
	env     *Env
	size    int
	outs    []Output
	pending []Record
	// Counts of outcomes so far, by Outcome.
	Counts [Failed + 1]int
}

// NewBatch returns a Batch writing every size records (default 1024).
func NewBatch(j *Job, env *Env, size int) *Batch {
	if size <= 0 {
		size = 1024
	}
	return &Batch{job: j, env: env, size: size, outs: outputsOf(j, env)}
}

// Add evaluates j on trigger and queues an OK record, writing the queue
// when it is full. It returns the run's result; the error is the run's or
// a write's.
func (b *Batch) Add(ctx context.Context, trigger eventcenter.Event) (Result, error) {
	res, err := Evaluate(ctx, b.job, trigger, b.env)
	b.Counts[res.Outcome]++
	if res.Record != nil {
		b.pending = append(b.pending, *res.Record)
		if len(b.pending) >= b.size {
			if ferr := b.Flush(ctx); ferr != nil {
				return res, ferr
			}
		}
	}
	return res, err
}

// Flush writes the queued records.
func (b *Batch) Flush(ctx context.Context) error {
	if err := WriteOutputs(ctx, b.outs, b.env.Ledger, b.pending); err != nil {
		return err
	}
	clear(b.pending)
	b.pending = b.pending[:0]
	return nil
}

// Summary counts the outcomes of RunAll.
type Summary struct {
	Events int // events read
	Counts [Failed + 1]int
	// Failures holds the first few failed or stale results.
	Failures []Result
}

// RunOptions tune RunAll.
type RunOptions struct {
	// BatchSize is the number of events evaluated together and the most
	// records written to the outputs at once. Default 1024, or on a store
	// whose reads are remote (eventcenter.RemoteBatchReader) as many as it
	// gathers into one batch, if more.
	BatchSize int
	// Workers evaluate the events of a batch in parallel. Default
	// GOMAXPROCS; on a store whose reads are remote
	// (eventcenter.RemoteBatchReader), the runs that rounds leave are
	// evaluated by as many as it gathers into one batch (see
	// EvaluateAll). Two batches may be evaluated at once,
	// each by its own workers. Records are written in the order of the
	// events whatever the number of workers.
	Workers int
}

// RunAll runs j over events (e.g. an eventcenter Replay of a chunk),
// skipping events that do not trigger it, and writes the records to the
// outputs in batches, in the order of the events. A failed or stale run
// does not stop it (see Summary); an error of events, of an output or of
// ctx does. It is the backfill's core: a retried chunk gives the same
// records, which idempotent outputs absorb.
//
// Three stages overlap: reading the events into batches, evaluating, and
// writing. The evaluation of a batch starts when the batch is read, while
// the previous one is still evaluated: on a remote store, the runs of one
// batch run their logic while the reads of the next, gathered, are in
// flight. Each batch is written once it and every batch before it are
// evaluated.
func RunAll(ctx context.Context, j *Job, env *Env, events iter.Seq2[eventcenter.Event, error], opt RunOptions) (Summary, error) {
	ctx, cancel := context.WithCancel(ctx) // ends the evaluations in flight on an early return
	store, width := gather(ctx, env.Store)
	if width > 0 {
		// One gathering store for every batch: the reads of two batches
		// evaluated at once share its batches.
		e := *env
		e.Store, env = store, &e
	}
	if opt.BatchSize <= 0 {
		// On a remote store, a batch's runs' reads are one gathered batch.
		opt.BatchSize = max(1024, width)
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	// A reader goroutine fills batches while the previous ones are
	// evaluated and written.
	type chunk struct {
		events  []eventcenter.Event
		read    int // events read, including those that do not trigger j
		skipped int
		err     error
	}
	// Buffers: one filling, one waiting in chunks, two evaluated.
	const buffers = 4
	chunks := make(chan chunk, 1)
	free := make(chan []eventcenter.Event, buffers)
	for range buffers {
		free <- make([]eventcenter.Event, 0, opt.BatchSize)
	}
	stop := make(chan struct{})
	var reader, evals sync.WaitGroup
	defer func() {
		cancel()
		evals.Wait()
		close(stop)
		reader.Wait() // the replay is not read after RunAll returns
	}()
	reader.Add(1)
	go func() {
		defer reader.Done()
		defer close(chunks)
		var c chunk
		send := func() bool {
			select {
			case chunks <- c:
			case <-stop:
				return false
			}
			select {
			case buf := <-free:
				c = chunk{events: buf}
			case <-stop:
				return false
			}
			return true
		}
		c.events = <-free
		for e, err := range events {
			if err != nil {
				c.err = err
				send()
				return
			}
			if c.read++; c.read%256 == 0 {
				select {
				case <-stop:
					return
				default:
				}
			}
			if !j.Accepts(&e) {
				c.skipped++
				continue
			}
			if c.events = append(c.events, e); len(c.events) == opt.BatchSize && !send() {
				return
			}
		}
		send()
	}()

	// An evaluation of one batch, on its own goroutines.
	type evaluation struct {
		chunk
		results []Result
		done    chan struct{}
	}
	spare := [][]Result{make([]Result, opt.BatchSize), make([]Result, opt.BatchSize)}
	start := func(c chunk) *evaluation {
		ev := &evaluation{chunk: c, results: spare[len(spare)-1][:len(c.events)], done: make(chan struct{})}
		spare = spare[:len(spare)-1]
		evals.Add(1)
		go func() {
			defer evals.Done()
			defer close(ev.done)
			evalOn(ctx, j, env, ev.events, ev.results, opt.Workers, width)
		}()
		return ev
	}
	var sum Summary
	outs := outputsOf(j, env)
	recs := make([]Record, 0, opt.BatchSize)
	// finish waits for ev, counts its results and writes its records.
	finish := func(ev *evaluation) error {
		<-ev.done
		sum.Events += ev.read
		sum.Counts[Skipped] += ev.skipped
		recs = recs[:0]
		for i := range ev.results {
			res := &ev.results[i]
			sum.Counts[res.Outcome]++
			if res.Record != nil {
				recs = append(recs, *res.Record)
			}
			if res.Err != nil && len(sum.Failures) < 10 {
				sum.Failures = append(sum.Failures, *res)
			}
		}
		clear(ev.results)
		spare = append(spare, ev.results[:cap(ev.results)])
		clear(ev.events)
		free <- ev.events[:0]
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := WriteOutputs(ctx, outs, env.Ledger, recs); err != nil {
			return err
		}
		return ev.err
	}
	var prev *evaluation
	for c := range chunks {
		ev := start(c)
		if prev != nil {
			if err := finish(prev); err != nil {
				return sum, err
			}
		}
		prev = ev
	}
	if prev != nil {
		if err := finish(prev); err != nil {
			return sum, err
		}
	}
	return sum, nil
}

// EvaluateAll evaluates events[i] into results[i] (len(results) >=
// len(events)) with up to workers goroutines (GOMAXPROCS if <= 0). The live
// worker uses it on each polled batch. On a store whose reads are remote
// (eventcenter.RemoteBatchReader, directly or under a Prefetch), the runs'
// as-of reads are read in batches of the store's AsOfBatch: the runs are
// evaluated in rounds, each round's reads one batch (see rounds.go); the
// runs that rounds cannot settle are evaluated again with their reads
// gathered, on enough goroutines (up to one per run) to fill a batch: a
// run waiting on its read holds a goroutine, not a CPU.
func EvaluateAll(ctx context.Context, j *Job, env *Env, events []eventcenter.Event, results []Result, workers int) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	evalParallel(ctx, j, env, events, results, workers)
}

// evalParallel evaluates events[i] into results[i] on workers goroutines,
// on a store whose reads are remote (eventcenter.RemoteBatchReader) as
// evalOn does.
func evalParallel(ctx context.Context, j *Job, env *Env, events []eventcenter.Event, results []Result, workers int) {
	store, width := gather(ctx, env.Store)
	if width > 0 {
		e := *env
		e.Store, env = store, &e
	}
	evalOn(ctx, j, env, events, results, workers, width)
}

// evalOn evaluates events[i] into results[i] on workers goroutines. If
// width > 0, env.Store gathers reads into batches of width (see gather):
// the runs are evaluated in rounds (evalRounds), and those the rounds
// leave with their reads gathered (evalGathered).
func evalOn(ctx context.Context, j *Job, env *Env, events []eventcenter.Event, results []Result, workers, width int) {
	if width > 0 && env.Fallback == nil && roundsOn {
		// Rounds first (rounds.go); what they leave, gathered. (A fallback
		// read is a call of its own each round: not in rounds.)
		rest, runs := evalRounds(ctx, j, env, events, results, workers, width)
		if len(rest) == 0 {
			return
		}
		evs, res, left := make([]eventcenter.Event, len(rest)), make([]Result, len(rest)), make([]roundRun, len(rest))
		for k, i := range rest {
			evs[k], left[k] = events[i], runs[i]
		}
		evalGathered(ctx, j, env, evs, res, workers, width, left)
		for k, i := range rest {
			results[i] = res[k]
		}
		return
	}
	evalGathered(ctx, j, env, events, results, workers, width, nil)
}

// evalGathered evaluates events[i] into results[i] on workers goroutines,
// or at least min(width, len(events)) if width > 0: env.Store then
// gathers reads into batches of width (see gather), the runs of this call
// in a group of their own, each on a goroutine that waits on its reads.
// If runs is not nil, runs[i] holds what events[i]'s run read in rounds:
// its parameters and the answers it asks again, which are not read twice.
func evalGathered(ctx context.Context, j *Job, env *Env, events []eventcenter.Event, results []Result, workers, width int, runs []roundRun) {
	if width > 0 {
		workers = max(workers, min(width, len(events)))
	}
	if workers <= 1 || (width == 0 && len(events) < 2*workers) {
		workers = 1
	}
	exit := func() {}
	if store, gr := joinGather(env.Store, workers); gr != nil {
		e := *env
		e.Store, env = store, &e
		exit = gr.exit
		defer gr.leave()
	}
	// evaluator returns what evaluates a run: on its own goroutine, over
	// the run's answers from rounds, if any.
	// The OK runs' records: one allocation for the call's runs.
	recs := make([]Record, len(events))
	evaluator := func() func(k int) {
		c := new(Context) // the goroutine's runs', one after the other
		if runs == nil {
			return func(k int) { evaluateWith(ctx, j, &events[k], env, c, &recs[k], &results[k]) }
		}
		rs := &roundStore{}
		e := *env
		e.Store = replayOver(env.Store, rs)
		e.Params = &roundParams{under: env.Params, rs: rs}
		return func(k int) {
			rs.run, rs.next = &runs[k], 0
			evaluateWith(ctx, j, &events[k], &e, c, &recs[k], &results[k])
		}
	}
	if workers == 1 {
		eval := evaluator()
		for i := range events {
			eval(i)
		}
		exit()
		return
	}
	// Each worker takes grain events at a time: 16, or fewer so that
	// every worker has some.
	grain := max(1, min(16, len(events)/workers))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer exit()
			eval := evaluator()
			for {
				i := int(next.Add(int64(grain))) - grain
				if i >= len(events) {
					return
				}
				for k := i; k < min(i+grain, len(events)); k++ {
					eval(k)
				}
			}
		}()
	}
	wg.Wait()
}
