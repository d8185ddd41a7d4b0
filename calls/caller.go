package calls

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"regexp"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/live"
	"github.com/tidemark-dev/tidemark/source"
	"github.com/tidemark-dev/tidemark/wire"
)

// CallerConfig configures a Caller. Store and Brokers are required.
type CallerConfig struct {
	// Store holds the calls and their results.
	Store eventcenter.Store
	// Brokers are the Kafka seed brokers.
	Brokers []string
	// ResultsTopic must be the one the jobs' Output writes. Default
	// DefaultResultsTopic.
	ResultsTopic string
	// Codec encodes the call events. Default wire.JSON.
	Codec wire.Codec
	// Now is the clock of call times. Default time.Now.
	Now func() time.Time
	// DeadLetterPrefix names the live workers' dead-letter topics
	// ("<prefix>.<job>", live.DeadLetterTopic): a call a worker gives up on
	// is a failed call. Default "tidemark.deadletter".
	DeadLetterPrefix string
	// Logger. Default slog.Default().
	Logger *slog.Logger
	// KafkaOptions are added to the client's options.
	KafkaOptions []kgo.Opt
}

// Caller makes calls: it stores a call, produces it to the job's call
// topic, and waits for its result, which it learns from the results topic
// (every Caller reads all of it, from when it started), or for its
// failure, which it learns from the workers' dead-letter topics (and
// stores: FailureSource). Safe for concurrent use; Run must be running for
// calls to learn their results before their timeout.
type Caller struct {
	cfg CallerConfig
	cl  *kgo.Client
	log *slog.Logger

	mu      sync.Mutex
	waiters map[string][]chan Call // call id → requests waiting
	flight  map[string]*flight     // idempotent calls a request of this instance is making
	ready   chan struct{}
}

// NewCaller returns a Caller with its Kafka client; Close it.
func NewCaller(cfg CallerConfig) (*Caller, error) {
	if cfg.Store == nil || len(cfg.Brokers) == 0 {
		return nil, errors.New("calls: CallerConfig needs Store and Brokers")
	}
	if cfg.ResultsTopic == "" {
		cfg.ResultsTopic = DefaultResultsTopic
	}
	if cfg.Codec == nil {
		cfg.Codec = wire.JSON
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DeadLetterPrefix == "" {
		cfg.DeadLetterPrefix = "tidemark.deadletter"
	}
	// Results from a second before the start: a call made once Run has
	// started cannot have a result older than that.
	start := cfg.Now().Add(-time.Second)
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumeTopics("^"+regexp.QuoteMeta(cfg.ResultsTopic)+"$", "^"+regexp.QuoteMeta(cfg.DeadLetterPrefix)+`\.`),
		kgo.ConsumeRegex(),
		kgo.MetadataMaxAge(10 * time.Second), // finds the dead-letter topics of workers started later
		kgo.ConsumeResetOffset(kgo.NewOffset().AfterMilli(start.UnixMilli())),
		kgo.FetchMaxWait(50 * time.Millisecond),
		kgo.ProducerLinger(0),
	}, cfg.KafkaOptions...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("calls: kafka client: %w", err)
	}
	return &Caller{cfg: cfg, cl: cl, log: cfg.Logger, waiters: map[string][]chan Call{}, flight: map[string]*flight{}, ready: make(chan struct{})}, nil
}

// Close closes the Kafka client.
func (c *Caller) Close() { c.cl.Close() }

// Run reads the results topic until ctx ends, handing each result to the
// requests waiting for it. It creates the topic if missing.
func (c *Caller) Run(ctx context.Context) error {
	if err := source.EnsureTopics(ctx, c.cl, 3, c.cfg.ResultsTopic); err != nil {
		return err
	}
	close(c.ready)
	for {
		fs := c.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if fs.IsClientClosed() {
			return errors.New("calls: kafka client closed")
		}
		fs.EachError(func(t string, p int32, err error) { c.log.Warn("calls: results topic", "partition", p, "err", err) })
		fs.EachRecord(func(rec *kgo.Record) {
			if rec.Topic == c.cfg.ResultsTopic {
				c.result1(rec)
			} else {
				c.deadLetter(ctx, rec)
			}
		})
	}
}

