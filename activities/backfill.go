package activities

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/params"
)

// Backfill holds what backfill chunks need. Its methods are activities;
// register a *Backfill with the worker (workers.Register does).
type Backfill struct {
	// Store is the event center: replays, fetches, and the feature store
	// sink. Required.
	Store eventcenter.Store
	// Jobs are the jobs a backfill may name. Required.
	Jobs Jobs
	// Params is the parameter registry. Default nil: every run uses the
	// declared defaults (version 0), as a live worker without a registry.
	Params params.Registry
	// S3 reads sample tables and writes sinks on S3. Default nil: s3://
	// URIs fail (non-retryable).
	S3 *s3.Client
	// Ledger is passed to the job runtime for outputs that are not
	// idempotent (see job.Env.Ledger). Default nil.
	Ledger job.Ledger
	// Workers evaluate the events of a chunk in parallel (job.RunOptions).
	// Default GOMAXPROCS.
	Workers int
	// BatchSize: events evaluated together and records written at once
	// (job.RunOptions). Default 1024.
	BatchSize int
	// OnSegment, if set, is called after each segment of a chunk is
	// committed: its outputs written and its cursor heartbeated (metrics,
	// tests). It must not block for long.
	OnSegment func(in ChunkInput, c Cursor)
}

// Jobs finds jobs by name.
type Jobs map[string]*job.Job

// NewJobs indexes jobs by name.
func NewJobs(jobs ...*job.Job) Jobs {
	m := make(Jobs, len(jobs))
	for _, j := range jobs {
		m[j.Name()] = j
	}
	return m
}

// Errors (as Temporal application error types; non-retryable).
const (
	ErrTypeUnknownJob = "UnknownJob"
	ErrTypeBadInput   = "BadInput"
	ErrTypeBadSample  = "BadSample"
)

func permanent(typ, format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), typ, nil)
}

func (a *Backfill) job(name string) (*job.Job, error) {
	j, ok := a.Jobs[name]
	if !ok {
		names := make([]string, 0, len(a.Jobs))
		for n := range a.Jobs {
			names = append(names, n)
		}
		return nil, permanent(ErrTypeUnknownJob, "backfill: unknown job %q (this worker knows %s)", name, strings.Join(names, ", "))
	}
	return j, nil
}

// BackfillPlan checks a backfill before it starts (the job exists, the
// options and sink are valid) and, for a sample table, reads it once to
// count its rows and find where each chunk starts.
func (a *Backfill) BackfillPlan(ctx context.Context, in PlanInput) (Plan, error) {
	j, err := a.job(in.Job)
	if err != nil {
		return Plan{}, err
	}
	if _, err := a.env(j, in.Options); err != nil {
		return Plan{}, err
	}
	if _, err := a.parseSink(in.Options); err != nil {
		return Plan{}, err
	}
	p := Plan{Source: j.Source()}
	if in.Sample != "" {
		sp, err := a.planSample(ctx, in.Sample, in.ChunkRows)
		if err != nil {
			return Plan{}, err
		}
		p.Sample = sp
	}
	return p, nil
}

