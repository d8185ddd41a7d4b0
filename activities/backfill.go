package activities

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/tidemark-dev/tidemark/catalog"
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
	// Sources, if set, reports whether a source exists (job.Env.Sources):
	// a fetch of an unknown source fails at once, as in the live worker,
	// instead of reading as not-found. Default nil: no check.
	Sources func(source string) bool
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
	// Heartbeats, if set (workers.Register sets the worker's client),
	// sends a chunk's heartbeats to the server directly, unthrottled: a
	// segment's cursor is on the server before the next segment starts, so
	// a chunk whose worker dies redoes at most the one segment in flight.
	// Nil (the activity test environment): activity.RecordHeartbeat, which
	// the SDK throttles to one per 0.8 × the heartbeat timeout, so a crash
	// may redo the segments of that window.
	Heartbeats HeartbeatClient
	// OnSegment, if set, is called after each segment of a chunk is
	// committed: its outputs written and its cursor heartbeated (metrics,
	// tests). It must not block for long.
	OnSegment func(in ChunkInput, c Cursor)
}

// HeartbeatClient records activity heartbeats; client.Client is one.
type HeartbeatClient interface {
	RecordActivityHeartbeat(ctx context.Context, taskToken []byte, details ...any) error
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
	// ErrTypeSampleChanged: the sample table is not the version that was
	// planned (replaced or changed while the backfill ran).
	ErrTypeSampleChanged = "SampleChanged"
	// ErrTypeTooManyChunks: a sample table needs more than MaxChunks chunks.
	ErrTypeTooManyChunks = "TooManyChunks"
	// ErrTypeStalled: a chunk attempt consumed no event for its
	// StallTimeout (retryable: the retry resumes after the heartbeat).
	ErrTypeStalled = "Stalled"
	// ErrTypeUnnamedRecord: a chunk made a record without ID
	// (job.ErrUnnamedRecord): a bug, which a retry would repeat.
	ErrTypeUnnamedRecord = "UnnamedRecord"
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

// catalogJob returns the job named name if the catalog knows it and this
// worker runs it. A job the catalog does not know is refused with the list
// of those it knows, unless this worker runs it: workers publish their
// jobs at start, and one built without that step (an embedder of
// workers.Register) publishes the job here, so that no backfill runs a job
// missing from the catalog.
func (a *Backfill) catalogJob(ctx context.Context, name string) (*job.Job, error) {
	_, err := catalog.Get(ctx, a.Store, name)
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		j, ok := a.Jobs[name]
		if !ok {
			known, err := catalog.Names(ctx, a.Store)
			if err != nil {
				return nil, err
			}
			if len(known) == 0 {
				return nil, permanent(ErrTypeUnknownJob, "backfill: the catalog does not know job %q: it is empty (workers publish their jobs when they start)", name)
			}
			return nil, permanent(ErrTypeUnknownJob, "backfill: the catalog does not know job %q (it knows %s)", name, strings.Join(known, ", "))
		}
		if _, err := catalog.Publish(ctx, a.Store, j); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	}
	return a.job(name)
}

