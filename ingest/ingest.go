package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/source"
)

// DefaultGroup is the ingest's Kafka consumer group unless its Config
// names another.
const DefaultGroup = "tidemark-ingest"

// Dead-letter record headers, beside the original record's own headers.
const (
	HeaderReason    = "tidemark-dlq-reason"    // "<reason>: <detail>"
	HeaderTopic     = "tidemark-dlq-topic"     // the original topic
	HeaderPartition = "tidemark-dlq-partition" // the original partition (decimal)
	HeaderOffset    = "tidemark-dlq-offset"    // the original offset (decimal)
	HeaderTimestamp = "tidemark-dlq-timestamp" // the original record time (RFC 3339)
)

// Config configures an Ingester. Every field but Brokers, Sources and Store
// has a default.
type Config struct {
	// Brokers are the Kafka seed brokers. Required.
	Brokers []string
	// Sources is the registry; ingest consumes each of its topics. Required.
	Sources *source.Config
	// Store receives the events. Required.
	Store eventcenter.Store
	// Group is the Kafka consumer group. Default DefaultGroup.
	Group string
	// InstanceID, if set, makes this member static (KIP-345): a restarted
	// member with the same id takes its partitions back at once, without
	// waiting for the session of the crashed one to time out.
	InstanceID string
	// DeadLetterTopic receives the records that cannot be stored.
	// Default "tidemark.deadletter".
	DeadLetterTopic string
	// ProgressTopic is where the deployment's producers (cdc, forward)
	// publish their progress reports; ingest reads only this one. Default
	// source.DefaultProgressTopic.
	ProgressTopic string
	// MaxPollRecords bounds the records of one batch (one Append).
	// Default 2000 (bigger batches were no faster; see bench/README.md).
	MaxPollRecords int
	// AppendDepth is how many batches may be appended at once (a batch's
	// offsets are still marked for commit only after it and every batch
	// polled before it are stored). Default 2: one batch's fsync overlaps
	// the next one's work.
	AppendDepth int
	// CommitInterval is how often the offsets of stored batches are
	// committed (and before a rebalance and at exit). A crash re-consumes
	// at most this much, idempotently. Default 1s.
	CommitInterval time.Duration
	// MarkInterval is how often watermarks are recomputed and partition
	// offsets listed (for idle partitions and the lag metric). Default 1s.
	MarkInterval time.Duration
	// ProducerTimeout: a producer of progress reports not heard from for
	// this long no longer holds its source's watermark back. Default 30s.
	ProducerTimeout time.Duration
	// OnLate, if set, is called with the late events of each stored batch
	// (events at or behind their source's watermark, see LateSource) after
	// their Append returned, e.g. to start the late-data impact of the jobs
	// that read them. It runs on the store's path: it must not block for
	// long. It hears of each late event once, at most: not again when a
	// batch is consumed again after a crash (its events are stored
	// already), so a crash between the Append and OnLate loses the call.
	// Their notes are stored whether it is set or not, before the events:
	// `tidemark parity impact --noted` finds what OnLate did not hear.
	OnLate func(ctx context.Context, late []Late)
	// Metrics, if not nil, are updated.
	Metrics *Metrics
	// Logger logs. Default slog.Default().
	Logger *slog.Logger
	// KafkaOptions are added to the consumer's kgo options (tests, TLS…).
	KafkaOptions []kgo.Opt
}

func (c *Config) setDefaults() {
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.DeadLetterTopic == "" {
		c.DeadLetterTopic = "tidemark.deadletter"
	}
	if c.ProgressTopic == "" {
		c.ProgressTopic = source.DefaultProgressTopic
	}
	if c.MaxPollRecords == 0 {
		c.MaxPollRecords = 2000
	}
	if c.MarkInterval == 0 {
		c.MarkInterval = time.Second
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = time.Second
	}
	if c.AppendDepth == 0 {
		c.AppendDepth = 2
	}
	if c.ProducerTimeout == 0 {
		c.ProducerTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports a Config that cannot run.
func (c *Config) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("ingest: Config.Brokers is required")
	case c.Sources == nil || len(c.Sources.Sources) == 0:
		return errors.New("ingest: Config.Sources is required")
	case c.Store == nil:
		return errors.New("ingest: Config.Store is required")
	case c.MaxPollRecords < 0 || c.MarkInterval < 0 || c.ProducerTimeout < 0 || c.CommitInterval < 0 || c.AppendDepth < 0:
		return errors.New("ingest: negative MaxPollRecords, MarkInterval, CommitInterval or ProducerTimeout")
	}
	if err := source.ValidateTopic(c.DeadLetterTopic); err != nil {
		return fmt.Errorf("ingest: Config.DeadLetterTopic: %w", err)
	}
	if err := source.ValidateTopic(c.ProgressTopic); err != nil {
		return fmt.Errorf("ingest: Config.ProgressTopic: %w", err)
	}
	return nil
}