// BackfillChunk runs the job over one chunk and writes the records.
//
// It works in segments of Options.SegmentEvents events: each segment's
// events run through job.RunAll (fetch, logic, outputs, in event order),
// its records are written, and only then is the chunk's Cursor
// heartbeated. A retry of the activity (after a worker crash, a timeout or
// an error) reads the last heartbeated Cursor and resumes after it; the
// segment in flight is redone, which the idempotent outputs absorb (file
// sinks rewrite the same object with the same records). The heartbeat is
// also repeated between segments, so a slow segment does not time out.
func (a *Backfill) BackfillChunk(ctx context.Context, in ChunkInput) (ChunkResult, error) {
	j, err := a.job(in.Job)
	if err != nil {
		return ChunkResult{}, err
	}
	env, err := a.env(j, in.Options)
	if err != nil {
		return ChunkResult{}, err
	}
	sink, err := a.parseSink(in.Options)
	if err != nil {
		return ChunkResult{}, err
	}
	segment := in.Options.SegmentEvents
	if segment <= 0 {
		segment = DefaultSegmentEvents
	}
	info := activity.GetInfo(ctx)
	var cur Cursor
	if activity.HasHeartbeatDetails(ctx) {
		if err := activity.GetHeartbeatDetails(ctx, &cur); err != nil {
			activity.GetLogger(ctx).Warn("backfill: unreadable heartbeat, restarting the chunk", "error", err)
			cur = Cursor{}
		}
	}
	cur.Result.Index = in.Index
	cur.Result.Attempt = info.Attempt
	if cur.Ordinal > 0 {
		cur.Result.Resumed, cur.Result.ResumedAt = true, cur.Ordinal
	}

	hb := newHeartbeat(ctx, cur, info.HeartbeatTimeout)
	defer hb.stop()

	var src eventSource
	if in.Sample != nil {
		src, err = a.sampleSource(ctx, j, in, cur.Ordinal, &cur.Result)
	} else {
		src, err = a.rangeSource(ctx, j, in, cur)
	}
	if err != nil {
		return cur.Result, err
	}
	defer src.stop()

	for {
		segEnd := cur.Ordinal + segment
		segEnv := *env
		outs, err := sink.open(ctx, j, in, cur.Ordinal)
		if err != nil {
			return cur.Result, err
		}
		segEnv.Outputs = outs.outputs()
		done := false
		seq := func(yield func(eventcenter.Event, error) bool) {
			for cur.Ordinal < segEnd {
				e, ok, err := src.next()
				if err != nil {
					yield(eventcenter.Event{}, err)
					return
				}
				if !ok {
					done = true
					return
				}
				cur.Ordinal++
				cur.Result.Events++
				if e == nil { // a sample row without state
					continue
				}
				if in.Sample == nil {
					cur.Last = &EventID{Source: e.Source, Key: e.Key, Time: e.Time, Log: e.Pos.Log, Offset: e.Pos.Offset}
				}
				if !yield(*e, nil) {
					return
				}
			}
		}
		sum, err := job.RunAll(ctx, j, &segEnv, iter.Seq2[eventcenter.Event, error](seq), job.RunOptions{BatchSize: a.BatchSize, Workers: a.Workers})
		if err == nil {
			err = outs.close(ctx)
		} else {
			outs.abort()
		}
		if err != nil {
			if ctx.Err() != nil {
				return hb.committed().Result, ctx.Err()
			}
			return hb.committed().Result, fmt.Errorf("backfill: chunk %d of %s: %w", in.Index, in.Job, err)
		}
		r := &cur.Result
		r.Outputs += sum.Counts[job.OK]
		r.WriteCounts.Add(outs.counts())
		// RunAll counts events that do not trigger the job as skipped too.
		r.Skipped += sum.Counts[job.Skipped]
		r.Stale += sum.Counts[job.Stale]
		r.Failed += sum.Counts[job.Failed]
		for _, f := range sum.Failures {
			if len(r.Errors) < maxErrors {
				r.Errors = append(r.Errors, fmt.Sprintf("%s %s@%s: %v", f.Outcome, f.Trigger.Key, f.Trigger.Time.UTC().Format(time.RFC3339Nano), f.Err))
			}
		}
		if done {
			return cur.Result, nil
		}
		hb.commit(cloneCursor(cur))
		if a.OnSegment != nil {
			a.OnSegment(in, cloneCursor(cur))
		}
	}
}

func cloneCursor(c Cursor) Cursor {
	c.Result.Errors = append([]string(nil), c.Result.Errors...)
	if c.Last != nil {
		l := *c.Last
		c.Last = &l
	}
	return c
}

