// Package notify carries "job J is at parameter version N" from the
// approval workflow to the running live workers over a Kafka control topic,
// so that a worker switches to an approved version within a second without
// re-reading the registry at every run. Notifications are hints: a worker
// that misses one (it was restarting, the topic was down) learns the
// version by polling the registry (params.Cache's MaxAge).
package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/params"
	"github.com/tidemark-dev/tidemark/source"
)

// DefaultTopic is the control topic.
const DefaultTopic = "tidemark.params.control"

// Message announces a job's new version. It is the record's JSON value;
// the record's key is the job.
type Message struct {
	Job     string         `json:"job"`
	Version params.Version `json:"version"`
	// Change is the id of the change that made the version, if known.
	Change string `json:"change,omitempty"`
}

// Publisher produces Messages to a control topic. Safe for concurrent use.
type Publisher struct {
	cl    *kgo.Client
	topic string

	mu      sync.Mutex
	ensured bool // the topic exists
}

// NewPublisher returns a publisher on cl's brokers; its first Publish
// creates topic (one partition) if it is missing. cl stays the caller's to
// close.
func NewPublisher(cl *kgo.Client, topic string) *Publisher {
	return &Publisher{cl: cl, topic: topic}
}

// Publish produces m and returns once the broker has it.
func (p *Publisher) Publish(ctx context.Context, m Message) error {
	if err := p.ensure(ctx); err != nil {
		return err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := p.cl.ProduceSync(ctx, &kgo.Record{Topic: p.topic, Key: []byte(m.Job), Value: b}).FirstErr(); err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	return nil
}

func (p *Publisher) ensure(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ensured {
		return nil
	}
	if err := source.EnsureTopics(ctx, p.cl, 1, p.topic); err != nil {
		return fmt.Errorf("notify: control topic: %w", err)
	}
	p.ensured = true
	return nil
}

// Notify publishes that job is at version v (the signature of
// workers.Deps.NotifyParams).
func (p *Publisher) Notify(ctx context.Context, job string, v params.Version) error {
	return p.Publish(ctx, Message{Job: job, Version: v})
}

// Listen consumes topic on brokers and calls f with each Message produced
// from shortly before the call on (no consumer group: every listener sees
// every message), until ctx ends; then it returns nil. It creates the
// topic if missing. opts are added to the client's (TLS, SASL).
// Malformed records are skipped.
func Listen(ctx context.Context, brokers []string, topic string, opts []kgo.Opt, f func(Message)) error {
	// From a second back by timestamp, not "the end": a message produced
	// while the client resolves the end offset would be missed.
	start := time.Now().Add(-time.Second).UnixMilli()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AfterMilli(start)),
		kgo.FetchMaxWait(500 * time.Millisecond),
	}, opts...)...)
	if err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	defer cl.Close()
	if err := source.EnsureTopics(ctx, cl, 1, topic); err != nil {
		return fmt.Errorf("notify: control topic: %w", err)
	}
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		for _, r := range fs.Records() {
			var m Message
			if json.Unmarshal(r.Value, &m) == nil && m.Job != "" {
				f(m)
			}
		}
	}
}