// Ingester consumes the registry's topics into the event center.
type Ingester struct {
	cfg    Config
	routes map[string]route
	log    *slog.Logger

	blocked    atomic.Bool                        // a rebalance waits for us
	pollCancel atomic.Pointer[context.CancelFunc] // cuts the current poll short

	storedNote   chan struct{} // a batch was stored: advance watermarks
	assignedNote chan struct{} // partitions were assigned: list and register them

	mu       sync.Mutex // guards marks and the store's watermarks
	marks    *tracker
	declared sync.Map // concrete source name → struct{}: indexes declared
}

// New checks cfg and returns an Ingester; Run starts it.
func New(cfg Config) (*Ingester, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r, err := routes(cfg.Sources)
	if err != nil {
		return nil, err
	}
	return &Ingester{cfg: cfg, routes: r, log: cfg.Logger, marks: newTracker(cfg.Sources, cfg.ProducerTimeout),
		storedNote: make(chan struct{}, 1), assignedNote: make(chan struct{}, 1)}, nil
}

// Run consumes until ctx ends (then it returns nil) or a fatal error. Each
// polled batch is decoded, its bad records produced to the dead-letter
// topic, its events appended, watermarks advanced, and only then its
// offsets committed; a crash at any point re-consumes from the last commit,
// which the store's idempotent Append absorbs.
func (in *Ingester) Run(ctx context.Context) error {
	topics := in.cfg.Sources.Topics()
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(in.cfg.Brokers...),
		kgo.ConsumerGroup(in.cfg.Group),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Offsets are marked once their batch is stored; the client
		// commits the marks every CommitInterval, before a partition is
		// revoked, and at Close.
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(in.cfg.CommitInterval),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxBytes(64 << 20),
		kgo.FetchMaxPartitionBytes(16 << 20),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			in.mu.Lock()
			defer in.mu.Unlock()
			for t, ps := range m {
				in.marks.assigned(t, ps)
			}
			select {
			case in.assignedNote <- struct{}{}:
			default:
			}
		}),
		kgo.OnPartitionsRevoked(in.revoked),
		kgo.OnPartitionsCallbackBlocked(func(context.Context, *kgo.Client) {
			in.blocked.Store(true)
			if c := in.pollCancel.Load(); c != nil {
				(*c)()
			}
		}),
		kgo.OnPartitionsLost(in.revoked),
	}, in.cfg.KafkaOptions...)
	if in.cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(in.cfg.InstanceID))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	defer cl.Close()
	if err := source.EnsureTopics(ctx, cl, 1, in.cfg.DeadLetterTopic, in.cfg.ProgressTopic); err != nil {
		in.log.Warn("ingest: cannot create the dead-letter and progress topics", "err", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); in.progressLoop(ctx) }()
	go func() { defer wg.Done(); in.markLoop(ctx, cl, topics) }()
	defer wg.Wait()
	defer cancel()

	// Two stages: while one batch is stored (append, dead letters,
	// watermarks, commit), the next is polled and decoded. Rebalances wait
	// (BlockRebalanceOnPoll) until no polled batch is unstored: when one
	// wants to run, the poll is cut short, the batch in flight finished,
	// and only then is the rebalance allowed.
	// Appends run up to AppendDepth at once; a marker goroutine takes them
	// in polled order and marks each batch's offsets once it and every
	// earlier one are stored.
	type flight struct {
		b    *batch
		done chan error
	}
	flights := make(chan flight, max(in.cfg.AppendDepth-1, 0))
	var unmarked sync.WaitGroup
	errc := make(chan error, 1)
	var markerDone sync.WaitGroup
	markerDone.Add(1)
	go func() {
		defer markerDone.Done()
		failed := false
		for f := range flights {
			if err := <-f.done; err != nil && !failed {
				failed = true
				errc <- err
			} else if !failed {
				in.markStored(cl, f.b)
			}
			unmarked.Done()
		}
	}()
	defer func() {
		unmarked.Wait()
		close(flights)
		markerDone.Wait()
	}()
	fail := func(err error) error {
		unmarked.Wait()
		cl.AllowRebalance()
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	for {
		select {
		case err := <-errc:
			return fail(err)
		default:
		}
		pctx, pcancel := context.WithCancel(ctx)
		in.pollCancel.Store(&pcancel)
		if in.blocked.Load() {
			pcancel()
		}
		fetches := cl.PollRecords(pctx, in.cfg.MaxPollRecords)
		pcancel()
		if ctx.Err() != nil {
			return fail(nil)
		}
		var fatal error
		fetches.EachError(func(t string, p int32, err error) {
			switch {
			case errors.Is(err, context.Canceled):
			case errors.Is(err, kgo.ErrClientClosed):
				fatal = err
			default:
				in.log.Warn("ingest: fetch error", "topic", t, "partition", p, "err", err)
			}
		})
		if fatal != nil {
			return fail(fmt.Errorf("ingest: %w", fatal))
		}
		if recs := fetches.Records(); len(recs) > 0 {
			f := flight{in.prepare(recs), make(chan error, 1)}
			unmarked.Add(1)
			flights <- f // waits while AppendDepth batches are in flight
			go func() { f.done <- in.appendBatch(ctx, cl, f.b) }()
		}
		if in.blocked.Load() {
			// A rebalance waits: everything polled must be stored and
			// marked before it may run.
			unmarked.Wait()
			in.blocked.Store(false)
			cl.AllowRebalance()
		}
	}
}