// env builds the job environment of a backfill with options o.
func (a *Backfill) env(j *job.Job, o Options) (*job.Env, error) {
	if a.Store == nil {
		return nil, errors.New("backfill: Backfill.Store is nil")
	}
	env := &job.Env{Mode: job.Backfill, Store: a.Store, Ledger: a.Ledger}
	switch o.KnownAt {
	case "":
	case "trigger":
		env.KnownAt = job.KnownAtTrigger
	default:
		t, err := time.Parse(time.RFC3339Nano, o.KnownAt)
		if err != nil {
			return nil, permanent(ErrTypeBadInput, "backfill: knownAt %q: want \"\", \"trigger\" or an RFC 3339 time", o.KnownAt)
		}
		env.KnownAt = job.KnownAtFixed(t)
	}
	switch o.Params {
	case "", "asof":
		if pit, ok := a.Params.(params.PointInTime); ok {
			env.Params = job.ParamsAsOfTrigger(pit)
		} else if a.Params != nil {
			env.Params = job.CurrentParams(a.Params)
		}
	case "current":
		if a.Params != nil {
			env.Params = job.CurrentParams(a.Params)
		}
	case "defaults":
		env.Params = job.FixedParams(0, nil)
	default:
		return nil, permanent(ErrTypeBadInput, "backfill: params %q: want \"asof\", \"current\" or \"defaults\"", o.Params)
	}
	if o.SegmentEvents < 0 {
		return nil, permanent(ErrTypeBadInput, "backfill: segmentEvents %d is negative", o.SegmentEvents)
	}
	return env, nil
}

// knownAt returns the fixed bitemporal bound of o, if any.
func knownAt(o Options) time.Time {
	if o.KnownAt == "" || o.KnownAt == "trigger" {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, o.KnownAt)
	return t
}

// eventSource yields a chunk's events in order; a nil event with ok stands
// for a consumed input that runs nothing (a sample row without state).
type eventSource interface {
	next() (e *eventcenter.Event, ok bool, err error)
	stop()
}

// rangeSource replays the chunk's range, skipping what cur says is done.
func (a *Backfill) rangeSource(ctx context.Context, j *job.Job, in ChunkInput, cur Cursor) (eventSource, error) {
	if in.From.IsZero() || in.To.IsZero() {
		return nil, permanent(ErrTypeBadInput, "backfill: chunk %d has neither a range nor sample rows", in.Index)
	}
	from := in.From
	var last *eventcenter.Event
	if cur.Last != nil {
		from = cur.Last.Time
		last = &eventcenter.Event{Source: cur.Last.Source, Key: cur.Last.Key, Time: cur.Last.Time, Pos: eventcenter.Position{Log: cur.Last.Log, Offset: cur.Last.Offset}}
	}
	q := eventcenter.ReplayQuery{Sources: []string{j.Source()}, From: from, To: in.To, KnownAt: knownAt(in.Options)}
	next, stop := iter.Pull2(a.Store.Replay(ctx, q))
	return &replaySource{pull: next, stopf: stop, after: last}, nil
}

type replaySource struct {
	pull  func() (eventcenter.Event, error, bool)
	stopf func()
	after *eventcenter.Event // skip events up to it (inclusive)
	e     eventcenter.Event
}

func (r *replaySource) stop() { r.stopf() }

func (r *replaySource) next() (*eventcenter.Event, bool, error) {
	for {
		e, err, ok := r.pull()
		if !ok {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		if r.after != nil {
			if eventcenter.Compare(&e, r.after) <= 0 {
				continue
			}
			r.after = nil
		}
		r.e = e
		return &r.e, true, nil
	}
}

// heartbeat repeats the last committed cursor so that a long segment does
// not let the heartbeat time out, and sends each new one.
type heartbeat struct {
	ctx  context.Context
	mu   sync.Mutex
	cur  Cursor
	done chan struct{}
	wg   sync.WaitGroup
}

func newHeartbeat(ctx context.Context, cur Cursor, timeout time.Duration) *heartbeat {
	h := &heartbeat{ctx: ctx, cur: cloneCursor(cur), done: make(chan struct{})}
	every := timeout / 4
	if every <= 0 || every > 10*time.Second {
		every = 10 * time.Second
	}
	every = max(every, 100*time.Millisecond)
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-h.done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				h.mu.Lock()
				activity.RecordHeartbeat(ctx, h.cur)
				h.mu.Unlock()
			}
		}
	}()
	return h
}

func (h *heartbeat) commit(c Cursor) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cur = c
	activity.RecordHeartbeat(h.ctx, c)
}

func (h *heartbeat) committed() Cursor {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cur
}

func (h *heartbeat) stop() {
	close(h.done)
	h.wg.Wait()
}