// result1 hands a result to the requests waiting for it.
func (c *Caller) result1(rec *kgo.Record) {
	id := string(rec.Key)
	ws := c.takeWaiters(id)
	if len(ws) == 0 {
		return
	}
	var r job.Record
	if err := json.Unmarshal(rec.Value, &r); err != nil {
		c.log.Warn("calls: malformed result", "call", id, "err", err)
		return
	}
	for _, w := range ws {
		w <- Call{ID: id, Record: &r} // buffered, one answer per waiter
	}
}

// deadLetter stores the failure of a call a worker gave up on, and hands
// it to the requests waiting. Every Caller stores it: one event.
func (c *Caller) deadLetter(ctx context.Context, rec *kgo.Record) {
	var dl live.DeadLetter
	if err := json.Unmarshal(rec.Value, &dl); err != nil || dl.Trigger.Source != Source(dl.Job) {
		return // not a call's
	}
	f := &Failure{Outcome: dl.Outcome, Error: dl.Error}
	e := eventcenter.Event{Source: FailureSource(dl.Job), Key: dl.Trigger.Key, Time: dl.Trigger.Time,
		Pos: eventcenter.Position{Log: dl.Trigger.Pos[0], Offset: dl.Trigger.Pos[1]}, Op: eventcenter.OpMessage,
		After: eventcenter.Row{"outcome": f.Outcome, "error": f.Error, "job_version": dl.JobVersion}}
	if err := c.cfg.Store.Append(ctx, []eventcenter.Event{e}); err != nil {
		c.log.Warn("calls: storing a failed call", "job", dl.Job, "call", dl.Trigger.Key, "err", err)
	}
	id := ID(dl.Job, dl.Trigger.Key)
	for _, w := range c.takeWaiters(id) {
		w <- Call{ID: id, Failure: f}
	}
}

func (c *Caller) takeWaiters(id string) []chan Call {
	c.mu.Lock()
	defer c.mu.Unlock()
	ws := c.waiters[id]
	delete(c.waiters, id)
	return ws
}

// Ready is closed once Run has started reading.
func (c *Caller) Ready() <-chan struct{} { return c.ready }

// Options of a call.
type Options struct {
	// IdempotencyKey, if not "", names the call: a call of the same job
	// with the same key is the same call (its id, its one run, its result).
	IdempotencyKey string
	// ReplyTo, if not "", is where the result is also published (see
	// ParseReplyTo).
	ReplyTo string
	// Timeout: how long Call waits for the result. Zero: it does not wait.
	Timeout time.Duration
	// Accept, if set, checks the call event before anything is stored or
	// produced: the job's trigger filters (job.Job.Accepts), the schema a
	// call must meet. A call it refuses is ErrRefused.
	Accept func(e *eventcenter.Event) bool
}

// Call is a made call: its id, and its result or its failure if either
// came in time (neither: the call is pending).
type Call struct {
	ID      string
	Record  *job.Record
	Failure *Failure
}

// Failure is why a job's live worker gave up on a call (a dead letter): the
// run's outcome ("failed", "stale", "invalid", "refused", see
// live.DeadLetter) and its error.
type Failure struct {
	Outcome string `json:"outcome"`
	Error   string `json:"error"`
}