func (in *Ingester) revoked(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for t, ps := range m {
		in.marks.revoked(t, ps)
	}
}

type deadLetter struct {
	rec *kgo.Record
	f   *failure
}

// batch is one polled batch, decoded.
type batch struct {
	recs   []*kgo.Record
	events []eventcenter.Event
	dead   []deadLetter
}

// prepare decodes a polled batch.
func (in *Ingester) prepare(recs []*kgo.Record) *batch {
	events := make([]eventcenter.Event, len(recs))
	fails := make([]*failure, len(recs))
	in.convert(recs, events, fails)
	b := &batch{recs: recs}
	keep := events[:0]
	for i, rec := range recs {
		if fails[i] != nil {
			b.dead = append(b.dead, deadLetter{rec, fails[i]})
			continue
		}
		keep = append(keep, events[i])
	}
	b.events = keep
	return b
}

// appendBatch appends a prepared batch and produces its dead letters.
func (in *Ingester) appendBatch(ctx context.Context, cl *kgo.Client, b *batch) error {
	m := in.cfg.Metrics
	recs, events, dead := b.recs, b.events, b.dead
	if err := in.declareIndexes(ctx, events); err != nil {
		return err
	}
	lateAt, err := in.appendNotes(ctx, events, in.findLate(ctx, events))
	if err != nil {
		return err
	}
	for {
		start := time.Now()
		err := in.cfg.Store.Append(ctx, events)
		if err == nil {
			if m != nil {
				m.AppendSeconds.Observe(time.Since(start).Seconds())
			}
			break
		}
		var ie *eventcenter.InvalidEventError
		if errors.As(err, &ie) && ie.Index >= 0 && ie.Index < len(events) {
			// Decoding validated every event, so this is a store rule the
			// wire does not know; the event cannot ever be stored.
			dead = append(dead, deadLetter{in.recordOf(recs, &events[ie.Index]), &failure{ReasonRejected, err.Error()}})
			events = append(events[:ie.Index], events[ie.Index+1:]...)
			continue
		}
		if errors.Is(err, eventcenter.ErrClosed) || ctx.Err() != nil {
			return fmt.Errorf("ingest: append: %w", err)
		}
		in.log.Warn("ingest: append failed, retrying", "events", len(events), "err", err)
		if !sleep(ctx, time.Second) {
			return ctx.Err()
		}
	}
	_, late := lateNotes(events, lateAt) // of the events stored
	if len(late) > 0 && in.cfg.OnLate != nil {
		in.cfg.OnLate(ctx, late)
	}
	// Dead letters after the append: a crash in between re-consumes and
	// produces them again (the dead-letter topic is at least once).
	return in.deadLetters(ctx, cl, dead)
}