// BackfillPlan checks a backfill before it starts (the catalog knows the
// job and this worker runs it, the options and sink are valid) and, for a
// sample table, reads it once to count its rows and find where each chunk
// starts.
func (a *Backfill) BackfillPlan(ctx context.Context, in PlanInput) (Plan, error) {
	j, err := a.catalogJob(ctx, in.Job)
	if err != nil {
		return Plan{}, err
	}
	if _, err := a.env(ctx, j, in.Options); err != nil {
		return Plan{}, err
	}
	if _, err := a.parseSink(in.Options); err != nil {
		return Plan{}, err
	}
	p := Plan{Source: strings.Join(j.Sources(), ", "), Sources: j.Sources()}
	if p.Watermarks, p.Watermark, p.Floor, err = a.watermarks(ctx, p.Sources); err != nil {
		return Plan{}, err
	}
	if in.Sample != "" {
		sp, err := a.planSample(ctx, in.Sample, in.ChunkRows, in.Chunks)
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
// heartbeated (synchronously with Heartbeats set). A retry of the activity
// (after a worker crash, a timeout or an error) reads the last heartbeated
// Cursor and resumes after it; the segment in flight is redone, which the
// idempotent outputs absorb (file sinks rewrite the same object with the
// same records).
//
// Between segments the committed Cursor is heartbeated again every quarter
// of the heartbeat timeout, with the attempt's progress (Cursor.Consumed:
// events consumed so far), so a dead worker's chunk is retried after the
// heartbeat timeout and a watcher sees each chunk move. An attempt that
// neither consumes an event nor writes a record for in.StallTimeout stops
// heartbeating and fails (ErrTypeStalled, retryable), so a stuck chunk is
// retried instead of hiding behind its heartbeats until the start-to-close
// timeout (24 h).
func (a *Backfill) BackfillChunk(ctx context.Context, in ChunkInput) (ChunkResult, error) {
	j, err := a.job(in.Job)
	if err != nil {
		return ChunkResult{}, err
	}
	env, err := a.env(ctx, j, in.Options)
	if err != nil {
		return ChunkResult{}, err
	}
	sink, err := a.parseSink(in.Options)
	if err != nil {
		return ChunkResult{}, err
	}
	segment := in.Options.SegmentEvents
	if segment <= 0 {
		segment = SegmentEventsFor(in.Options.Sink, in.Sample != nil)
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

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	hb := a.newHeartbeat(ctx, cancel, cur, info.HeartbeatTimeout, in.StallTimeout)
	defer hb.stop()
	versions := &paramVersions{written: &hb.written}

	var src eventSource
	var sample *sampleRunner
	if in.Sample != nil {
		_, training := sink.(fileSink)
		if sample, err = a.newSampleRunner(ctx, j, in, training, cur.Ordinal); err != nil {
			return cur.Result, err
		}
		defer sample.stop()
	} else {
		if src, err = a.rangeSource(ctx, j, in, cur); err != nil {
			return cur.Result, err
		}
		defer src.stop()
	}

	for {
		segEnd := cur.Ordinal + segment
		segEnv := *env
		outs, err := sink.open(ctx, j, in, cur.Ordinal)
		if err != nil {
			return cur.Result, err
		}
		segEnv.Outputs = append(outs.outputs(), versions)
		done := false
		var sum job.Summary
		if sample != nil {
			var n int
			sum, n, done, err = sample.segment(ctx, &segEnv, cur.Ordinal, segEnd-cur.Ordinal, &cur.Result)
			cur.Ordinal += n
			cur.Result.Events += n
			hb.consumed.Add(int64(n))
		} else {
			sum, done, err = a.replaySegment(ctx, j, &segEnv, src, segEnd, &cur, hb)
		}
		if err == nil {
			err = outs.close(ctx)
		} else {
			outs.abort()
		}
		if err != nil {
			if cause := context.Cause(ctx); errors.Is(cause, errStalled) {
				return hb.committed().Result, temporal.NewApplicationError(fmt.Sprintf("backfill: chunk %d of %s: %v", in.Index, in.Job, cause), ErrTypeStalled)
			}
			if ctx.Err() != nil {
				return hb.committed().Result, ctx.Err()
			}
			if errors.Is(err, job.ErrUnnamedRecord) {
				return hb.committed().Result, permanent(ErrTypeUnnamedRecord, "backfill: chunk %d of %s: %v", in.Index, in.Job, err)
			}
			// A permanent error stays one (wrapped by fmt.Errorf, Temporal
			// would see a retryable error of another type).
			var ae *temporal.ApplicationError
			if errors.As(err, &ae) && ae.NonRetryable() {
				return hb.committed().Result, permanent(ae.Type(), "backfill: chunk %d of %s: %s", in.Index, in.Job, ae.Message())
			}
			return hb.committed().Result, fmt.Errorf("backfill: chunk %d of %s: %w", in.Index, in.Job, err)
		}
		r := &cur.Result
		r.Outputs += sum.Counts[job.OK]
		r.WriteCounts.Add(outs.counts())
		r.ParamVersions = versions.merge(r.ParamVersions)
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
		if err := hb.commit(cloneCursor(cur)); err != nil {
			return hb.committed().Result, err
		}
		if a.OnSegment != nil {
			a.OnSegment(in, cloneCursor(cur))
		}
	}
}

// replaySegment runs the job over the events of src up to the chunk's
// event ordinal segEnd with env (the segment's outputs), advancing cur.
// It reports whether the chunk's events ended.
func (a *Backfill) replaySegment(ctx context.Context, j *job.Job, env *job.Env, src eventSource, segEnd int, cur *Cursor, hb *heartbeat) (job.Summary, bool, error) {
	done := false
	var last EventID // the last event consumed; cur.Last once the run ends
	consumed := false
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
			hb.consumed.Add(1)
			last, consumed = EventID{Source: e.Source, Key: e.Key, Time: e.Time, Log: e.Pos.Log, Offset: e.Pos.Offset}, true
			if !yield(*e, nil) {
				return
			}
		}
	}
	sum, err := job.RunAll(ctx, j, env, iter.Seq2[eventcenter.Event, error](seq), job.RunOptions{BatchSize: a.BatchSize, Workers: a.Workers})
	if consumed {
		cur.Last = &last
	}
	return sum, done, err
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
func (a *Backfill) env(ctx context.Context, j *job.Job, o Options) (*job.Env, error) {
	if a.Store == nil {
		return nil, errors.New("backfill: Backfill.Store is nil")
	}
	env := &job.Env{Mode: job.Backfill, Store: a.Store, Ledger: a.Ledger, Sources: a.Sources}
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
	switch {
	case o.ParamsVersion < 0 || o.ParamsVersion > 0 && o.Params != "":
		return nil, permanent(ErrTypeBadInput, "backfill: paramsVersion %d with params %q: pin a version or pick a policy, not both", o.ParamsVersion, o.Params)
	case o.ParamsVersion > 0:
		vs, ok := a.Params.(params.Versions)
		if !ok {
			return nil, permanent(ErrTypeBadInput, "backfill: paramsVersion: the parameter registry %T cannot look up versions", a.Params)
		}
		vals, err := vs.Version(ctx, j.Name(), params.Version(o.ParamsVersion))
		if errors.Is(err, params.ErrNoVersion) {
			return nil, permanent(ErrTypeBadInput, "backfill: %v", err)
		}
		if err != nil {
			return nil, err
		}
		env.Params = job.FixedParams(params.Version(o.ParamsVersion), vals)
		o.Params = "pinned"
	}
	switch o.Params {
	case "pinned":
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

// eventSource yields a range chunk's events in order.
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
	// One replay merges all the trigger sources in event order, as the
	// live worker meets them (each judged by its own filters in RunAll).
	q := eventcenter.ReplayQuery{Sources: j.Sources(), From: from, To: in.To, KnownAt: knownAt(in.Options)}
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

// errStalled is the cause of a chunk attempt's cancellation for making no
// progress.
var errStalled = errors.New("no progress")

// heartbeat sends a chunk's cursor: synchronously on each commit, and
// between commits every interval until the chunk has not progressed for
// its stall timeout.
type heartbeat struct {
	ctx      context.Context
	cancel   context.CancelCauseFunc
	direct   HeartbeatClient // nil: activity.RecordHeartbeat
	token    []byte
	consumed atomic.Int64 // events consumed by this attempt
	written  atomic.Int64 // records written by this attempt
	base     int          // Ordinal at the attempt's start

	mu   sync.Mutex // serialises sends
	cur  Cursor
	done chan struct{}
	wg   sync.WaitGroup
}

func (a *Backfill) newHeartbeat(ctx context.Context, cancel context.CancelCauseFunc, cur Cursor, timeout, stall time.Duration) *heartbeat {
	h := &heartbeat{ctx: ctx, cancel: cancel, direct: a.Heartbeats, token: activity.GetInfo(ctx).TaskToken,
		cur: cloneCursor(cur), base: cur.Ordinal, done: make(chan struct{})}
	every := timeout / 4
	if every <= 0 || every > 10*time.Second {
		every = 10 * time.Second
	}
	every = max(every, 100*time.Millisecond)
	if stall > 0 && stall/4 < every {
		every = max(stall/4, 10*time.Millisecond)
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		last, progressed := int64(0), time.Now()
		for {
			select {
			case <-h.done:
				return
			case <-ctx.Done():
				return
			case now := <-t.C:
				n := h.consumed.Load() + h.written.Load()
				if n != last {
					last, progressed = n, now
				} else if stall > 0 && now.Sub(progressed) >= stall {
					h.cancel(fmt.Errorf("%w for %v (at event %d of the chunk)", errStalled, stall, h.base+int(h.consumed.Load())))
					return
				}
				h.mu.Lock()
				if err := h.send(h.cur); err != nil {
					activity.GetLogger(ctx).Warn("backfill: heartbeat", "error", err)
				}
				h.mu.Unlock()
			}
		}
	}()
	return h
}

// send heartbeats c with the attempt's progress; the caller holds h.mu.
func (h *heartbeat) send(c Cursor) error {
	c.Consumed = h.base + int(h.consumed.Load())
	if h.direct == nil {
		activity.RecordHeartbeat(h.ctx, c)
		return nil
	}
	err := h.direct.RecordActivityHeartbeat(h.ctx, h.token, c)
	var canceled *temporal.CanceledError
	switch {
	case err == nil:
	case errors.As(err, &canceled):
		// Cancellation was requested: the SDK's own heartbeat (never
		// batched here, as it is not used otherwise) learns it and
		// cancels the activity as cancelled.
		activity.RecordHeartbeat(h.ctx, c)
	case isNotFound(err):
		// This attempt timed out or the workflow is gone.
		h.cancel(err)
	}
	return err
}

func isNotFound(err error) bool {
	var nf *serviceerror.NotFound
	return errors.As(err, &nf)
}

// commit makes c the chunk's cursor and sends it before returning. An
// error is the attempt's end (it timed out or was cancelled); a transient
// failure to send is logged, the next send repeats it.
func (h *heartbeat) commit(c Cursor) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cur = c
	if err := h.send(c); err != nil {
		if h.ctx.Err() != nil {
			return h.ctx.Err()
		}
		activity.GetLogger(h.ctx).Warn("backfill: heartbeat of a committed segment", "error", err)
	}
	return nil
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

// paramVersions is an output that notes the parameter versions of the
// records (at most 100), for the summary and the manifest, and counts them
// as the chunk's progress.
type paramVersions struct {
	written *atomic.Int64 // counts the records: progress
	mu      sync.Mutex
	seen    map[int64]struct{}
}

func (p *paramVersions) Name() string { return "paramversions" }
func (p *paramVersions) Idempotent()  {}

func (p *paramVersions) Write(_ context.Context, recs []job.Record) error {
	p.note(len(recs), func(yield func(params.Version) bool) {
		for i := range recs {
			if !yield(recs[i].ParamVersion) {
				return
			}
		}
	})
	return nil
}

// note counts n records, of the parameter versions vs.
func (p *paramVersions) note(n int, vs iter.Seq[params.Version]) {
	p.written.Add(int64(n))
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen == nil {
		p.seen = map[int64]struct{}{}
	}
	for v := range vs {
		if len(p.seen) >= 100 {
			return
		}
		p.seen[int64(v)] = struct{}{}
	}
}

// merge adds the versions seen to vs (sorted, at most 100).
func (p *paramVersions) merge(vs []int64) []int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	for v := range p.seen {
		if i, found := slices.BinarySearch(vs, v); !found && len(vs) < 100 {
			vs = slices.Insert(vs, i, v)
		}
	}
	return vs
}
