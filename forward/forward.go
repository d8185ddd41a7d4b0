package forward

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/source"
	"github.com/tidemark-dev/tidemark/wire"
)

// Config configures a Forwarder. Sources and Client are required.
type Config struct {
	// Sources is the registry; its http and rabbitmq sources are forwarded.
	Sources *source.Config
	// Client produces the records (acks from all replicas, idempotent: the
	// franz-go defaults). The caller owns it.
	Client *kgo.Client
	// Codec encodes the events. Default wire.JSON.
	Codec wire.Codec
	// ProducerID names this forwarder in progress reports; unique per
	// process. Default "forward-<host>-<pid>-<random>".
	ProducerID string
	// ProgressTopic receives the progress reports; the deployment's ingest
	// must read the same one. Default source.DefaultProgressTopic.
	ProgressTopic string
	// ProgressInterval: how often progress is reported. Default 1s.
	ProgressInterval time.Duration
	// Lateness: how far behind the clock a RabbitMQ publisher's timestamp
	// may be when its message reaches an empty queue. Default 2s.
	Lateness time.Duration
	// ProduceTimeout bounds the wait for Kafka of one HTTP request. Default 10s.
	ProduceTimeout time.Duration
	// Metrics, if not nil, are updated.
	Metrics *Metrics
	// Logger logs. Default slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Codec == nil {
		c.Codec = wire.JSON
	}
	if c.ProducerID == "" {
		host, _ := os.Hostname()
		c.ProducerID = fmt.Sprintf("forward-%s-%d-%s", host, os.Getpid(), randomHex(4))
	}
	if c.ProgressTopic == "" {
		c.ProgressTopic = source.DefaultProgressTopic
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = time.Second
	}
	if c.Lateness == 0 {
		c.Lateness = 2 * time.Second
	}
	if c.ProduceTimeout == 0 {
		c.ProduceTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports a Config that cannot run.
func (c *Config) Validate() error {
	switch {
	case c.Sources == nil:
		return errors.New("forward: Config.Sources is required")
	case c.Client == nil:
		return errors.New("forward: Config.Client is required")
	case c.ProgressInterval < 0 || c.Lateness < 0 || c.ProduceTimeout < 0:
		return errors.New("forward: negative ProgressInterval, Lateness or ProduceTimeout")
	}
	if err := source.ValidateTopic(c.ProgressTopic); err != nil {
		return fmt.Errorf("forward: Config.ProgressTopic: %w", err)
	}
	return nil
}

// Forwarder forwards HTTP calls and RabbitMQ messages into Kafka.
type Forwarder struct {
	cfg Config
	log *slog.Logger
	rep *source.Reporter

	mu     sync.Mutex
	flight map[string]map[int64]int // source → event time (ns) → events in flight
	queues map[string]*queueState   // rabbitmq source → its consumer's state
}

// New checks cfg and returns a Forwarder.
func New(cfg Config) (*Forwarder, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Forwarder{cfg: cfg, log: cfg.Logger, rep: source.NewReporter(cfg.Client, cfg.ProducerID, cfg.ProgressTopic),
		flight: map[string]map[int64]int{}, queues: map[string]*queueState{}}, nil
}

// stamp gives an event its time (now, or at, for a RabbitMQ timestamp) and
// counts it in flight until done is called with the produce result.
func (f *Forwarder) stamp(src string, at time.Time) (time.Time, func(rec *kgo.Record, err error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := at
	if t.IsZero() {
		t = time.Now().UTC()
	}
	m := f.flight[src]
	if m == nil {
		m = map[int64]int{}
		f.flight[src] = m
	}
	ns := t.UnixNano()
	m[ns]++
	return t, func(rec *kgo.Record, err error) {
		if err == nil {
			f.rep.Acked(rec)
		}
		f.mu.Lock()
		if m[ns]--; m[ns] == 0 {
			delete(m, ns)
		}
		f.mu.Unlock()
	}
}

// record encodes e as the record of its source's topic.
func (f *Forwarder) record(s *source.Source, e *eventcenter.Event) (*kgo.Record, error) {
	v, err := f.cfg.Codec.Append(nil, e)
	if err != nil {
		return nil, err
	}
	return &kgo.Record{Topic: s.Topic, Key: []byte(e.Key), Value: v,
		Headers: []kgo.RecordHeader{{Key: wire.HeaderCodec, Value: []byte(f.cfg.Codec.Name())}}}, nil
}

// Run reports the forwarded sources' progress every ProgressInterval until
// ctx ends. For an http source the claim is "every call with a time before
// the oldest call still waiting for Kafka (or before now) is in Kafka"; for
// a rabbitmq source the same, made only while its queue is empty (when it
// is not, older messages may wait in it), less Lateness.
func (f *Forwarder) Run(ctx context.Context) error {
	tick := time.NewTicker(f.cfg.ProgressInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		for _, kind := range []source.Kind{source.KindHTTP, source.KindRabbitMQ} {
			for _, s := range f.cfg.Sources.ByKind(kind) {
				claim, ok := f.claim(ctx, s)
				if !ok {
					continue
				}
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := f.rep.Report(rctx, s.Name, s.Topic, claim)
				cancel()
				if err != nil && ctx.Err() == nil {
					f.log.Warn("forward: progress report", "source", s.Name, "err", err)
				}
			}
		}
	}
}

func (f *Forwarder) claim(ctx context.Context, s *source.Source) (time.Time, bool) {
	if s.Kind == source.KindRabbitMQ {
		f.mu.Lock()
		q := f.queues[s.Name]
		f.mu.Unlock()
		if q == nil || !q.empty(ctx) {
			return time.Time{}, false
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	oldest := time.Now().UTC()
	for ns := range f.flight[s.Name] {
		if t := time.Unix(0, ns).UTC(); t.Before(oldest) {
			oldest = t
		}
	}
	claim := oldest.Add(-time.Nanosecond)
	if s.Kind == source.KindRabbitMQ {
		claim = oldest.Add(-f.cfg.Lateness)
	}
	return claim, true
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Metrics are the forwarders' Prometheus metrics.
//
//	tidemark_forward_messages_total{source,result}   result: ok, rejected (bad input), failed (Kafka)
//	tidemark_forward_produce_seconds{source}          wait for Kafka's acknowledgement
type Metrics struct {
	Messages       *prometheus.CounterVec
	ProduceSeconds *prometheus.HistogramVec
}

// NewMetrics creates the metrics and registers them with reg (if not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tidemark_forward_messages_total", Help: "Messages forwarded, by result (ok, rejected, failed).",
		}, []string{"source", "result"}),
		ProduceSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tidemark_forward_produce_seconds", Help: "Wait for Kafka's acknowledgement of one message.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"source"}),
	}
	if reg != nil {
		reg.MustRegister(m.Messages, m.ProduceSeconds)
	}
	return m
}

func (f *Forwarder) count(src, result string) {
	if m := f.cfg.Metrics; m != nil {
		m.Messages.WithLabelValues(src, result).Inc()
	}
}
