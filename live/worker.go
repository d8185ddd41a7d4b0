package live

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/params"
	"github.com/tidemark-dev/tidemark/source"
)

// Config configures a Worker.
type Config struct {
	// Brokers are the Kafka seed brokers. Required.
	Brokers []string
	// Sources is the source registry. If set, the trigger source's topic
	// and kind come from it, and records become events exactly as ingest
	// makes them (positions of http and kafka sources, kafka sources in json
	// or raw format). Default nil: wire records stored as they decode, the
	// right thing for mysql and rabbitmq sources.
	Sources *source.Config
	// Topic carries the trigger source's events. Default: the registry's
	// topic of the source, else source.TopicName(trigger source).
	Topic string
	// Group is the consumer group. Default "tidemark.job.<job name>".
	Group string
	// Store is the event center. Required.
	Store eventcenter.Store
	// Params is the parameter registry, read at every run. If it keeps
	// declarations (params.Declarer), the worker declares the job's
	// parameters at start. Default nil: every parameter at its default.
	Params params.Registry
	// Fallback serves FetchStrongNoDelay reads from the source. Default nil.
	Fallback job.Fallback
	// Ledger for outputs that are not idempotent. Default: a
	// job.EventLedger on Store.
	Ledger job.Ledger
	// MaxBatch is the most records handled at once. Default 500.
	MaxBatch int
	// Workers evaluate a batch's events in parallel. Default GOMAXPROCS.
	Workers int
	// Backoff is the first retry delay of a failed store append, output
	// write or retryable run; it doubles up to MaxBackoff. Defaults 100ms, 10s.
	Backoff, MaxBackoff time.Duration
	// OnRun, if set, is called for each run after its batch's outputs are
	// written (metrics, tests). It must not block for long.
	OnRun func(Run)
	// Logger. Default slog.Default().
	Logger *slog.Logger
	// KafkaOptions are added to the consumer's options (TLS, SASL, …).
	KafkaOptions []kgo.Opt
}

func (c *Config) setDefaults(j *job.Job) {
	if c.Topic == "" {
		c.Topic = source.TopicName(j.Source())
		if c.Sources != nil {
			if s, err := c.Sources.Lookup(j.Source()); err == nil && s.Topic != "" {
				c.Topic = s.Topic
			}
		}
	}
	if c.Group == "" {
		c.Group = "tidemark.job." + j.Name()
	}
	if c.Ledger == nil && c.Store != nil {
		c.Ledger = job.EventLedger{Store: c.Store}
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 500
	}
	if c.Backoff <= 0 {
		c.Backoff = 100 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports a Config that cannot run.
func (c *Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("live: Config.Brokers is required")
	}
	if c.Store == nil {
		return errors.New("live: Config.Store is required")
	}
	return nil
}

func (c *Config) converter(j *job.Job) (converter, error) {
	if c.Sources == nil {
		return converter{}, nil
	}
	s, err := c.Sources.Lookup(j.Source())
	if err != nil {
		return converter{}, fmt.Errorf("live: trigger source: %w", err)
	}
	return converter{topic: c.Sources.ByTopic(s.Topic)}, nil
}

// Run is one run of the job by the worker.
type Run struct {
	job.Result
	Partition int32
	Offset    int64
	// Produced is the Kafka record's timestamp; Done is when the run's
	// outputs were written. Done-Produced is the trigger-to-output latency.
	Produced, Done time.Time
}

// Stats counts what a worker did.
type Stats struct {
	Records   int64 // Kafka records consumed
	Malformed int64 // records that did not decode
	Runs      int64 // runs by outcome: see ByOutcome
	ByOutcome [job.Failed + 1]int64
	Retries   int64 // retried appends, writes and runs
	Batches   int64
}

// Worker runs one job live.
type Worker struct {
	job  *job.Job
	cfg  Config
	env  *job.Env
	log  *slog.Logger
	conv converter

	mu    sync.Mutex
	stats Stats
	ready atomic.Bool
}

// New returns a worker running j; Run starts it.
func New(j *job.Job, cfg Config) (*Worker, error) {
	cfg.setDefaults(j)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	conv, err := cfg.converter(j)
	if err != nil {
		return nil, err
	}
	env := &job.Env{Mode: job.Live, Store: cfg.Store, Fallback: cfg.Fallback, Ledger: cfg.Ledger}
	if cfg.Params != nil {
		env.Params = job.CurrentParams(cfg.Params)
	}
	return &Worker{job: j, cfg: cfg, env: env, conv: conv, log: cfg.Logger.With("job", j.Name(), "topic", cfg.Topic)}, nil
}

// Stats returns the counts so far.
func (w *Worker) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// Ready reports whether the worker has joined its group and polls.
func (w *Worker) Ready() bool { return w.ready.Load() }

// Run consumes until ctx ends (returning nil) or a fatal error.
func (w *Worker) Run(ctx context.Context) error {
	if d, ok := w.cfg.Params.(params.Declarer); ok && len(w.job.Params()) > 0 {
		if err := d.Declare(ctx, w.job.Name(), w.job.Params()); err != nil {
			return fmt.Errorf("live: declaring parameters: %w", err)
		}
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(w.cfg.Brokers...),
		kgo.ConsumerGroup(w.cfg.Group),
		kgo.ConsumeTopics(w.cfg.Topic),
		// Offsets of handled batches are marked and committed in the
		// background (and on revocation): a commit round trip is not on
		// the trigger-to-output path. A crash redelivers up to one
		// interval of batches, which the idempotent store and outputs absorb.
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(time.Second),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100 * time.Millisecond),
	}, w.cfg.KafkaOptions...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("live: kafka client: %w", err)
	}
	defer func() {
		// Commit what was handled before leaving the group.
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := cl.CommitMarkedOffsets(cctx); err != nil {
			w.log.Warn("final commit failed", "err", err)
		}
		cl.Close()
	}()
	w.log.Info("live worker started", "group", w.cfg.Group, "level", w.job.Level().String(), "version", w.job.Version())
	for {
		w.ready.Store(true)
		fetches := cl.PollRecords(ctx, w.cfg.MaxBatch)
		if ctx.Err() != nil {
			cl.AllowRebalance()
			return nil
		}
		if fetches.IsClientClosed() {
			return errors.New("live: kafka client closed")
		}
		fetches.EachError(func(topic string, part int32, err error) {
			w.log.Warn("fetch error", "partition", part, "err", err)
		})
		recs := fetches.Records()
		if len(recs) > 0 {
			if err := w.handle(ctx, recs); err != nil {
				cl.AllowRebalance()
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			cl.MarkCommitRecords(recs...)
		}
		cl.AllowRebalance()
	}
}