// appendNotes stores the notes of a batch's late events (lateNotes) in an
// Append of their own, before the events: a store that writes a batch in
// parts (see eventcenter.Appender) may then be left by a crash with a note
// whose event is not stored yet (the batch, consumed again, stores it), but
// never with a late event without its note (consumed again, a stored event
// is not noted). It returns late, or nil if the store refuses a note: the
// batch is then stored without notes.
func (in *Ingester) appendNotes(ctx context.Context, events []eventcenter.Event, late map[lateKey]time.Time) (map[lateKey]time.Time, error) {
	notes, _ := lateNotes(events, late)
	for len(notes) > 0 {
		err := in.cfg.Store.Append(ctx, notes)
		if err == nil {
			break
		}
		var ie *eventcenter.InvalidEventError
		if errors.As(err, &ie) {
			in.log.Warn("ingest: the store refuses a late event's note, storing the batch without notes", "err", err)
			return nil, nil
		}
		if errors.Is(err, eventcenter.ErrClosed) || ctx.Err() != nil {
			return nil, fmt.Errorf("ingest: append late notes: %w", err)
		}
		in.log.Warn("ingest: append of late notes failed, retrying", "notes", len(notes), "err", err)
		if !sleep(ctx, time.Second) {
			return nil, ctx.Err()
		}
	}
	return late, nil
}

// markStored records a stored batch: its offsets are marked for commit,
// its partitions' stored offsets and newest times noted for watermarks.
func (in *Ingester) markStored(cl *kgo.Client, b *batch) {
	m := in.cfg.Metrics
	recs, events := b.recs, b.events

	// What is stored, per partition: the offset after the batch's last
	// record, and for kafka sources the newest event time per source.
	type partStored struct {
		next   int64
		newest map[string]time.Time
	}
	stored := map[tp]*partStored{}
	for _, rec := range recs {
		k := tp{rec.Topic, rec.Partition}
		ps := stored[k]
		if ps == nil {
			ps = &partStored{}
			stored[k] = ps
		}
		ps.next = max(ps.next, rec.Offset+1)
		if m != nil {
			m.Records.WithLabelValues(rec.Topic).Inc()
		}
	}
	for i := range events {
		e := &events[i]
		if m != nil {
			m.Stored.WithLabelValues(e.Source).Inc()
		}
	}
	for _, rec := range recs {
		if r := in.routes[rec.Topic]; r.foreign != nil {
			ps := stored[tp{rec.Topic, rec.Partition}]
			if ps.newest == nil {
				ps.newest = map[string]time.Time{}
			}
			if rec.Timestamp.After(ps.newest[r.foreign.Name]) {
				ps.newest[r.foreign.Name] = rec.Timestamp
			}
		}
	}
	cl.MarkCommitRecords(recs...)
	in.mu.Lock()
	for k, ps := range stored {
		in.marks.stored(k.topic, k.part, ps.next, ps.newest)
	}
	in.mu.Unlock()
	select { // the mark loop advances watermarks off the store's path
	case in.storedNote <- struct{}{}:
	default:
	}
	if m != nil {
		m.BatchRecords.Observe(float64(len(recs)))
	}
}

// convert decodes the records, in parallel for big batches.
func (in *Ingester) convert(recs []*kgo.Record, events []eventcenter.Event, fails []*failure) {
	work := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			fails[i] = in.routes[recs[i].Topic].convert(recs[i], &events[i])
		}
	}
	n := runtime.GOMAXPROCS(0)
	if len(recs) < 512 || n == 1 {
		work(0, len(recs))
		return
	}
	var wg sync.WaitGroup
	chunk := (len(recs) + n - 1) / n
	for lo := 0; lo < len(recs); lo += chunk {
		hi := min(lo+chunk, len(recs))
		wg.Add(1)
		go func() { defer wg.Done(); work(lo, hi) }()
	}
	wg.Wait()
}

