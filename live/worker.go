package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/params"
	"github.com/tidemark-dev/tidemark/params/notify"
	"github.com/tidemark-dev/tidemark/source"
)

// Config configures a Worker.
type Config struct {
	// Brokers are the Kafka seed brokers. Required.
	Brokers []string
	// Sources is the source registry. If set, each trigger source's topic
	// and kind come from it, and records become events exactly as ingest
	// makes them (positions of http and kafka sources, kafka sources in json
	// or raw format). Default nil: wire records stored as they decode, the
	// right thing for mysql and rabbitmq sources.
	Sources *source.Config
	// Topics maps a trigger source to the topic carrying its events.
	// Default for a source missing from it: the registry's topic of the
	// source, else source.TopicName(source). Trigger sources may share a
	// topic.
	Topics map[string]string
	// Topic is the topic of a job with a single trigger source (Topics
	// says the same for any job); a job with several refuses it.
	Topic string
	// Group is the consumer group. Default DefaultGroup(job name).
	Group string
	// Store is the event center. Required.
	Store eventcenter.Store
	// Params is the parameter registry, read at every run. If it keeps
	// declarations (params.Declarer), the worker declares the job's
	// parameters at start. Default nil: every parameter at its default.
	Params params.Registry
	// ParamsTopic is the Kafka control topic announcing approved parameter
	// versions (params/notify): the worker re-reads its job's version as
	// soon as one names its job, and audits the switch (a "picked-up"
	// step in params.AuditSource). Default "": no push.
	ParamsTopic string
	// ParamsPoll is how old the worker's copy of its job's parameter
	// version may grow before a run re-reads the registry: the fallback
	// for a lost notification. Default 10s with ParamsTopic, else 0 (the
	// registry is read at every run).
	ParamsPoll time.Duration
	// WorkerID names the worker in the audit trail. Default
	// "<group>@<host>:<pid>".
	WorkerID string
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
	// write, dead-letter write or retryable run; it doubles up to
	// MaxBackoff. Defaults 100ms, 10s.
	Backoff, MaxBackoff time.Duration
	// MaxAttempts bounds the attempts at each of those steps while it fails
	// on an outage (of the store, an output or Kafka): after the last one
	// Run returns the error, leaving the batch uncommitted, so a restart
	// redelivers it. Default 10 (about half a minute with the default
	// backoff).
	MaxAttempts int
	// DeadLetterTopic receives a DeadLetter for each trigger the worker
	// gives up on: a run that failed on its logic, its parameters or an
	// invalid fetch, or ended stale; an event the store refuses as
	// invalid; a record an output refuses as invalid. Such a trigger
	// outputs nothing and its partition moves on. The topic is created at
	// start if missing (one partition). Default
	// DeadLetterTopic("tidemark.deadletter", job name).
	DeadLetterTopic string
	// OnRun, if set, is called for each run after its batch's outputs are
	// written (metrics, tests). It must not block for long.
	OnRun func(Run)
	// Logger. Default slog.Default().
	Logger *slog.Logger
	// KafkaOptions are added to the consumer's options (TLS, SASL, …).
	KafkaOptions []kgo.Opt
}

// DeadLetterTopic is the dead-letter topic of the job named job in a
// deployment whose dead-letter topics are named after prefix:
// "<prefix>.<job>", with the characters Kafka refuses replaced by '_'.
func DeadLetterTopic(prefix, job string) string {
	return source.TopicName(prefix + "." + job)
}

// DefaultGroup is the consumer group of the live worker of the job named
// job, unless its Config names another: "tidemark.job.<job>".
func DefaultGroup(job string) string { return "tidemark.job." + job }