// handle processes one polled batch up to its outputs.
func (w *Worker) handle(ctx context.Context, recs []*kgo.Record) error {
	events := make([]eventcenter.Event, 0, len(recs))
	from := make([]*kgo.Record, 0, len(recs))
	var malformed int64
	for _, r := range recs {
		e, err := w.conv.event(r)
		if err != nil {
			malformed++
			w.log.Warn("malformed record skipped", "partition", r.Partition, "offset", r.Offset, "err", err)
			continue
		}
		if e.Source != w.job.Source() {
			continue // another source on the topic
		}
		events = append(events, e)
		from = append(from, r)
	}
	// 2. Store the triggers before any run sees them.
	if len(events) > 0 {
		if err := w.retry(ctx, "store triggers", func() error { return w.cfg.Store.Append(ctx, events) }); err != nil {
			return err
		}
	}
	// 3. Evaluate, retrying the runs that failed on the event center.
	results := make([]job.Result, len(events))
	job.EvaluateAll(ctx, w.job, w.env, events, results, w.cfg.Workers)
	for attempt := 0; ; attempt++ {
		var again []int
		for i := range results {
			if results[i].Retryable() {
				again = append(again, i)
			}
		}
		if len(again) == 0 {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w.log.Warn("runs failed on the event center, retrying", "runs", len(again), "err", results[again[0]].Err)
		w.count(func(s *Stats) { s.Retries += int64(len(again)) })
		if !sleep(ctx, w.backoff(attempt)) {
			return ctx.Err()
		}
		for _, i := range again {
			results[i], _ = job.Evaluate(ctx, w.job, events[i], w.env)
		}
	}
	// 4. Outputs.
	var out []job.Record
	for i := range results {
		if results[i].Record != nil {
			out = append(out, *results[i].Record)
		}
	}
	outs := w.job.Outputs()
	if err := w.retry(ctx, "write outputs", func() error { return job.WriteOutputs(ctx, outs, w.cfg.Ledger, out) }); err != nil {
		return err
	}
	done := time.Now()
	w.mu.Lock()
	w.stats.Records += int64(len(recs))
	w.stats.Malformed += malformed
	w.stats.Batches++
	for i := range results {
		w.stats.Runs++
		w.stats.ByOutcome[results[i].Outcome]++
	}
	w.mu.Unlock()
	for i := range results {
		res := &results[i]
		switch res.Outcome {
		case job.Stale:
			w.log.Warn("run stale: outputs nothing", "trigger", res.Trigger, "err", res.Err)
		case job.Failed:
			w.log.Error("run failed: outputs nothing", "trigger", res.Trigger, "err", res.Err)
		}
		if w.cfg.OnRun != nil {
			w.cfg.OnRun(Run{Result: *res, Partition: from[i].Partition, Offset: from[i].Offset, Produced: from[i].Timestamp, Done: done})
		}
	}
	return nil
}

// retry calls f until it succeeds or ctx ends, backing off.
func (w *Worker) retry(ctx context.Context, what string, f func() error) error {
	for attempt := 0; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, eventcenter.ErrInvalidEvent) || errors.Is(err, eventcenter.ErrClosed) {
			return fmt.Errorf("live: %s: %w", what, err)
		}
		d := w.backoff(attempt)
		w.log.Warn("retrying", "what", what, "in", d, "err", err)
		w.count(func(s *Stats) { s.Retries++ })
		if !sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

func (w *Worker) backoff(attempt int) time.Duration {
	d := w.cfg.Backoff << min(attempt, 20)
	return min(d, w.cfg.MaxBackoff)
}

func (w *Worker) count(f func(*Stats)) {
	w.mu.Lock()
	f(&w.stats)
	w.mu.Unlock()
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