// recordOf finds the record an event came from (for dead-lettering an event
// the store rejected).
func (in *Ingester) recordOf(recs []*kgo.Record, e *eventcenter.Event) *kgo.Record {
	for _, r := range recs {
		if string(r.Key) == e.Key {
			var ev eventcenter.Event
			if in.routes[r.Topic].convert(r, &ev) == nil && ev.ID() == e.ID() {
				return r
			}
		}
	}
	return &kgo.Record{Key: []byte(e.Key)}
}

func (in *Ingester) declareIndexes(ctx context.Context, events []eventcenter.Event) error {
	var last string
	for i := range events {
		name := events[i].Source
		if name == last {
			continue
		}
		last = name
		if _, ok := in.declared.Load(name); ok {
			continue
		}
		s, err := in.cfg.Sources.Lookup(name)
		if err != nil {
			continue // convert checked it; cannot happen
		}
		for _, ix := range s.EventIndexes(name) {
			if err := in.cfg.Store.DeclareIndex(ctx, ix); err != nil {
				return fmt.Errorf("ingest: declare index %s of %s: %w", ix.Name, name, err)
			}
		}
		in.declared.Store(name, struct{}{})
	}
	return nil
}

// deadLetters produces the bad records to the dead-letter topic and waits
// for Kafka's acknowledgement, retrying until it succeeds or ctx ends.
func (in *Ingester) deadLetters(ctx context.Context, cl *kgo.Client, dead []deadLetter) error {
	if len(dead) == 0 {
		return nil
	}
	out := make([]*kgo.Record, 0, len(dead))
	for _, d := range dead {
		r := d.rec
		in.log.Warn("ingest: dead letter", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "reason", d.f.String())
		hs := append([]kgo.RecordHeader(nil), r.Headers...)
		hs = append(hs,
			kgo.RecordHeader{Key: HeaderReason, Value: []byte(d.f.String())},
			kgo.RecordHeader{Key: HeaderTopic, Value: []byte(r.Topic)},
			kgo.RecordHeader{Key: HeaderPartition, Value: []byte(strconv.Itoa(int(r.Partition)))},
			kgo.RecordHeader{Key: HeaderOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
			kgo.RecordHeader{Key: HeaderTimestamp, Value: []byte(r.Timestamp.UTC().Format(time.RFC3339Nano))},
		)
		out = append(out, &kgo.Record{Topic: in.cfg.DeadLetterTopic, Key: r.Key, Value: r.Value, Headers: hs})
		if m := in.cfg.Metrics; m != nil {
			m.DeadLetters.WithLabelValues(r.Topic, d.f.reason).Inc()
		}
	}
	for {
		err := cl.ProduceSync(ctx, out...).FirstErr()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		in.log.Warn("ingest: dead-letter produce failed, retrying", "err", err)
		if !sleep(ctx, time.Second) {
			return ctx.Err()
		}
	}
}

// progressLoop reads producers' progress reports, from the newest on.
func (in *Ingester) progressLoop(ctx context.Context) {
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(in.cfg.Brokers...),
		kgo.ConsumeTopics(in.cfg.ProgressTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
	}, in.cfg.KafkaOptions...)...)
	if err != nil {
		in.log.Error("ingest: progress consumer", "err", err)
		return
	}
	defer cl.Close()
	for ctx.Err() == nil {
		fetches := cl.PollFetches(ctx)
		fetches.EachRecord(func(r *kgo.Record) {
			p, err := source.DecodeProgress(r.Value)
			if err != nil {
				in.log.Warn("ingest: bad progress report", "offset", r.Offset, "err", err)
				return
			}
			in.mu.Lock()
			in.marks.progress(p, time.Now())
			in.mu.Unlock()
		})
	}
}

// markLoop lists every topic's partitions and offsets, registers the
// partitions and advances watermarks: at once when it starts and when
// partitions are assigned, then every MarkInterval (so idle partitions move
// without new records), and advances again whenever a batch is stored.
func (in *Ingester) markLoop(ctx context.Context, cl *kgo.Client, topics []string) {
	tick := time.NewTicker(in.cfg.MarkInterval)
	defer tick.Stop()
	for {
		in.listOffsets(ctx, cl, topics)
		in.advanceMarks(ctx)
		if !in.nextListing(ctx, tick.C) {
			return
		}
	}
}