func (c *Config) setDefaults(j *job.Job) {
	topics := make(map[string]string, len(j.Sources()))
	for _, src := range j.Sources() {
		switch t := c.Topics[src]; {
		case t != "":
			topics[src] = t
		case c.Topic != "" && len(j.Sources()) == 1:
			topics[src] = c.Topic
		default:
			topics[src] = source.TopicName(src)
			if c.Sources != nil {
				if s, err := c.Sources.Lookup(src); err == nil && s.Topic != "" {
					topics[src] = s.Topic
				}
			}
		}
	}
	c.Topics = topics
	if c.Group == "" {
		c.Group = DefaultGroup(j.Name())
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
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 10
	}
	if c.DeadLetterTopic == "" {
		c.DeadLetterTopic = DeadLetterTopic("tidemark.deadletter", j.Name())
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ParamsTopic != "" && c.ParamsPoll == 0 {
		c.ParamsPoll = 10 * time.Second
	}
	if c.WorkerID == "" {
		host, _ := os.Hostname()
		c.WorkerID = fmt.Sprintf("%s@%s:%d", c.Group, host, os.Getpid())
	}
}

// Validate reports a Config that cannot run.
func (c *Config) Validate() error {
	if c.Topic != "" && len(c.Topics) > 1 {
		return errors.New("live: Config.Topic names the topic of a job with one trigger source: use Config.Topics")
	}
	if len(c.Brokers) == 0 {
		return errors.New("live: Config.Brokers is required")
	}
	if c.Store == nil {
		return errors.New("live: Config.Store is required")
	}
	if err := source.ValidateTopic(c.DeadLetterTopic); err != nil {
		return fmt.Errorf("live: Config.DeadLetterTopic: %w", err)
	}
	return nil
}

// converters returns the converter of each trigger topic (after setDefaults).
func (c *Config) converters(j *job.Job) (map[string]converter, error) {
	convs := make(map[string]converter, len(c.Topics))
	for _, src := range j.Sources() {
		topic := c.Topics[src]
		if c.Sources == nil {
			convs[topic] = converter{}
			continue
		}
		s, err := c.Sources.Lookup(src)
		if err != nil {
			return nil, fmt.Errorf("live: trigger source: %w", err)
		}
		convs[topic] = converter{topic: c.Sources.ByTopic(s.Topic)}
	}
	return convs, nil
}

// topicList returns the distinct trigger topics, sorted.
func (c *Config) topicList() []string {
	var ts []string
	for _, t := range c.Topics {
		if !slices.Contains(ts, t) {
			ts = append(ts, t)
		}
	}
	slices.Sort(ts)
	return ts
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
	// DeadLetters counts the triggers sent to the dead-letter topic.
	DeadLetters int64
	Batches     int64
}

// Worker runs one job live.
type Worker struct {
	job   *job.Job
	cfg   Config
	env   *job.Env
	log   *slog.Logger
	convs map[string]converter // by trigger topic
	// params is the worker's copy of its job's parameter version, nil
	// without Config.Params.
	params *params.Cache

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
	convs, err := cfg.converters(j)
	if err != nil {
		return nil, err
	}
	env := &job.Env{Mode: job.Live, Store: cfg.Store, Fallback: cfg.Fallback, Ledger: cfg.Ledger}
	if cfg.Sources != nil {
		env.Sources = job.KnownSources(cfg.Sources.Knows)
	}
	w := &Worker{job: j, cfg: cfg, env: env, convs: convs, log: cfg.Logger.With("job", j.Name(), "topics", cfg.topicList())}
	if cfg.Params != nil {
		w.params = params.NewCache(cfg.Params, cfg.ParamsPoll, func(_ string, v params.Version) { w.pickedUp(context.Background(), v, "poll") })
		env.Params = job.CurrentParams(w.params)
	}
	return w, nil
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
	if w.cfg.ParamsTopic != "" && w.params != nil {
		if _, _, err := w.params.Refresh(ctx, w.job.Name()); err != nil {
			return fmt.Errorf("live: reading parameters: %w", err)
		}
		go w.listenParams(ctx)
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(w.cfg.Brokers...),
		kgo.ConsumerGroup(w.cfg.Group),
		kgo.ConsumeTopics(w.cfg.topicList()...),
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
	if err := source.EnsureTopics(ctx, cl, 1, w.cfg.DeadLetterTopic); err != nil {
		cl.Close()
		return fmt.Errorf("live: dead-letter topic: %w", err)
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
			if err := w.handle(ctx, cl, recs); err != nil {
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

// listenParams refreshes the job's parameter version whenever the control
// topic names the job, until ctx ends.
func (w *Worker) listenParams(ctx context.Context) {
	err := notify.Listen(ctx, w.cfg.Brokers, w.cfg.ParamsTopic, w.cfg.KafkaOptions, func(m notify.Message) {
		if m.Job != w.job.Name() {
			return
		}
		v, changed, err := w.params.Refresh(ctx, m.Job)
		switch {
		case err != nil:
			w.log.Warn("re-reading parameters failed; the poll will retry", "version", m.Version, "err", err)
		case changed:
			w.pickedUp(ctx, v, "push")
		}
	})
	if err != nil {
		w.log.Warn("parameter notifications stopped; polling the registry", "topic", w.cfg.ParamsTopic, "err", err)
	}
}

// pickedUp logs and audits the worker's switch to version v.
func (w *Worker) pickedUp(ctx context.Context, v params.Version, how string) {
	w.log.Info("parameters switched", "version", v, "by", how)
	e := params.AuditEntry{Job: w.job.Name(), Step: params.StepPickedUp, By: w.cfg.WorkerID, Worker: w.cfg.WorkerID, At: time.Now(), Version: v, Comment: how}
	if err := params.AppendAudit(ctx, w.cfg.Store, e); err != nil {
		w.log.Warn("auditing the parameter switch failed", "version", v, "err", err)
	}
}

// handle processes one polled batch up to its outputs and dead letters.
func (w *Worker) handle(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	events := make([]eventcenter.Event, 0, len(recs))
	from := make([]*kgo.Record, 0, len(recs))
	var malformed int64
	for _, r := range recs {
		e, err := w.convs[r.Topic].event(r)
		if err != nil {
			malformed++
			w.log.Warn("malformed record skipped", "partition", r.Partition, "offset", r.Offset, "err", err)
			continue
		}
		if !w.job.Triggered(e.Source) {
			continue // another source on the topic
		}
		events = append(events, e)
		from = append(from, r)
	}
	var dead []DeadLetter
	// 2. Store the triggers before any run sees them. An event the store
	// refuses is a dead letter; the others are stored.
	for len(events) > 0 {
		err := w.retry(ctx, "store triggers", func() error { return w.cfg.Store.Append(ctx, events) })
		var ie *eventcenter.InvalidEventError
		if err == nil || !errors.As(err, &ie) || ie.Index < 0 || ie.Index >= len(events) {
			if err != nil {
				return err
			}
			break
		}
		i := ie.Index
		dead = append(dead, w.deadLetter(&events[i], from[i], "invalid", 0, ie))
		events, from = slices.Delete(events, i, i+1), slices.Delete(from, i, i+1)
	}
	// 3. Evaluate, retrying the runs that failed on the event center.
	results := make([]job.Result, len(events))
	job.EvaluateAll(ctx, w.job, w.env, events, results, w.cfg.Workers)
	for attempt := 1; ; attempt++ {
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
		if attempt >= w.cfg.MaxAttempts {
			return fmt.Errorf("live: %d runs still fail on the event center after %d attempts: %w", len(again), attempt, results[again[0]].Err)
		}
		w.log.Warn("runs failed on the event center, retrying", "runs", len(again), "attempt", attempt, "err", results[again[0]].Err)
		w.count(func(s *Stats) { s.Retries += int64(len(again)) })
		if !sleep(ctx, w.backoff(attempt-1)) {
			return ctx.Err()
		}
		for _, i := range again {
			results[i], _ = job.Evaluate(ctx, w.job, events[i], w.env)
		}
	}
	// 4. Outputs: the records of the OK runs. The others are dead letters.
	var out []job.Record
	var outFrom []int
	for i := range results {
		switch res := &results[i]; res.Outcome {
		case job.OK:
			out = append(out, *res.Record)
			outFrom = append(outFrom, i)
		case job.Failed, job.Stale:
			dead = append(dead, w.deadLetter(&events[i], from[i], res.Outcome.String(), res.ParamVersion, res.Err))
		}
	}
	refused, err := w.writeOutputs(ctx, out)
	if err != nil {
		return err
	}
	for k, err := range refused {
		i := outFrom[k]
		results[i].Outcome, results[i].Err, results[i].Record = job.Failed, err, nil
		dead = append(dead, w.deadLetter(&events[i], from[i], "refused", results[i].ParamVersion, err))
	}
	// 5. Dead letters.
	if err := w.produceDead(ctx, cl, dead); err != nil {
		return err
	}
	done := time.Now()
	w.mu.Lock()
	w.stats.Records += int64(len(recs))
	w.stats.Malformed += malformed
	w.stats.Batches++
	w.stats.DeadLetters += int64(len(dead))
	for i := range results {
		w.stats.Runs++
		w.stats.ByOutcome[results[i].Outcome]++
	}
	w.mu.Unlock()
	for i := range results {
		res := &results[i]
		switch res.Outcome {
		case job.Stale:
			w.log.Warn("run stale: outputs nothing, dead-lettered", "trigger", res.Trigger, "err", res.Err)
		case job.Failed:
			w.log.Error("run failed: outputs nothing, dead-lettered", "trigger", res.Trigger, "err", res.Err)
		}
		if w.cfg.OnRun != nil {
			w.cfg.OnRun(Run{Result: *res, Partition: from[i].Partition, Offset: from[i].Offset, Produced: from[i].Timestamp, Done: done})
		}
	}
	return nil
}

// writeOutputs writes recs to the job's outputs, retrying outages. When an
// output refuses the batch as invalid, it writes the records one by one and
// returns those refused (by index in recs) with the refusal, so that one bad
// record does not hold back the others.
func (w *Worker) writeOutputs(ctx context.Context, recs []job.Record) (map[int]error, error) {
	outs := w.job.Outputs()
	write := func(recs []job.Record) error {
		return w.retry(ctx, "write outputs", func() error { return job.WriteOutputs(ctx, outs, w.cfg.Ledger, recs) })
	}
	err := write(recs)
	if err == nil || !errors.Is(err, eventcenter.ErrInvalidEvent) {
		return nil, err
	}
	refused := map[int]error{}
	for i := range recs {
		if err := write(recs[i : i+1]); err != nil {
			if !errors.Is(err, eventcenter.ErrInvalidEvent) {
				return nil, err
			}
			refused[i] = err
		}
	}
	return refused, nil
}

// DeadLetter is the JSON value of a record of the dead-letter topic (its
// key: the trigger's key): a trigger the worker gave up on, and why.
type DeadLetter struct {
	Job          string         `json:"job"`
	JobVersion   string         `json:"job_version"`
	ParamVersion params.Version `json:"param_version"`
	// Outcome: "failed" or "stale" (the run's outcome), "invalid" (the
	// store refused the trigger event), "refused" (an output refused the
	// run's record as invalid; outputs that accepted it keep it).
	Outcome string `json:"outcome"`
	Error   string `json:"error"`
	// Trigger is the trigger event's identity.
	Trigger DeadTrigger `json:"trigger"`
	// Topic, Partition and Offset locate the trigger's Kafka record.
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	// At is when the worker gave up (RFC 3339).
	At time.Time `json:"at"`
}

// DeadTrigger is a trigger event's identity in a DeadLetter.
type DeadTrigger struct {
	Source string    `json:"source"`
	Key    string    `json:"key"`
	Time   time.Time `json:"time"`
	Pos    [2]uint64 `json:"pos"` // log, offset
}

func (w *Worker) deadLetter(e *eventcenter.Event, r *kgo.Record, outcome string, pv params.Version, err error) DeadLetter {
	return DeadLetter{
		Job: w.job.Name(), JobVersion: w.job.Version(), ParamVersion: pv, Outcome: outcome, Error: err.Error(),
		Trigger: DeadTrigger{Source: e.Source, Key: e.Key, Time: e.Time.UTC(), Pos: [2]uint64{e.Pos.Log, e.Pos.Offset}},
		Topic:   r.Topic, Partition: r.Partition, Offset: r.Offset, At: time.Now().UTC(),
	}
}

// produceDead writes dead letters to the dead-letter topic, retrying.
func (w *Worker) produceDead(ctx context.Context, cl *kgo.Client, dead []DeadLetter) error {
	if len(dead) == 0 {
		return nil
	}
	recs := make([]*kgo.Record, len(dead))
	for i := range dead {
		v, err := json.Marshal(&dead[i])
		if err != nil {
			return fmt.Errorf("live: dead letter: %w", err)
		}
		recs[i] = &kgo.Record{Topic: w.cfg.DeadLetterTopic, Key: []byte(dead[i].Trigger.Key), Value: v}
	}
	return w.retry(ctx, "write dead letters", func() error { return cl.ProduceSync(ctx, recs...).FirstErr() })
}

// permanent reports whether an error of the store or an output will not go
// away when retried: an invalid event (a dead letter) or a closed store
// (the worker stops).
func permanent(err error) bool {
	return errors.Is(err, eventcenter.ErrInvalidEvent) || errors.Is(err, eventcenter.ErrClosed)
}

// retry calls f until it succeeds, fails permanently, fails
// Config.MaxAttempts times or ctx ends, backing off.
func (w *Worker) retry(ctx context.Context, what string, f func() error) error {
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if permanent(err) {
			return fmt.Errorf("live: %s: %w", what, err)
		}
		if attempt >= w.cfg.MaxAttempts {
			return fmt.Errorf("live: %s: giving up after %d attempts: %w", what, attempt, err)
		}
		d := w.backoff(attempt - 1)
		w.log.Warn("retrying", "what", what, "attempt", attempt, "in", d, "err", err)
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