// Call calls the job named jobName with row as its trigger's row (a
// message event of Source(jobName), keyed by the call's key, timed now)
// and waits up to o.Timeout for the result.
//
// A new call is produced to Topic(jobName), then stored in the event
// center (the job's live worker stores it too, before it runs). A refused
// call stores nothing: an invalid row (an *eventcenter.InvalidEventError),
// one o.Accept refuses (ErrRefused), a bad ReplyTo (ErrReplyTo), Kafka not
// acknowledging (ErrUnavailable).
//
// With an IdempotencyKey of a call stored already, nothing is stored or
// produced again: Call waits for (or returns) that call's answer; the
// same key with another row or ReplyTo is ErrIdempotencyMismatch.
//
// The answer is in the returned Call: its Record, its Failure, or neither
// (pending when the timeout passed). The caller checks that the job
// exists and is callable.
func (c *Caller) Call(ctx context.Context, jobName string, row eventcenter.Row, o Options) (Call, error) {
	if o.ReplyTo != "" {
		if _, err := ParseReplyTo(o.ReplyTo); err != nil {
			return Call{}, err
		}
	}
	now := c.cfg.Now().UTC()
	key := randomKey(now)
	if o.IdempotencyKey != "" {
		key = idempotentKey(jobName, o.IdempotencyKey)
	}
	id := ID(jobName, key)
	idem := o.IdempotencyKey != ""
	var f *flight
	produce := true
	if idem {
		var err error
		if f, produce, err = c.claim(ctx, id); err != nil {
			return Call{}, err
		}
		defer f.release(c, id)
	}
	wait := make(chan Call, 1)
	c.mu.Lock()
	c.waiters[id] = append(c.waiters[id], wait)
	c.mu.Unlock()
	defer c.unwait(id, wait)

	if idem {
		// A retry: the call may be stored (and answered) already. On a
		// store keeping a window, a key without an event since its horizon
		// is beyond it: a call older than the window is gone, and a new
		// one is made.
		stored, err := c.cfg.Store.AsOf(ctx, eventcenter.AsOf{Source: Source(jobName), Key: key, Time: eventcenter.MaxTime})
		switch {
		case err == nil:
			if !sameCall(stored.After, row, o.ReplyTo) {
				return Call{}, fmt.Errorf("%w: call %s", ErrIdempotencyMismatch, id)
			}
			produce = false
			done, err := c.answer(ctx, jobName, key)
			if err != nil {
				return Call{}, err
			}
			if done.Record != nil || done.Failure != nil {
				done.ID = id
				return done, nil
			}
		case !absent(err):
			return Call{}, err
		}
	}
	if produce {
		r := maps.Clone(row)
		if o.ReplyTo != "" {
			r[ColReplyTo] = o.ReplyTo
		}
		e := eventcenter.Event{Source: Source(jobName), Key: key, Time: now, Op: eventcenter.OpMessage, After: r}
		if err := e.Validate(); err != nil {
			return Call{}, err
		}
		if o.Accept != nil && !o.Accept(&e) {
			return Call{}, fmt.Errorf("%w: job %s", ErrRefused, jobName)
		}
		v, err := c.cfg.Codec.Append(nil, &e)
		if err != nil {
			return Call{}, err
		}
		// Kafka first: a call Kafka refused is stored nowhere. Then the
		// store, so that a poll or a retry sees the call at once (the
		// worker's append of the same event stores nothing more).
		rec := &kgo.Record{Topic: Topic(jobName), Key: []byte(key), Value: v,
			Headers: []kgo.RecordHeader{{Key: wire.HeaderCodec, Value: []byte(c.cfg.Codec.Name())}}}
		acked, err := c.cl.ProduceSync(ctx, rec).First()
		if err != nil {
			return Call{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		// Its position is the Kafka record's, as for every http source
		// (source.FromRecord): the event the worker stores is this one.
		e.Pos = eventcenter.Position{Log: uint64(acked.Partition), Offset: uint64(acked.Offset)}
		if err := c.cfg.Store.Append(ctx, []eventcenter.Event{e}); err != nil {
			c.log.Warn("calls: storing a produced call (the worker stores it)", "call", id, "err", err)
		}
		if f != nil {
			f.produced = true
		}
	}
	if f != nil {
		f.release(c, id) // the call is made: retries read it from the store
	}
	if o.Timeout <= 0 {
		return Call{ID: id}, nil
	}
	t := time.NewTimer(o.Timeout)
	defer t.Stop()
	select {
	case done := <-wait:
		return done, nil
	case <-t.C:
	case <-ctx.Done():
		return Call{}, ctx.Err()
	}
	// One look in the store: the answer may have come before Run read
	// from the topics' start.
	done, err := c.answer(ctx, jobName, key)
	if err != nil {
		return Call{ID: id}, nil
	}
	done.ID = id
	return done, nil
}

func (c *Caller) unwait(id string, w chan Call) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ws := c.waiters[id]
	for i, x := range ws {
		if x == w {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(c.waiters, id)
	} else {
		c.waiters[id] = ws
	}
}

// flight is an idempotent call a request of this instance is making: its
// retries on the instance wait until it is stored (or refused), then check
// it as any retry does (ErrIdempotencyMismatch for another row).
type flight struct {
	done     chan struct{} // closed by release
	produced bool          // Kafka took the call (set before release)
	released bool          // under Caller.mu
}

// claim makes the request the one making the idempotent call id on this
// instance, after waiting for another making it. produce is false if the
// request waited for was produced to Kafka: the call is made even if its
// store append failed (the worker stores it), and is not made again.
func (c *Caller) claim(ctx context.Context, id string) (f *flight, produce bool, err error) {
	produce = true
	for {
		c.mu.Lock()
		busy, ok := c.flight[id]
		if !ok {
			f = &flight{done: make(chan struct{})}
			c.flight[id] = f
			c.mu.Unlock()
			return f, produce, nil
		}
		c.mu.Unlock()
		select {
		case <-busy.done:
			produce = produce && !busy.produced
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
}

// release ends f's claim on id; releasing again does nothing.
func (f *flight) release(c *Caller, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.released {
		return
	}
	f.released = true
	delete(c.flight, id)
	close(f.done)
}

func (c *Caller) result(ctx context.Context, jobName, key string) (job.Record, error) {
	e, err := c.cfg.Store.AsOf(ctx, eventcenter.AsOf{Source: ResultSource(jobName), Key: key, Time: eventcenter.MaxTime})
	if err != nil {
		return job.Record{}, err
	}
	return recordOf(jobName, &e), nil
}

// answer reads a call's result or failure from the store; neither (a
// pending call) is no error.
func (c *Caller) answer(ctx context.Context, jobName, key string) (Call, error) {
	r, err := c.result(ctx, jobName, key)
	if err == nil {
		return Call{Record: &r}, nil
	}
	if !absent(err) {
		return Call{}, err
	}
	e, err := c.cfg.Store.AsOf(ctx, eventcenter.AsOf{Source: FailureSource(jobName), Key: key, Time: eventcenter.MaxTime})
	if err == nil {
		o, _ := e.After["outcome"].(string)
		msg, _ := e.After["error"].(string)
		return Call{Failure: &Failure{Outcome: o, Error: msg}}, nil
	}
	if !absent(err) {
		return Call{}, err
	}
	return Call{}, nil
}

// Status is the state of a call.
type Status int

// States of a call.
const (
	Unknown  Status = iota // no such call
	Pending                // stored, no result yet
	Answered               // its result is stored
	Failed                 // the job's worker gave up on it (a dead letter)
	Expired                // left the event center's retention window
)

// Poll returns the state of the call id, with its result when Answered
// and its failure when Failed. A malformed id is ErrBadID. On a store that
// keeps a window, a call older than the window is Expired — and so is an
// id it never stored, which such a store cannot tell from one it dropped.
func (c *Caller) Poll(ctx context.Context, id string) (Status, Call, error) {
	jobName, key, err := ParseID(id)
	if err != nil {
		return Unknown, Call{}, err
	}
	// The call first: on a store keeping a window, a key without events
	// since the horizon reads as beyond it, and a call's answer is never
	// older than the call.
	_, err = c.cfg.Store.AsOf(ctx, eventcenter.AsOf{Source: Source(jobName), Key: key, Time: eventcenter.MaxTime})
	switch {
	case errors.Is(err, eventcenter.ErrBeyondHorizon):
		return Expired, Call{ID: id}, nil
	case errors.Is(err, eventcenter.ErrNotFound):
		return Unknown, Call{ID: id}, nil
	case err != nil:
		return Unknown, Call{}, err
	}
	done, err := c.answer(ctx, jobName, key)
	done.ID = id
	switch {
	case err != nil:
		return Unknown, Call{}, err
	case done.Record != nil:
		return Answered, done, nil
	case done.Failure != nil:
		return Failed, done, nil
	}
	return Pending, done, nil
}

// absent reports whether a read's error says the key has no event (on a
// store keeping a window: none since the horizon).
func absent(err error) bool {
	return errors.Is(err, eventcenter.ErrNotFound) || errors.Is(err, eventcenter.ErrBeyondHorizon)
}

// sameCall reports whether a stored call's row is the one a call of row
// with replyTo would store.
func sameCall(stored, row eventcenter.Row, replyTo string) bool {
	want := maps.Clone(row)
	if want == nil {
		want = eventcenter.Row{}
	}
	if replyTo != "" {
		want[ColReplyTo] = replyTo
	}
	return reflect.DeepEqual(map[string]any(stored), map[string]any(want))
}