// nextListing waits for the time of the next listing (a tick, or an
// assignment), advancing watermarks whenever a batch is stored meanwhile.
// It returns false when ctx ends.
func (in *Ingester) nextListing(ctx context.Context, tick <-chan time.Time) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-in.storedNote:
			in.advanceMarks(ctx)
		case <-in.assignedNote:
			return true
		case <-tick:
			return true
		}
	}
}

// listOffsets lists the partitions, log start and high watermark of each
// topic (a topic that cannot be listed does not hold back the others).
func (in *Ingester) listOffsets(ctx context.Context, cl *kgo.Client, topics []string) {
	sent := time.Now()
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	type listing struct{ starts, ends map[int32]int64 }
	listed := map[string]listing{}
	for _, topic := range topics {
		starts, err1 := source.StartOffsets(lctx, cl, topic)
		ends, err2 := source.EndOffsets(lctx, cl, topic)
		if err := errors.Join(err1, err2); err != nil {
			if ctx.Err() == nil {
				in.log.Warn("ingest: list offsets", "topic", topic, "err", err)
			}
			continue
		}
		listed[topic] = listing{starts[topic], ends[topic]}
	}
	committed := map[string]map[int32]int64{}
	for t, ps := range cl.CommittedOffsets() {
		committed[t] = map[int32]int64{}
		for p, eo := range ps {
			committed[t][p] = eo.Offset
		}
	}
	in.mu.Lock()
	in.marks.committed(committed)
	for t, l := range listed {
		in.marks.partitions(t, slices.Sorted(maps.Keys(l.ends)))
		for p, hwm := range l.ends {
			in.marks.listed(t, p, l.starts[p], hwm, sent)
		}
	}
	lag := in.marks.lag()
	in.mu.Unlock()
	if m := in.cfg.Metrics; m != nil {
		m.Lag.Reset()
		for k, n := range lag {
			m.Lag.WithLabelValues(k.topic, strconv.Itoa(int(k.part))).Set(float64(n))
		}
	}
}

// advanceMarks writes the watermark advances the rules allow now.
func (in *Ingester) advanceMarks(ctx context.Context) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, src := range in.marks.sources() {
		// Every partition of the source's topic is registered before
		// any advances: the store's source watermark, the minimum over
		// the registered partitions, then waits for the partitions no
		// one has stored yet (owned by another instance, or by none).
		parts, known := in.marks.unregistered(src)
		if !known {
			continue
		}
		if len(parts) > 0 {
			if err := in.cfg.Store.RegisterPartitions(ctx, src, parts); err != nil {
				in.marks.forget(src)
				if ctx.Err() == nil {
					in.log.Warn("ingest: register partitions", "source", src, "partitions", parts, "err", err)
				}
				continue
			}
			in.marks.register(src, parts)
		}
		if in.marks.hasCurrent(src) {
			continue
		}
		cur, err := in.cfg.Store.PartitionWatermarks(ctx, src)
		if err != nil {
			in.log.Warn("ingest: read watermarks", "source", src, "err", err)
			continue
		}
		in.marks.setCurrent(src, cur)
	}
	now := time.Now()
	touched := map[string]bool{}
	for _, a := range in.marks.evaluate(now) {
		err := in.cfg.Store.AdvanceWatermark(ctx, a.source, a.part, a.t)
		if errors.Is(err, eventcenter.ErrWatermarkRegression) {
			// Another writer moved it further: reload.
			if cur, err := in.cfg.Store.PartitionWatermarks(ctx, a.source); err == nil {
				in.marks.setCurrent(a.source, cur)
			}
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				in.log.Warn("ingest: advance watermark", "source", a.source, "partition", a.part, "err", err)
			}
			continue
		}
		in.marks.applied(a)
		touched[a.source] = true
		if m := in.cfg.Metrics; m != nil {
			m.Watermark.WithLabelValues(a.source, strconv.Itoa(int(a.part))).Set(float64(a.t.UnixNano()) / 1e9)
		}
	}
	if m := in.cfg.Metrics; m != nil {
		for src := range in.marks.cur {
			if wm, err := in.cfg.Store.Watermark(ctx, src); err == nil && !wm.IsZero() {
				m.WatermarkDelay.WithLabelValues(src).Set(now.Sub(wm).Seconds())
			}
		}
	}
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
