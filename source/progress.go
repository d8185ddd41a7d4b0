package source

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultProgressTopic is the default progress topic: the topic on which
// producers publish Progress reports and ingest reads them (one partition
// is enough: reports are small and few). The record key is the source name,
// the value the JSON of a Progress. Every producer and ingest process of a
// deployment must use the same progress topic; deployments sharing a Kafka
// cluster keep apart by naming different ones (the config key
// topics.progress of package app/config).
const DefaultProgressTopic = "tidemark.progress"

// Progress is a producer's claim about one source: every event of Source
// with event time <= Time that this producer will ever write has been
// written (and acknowledged) to Topic at offsets below Ends[partition].
//
// Ingest moves the watermark of (Source, partition) to Time once everything
// below Ends[partition] is stored. Producer tells reports of concurrent
// producers of one source apart (e.g. several HTTP forwarders): ingest waits
// for every producer heard from recently.
type Progress struct {
	Source   string          `json:"source"`
	Producer string          `json:"producer"`
	Topic    string          `json:"topic"`
	Time     time.Time       `json:"time"`
	Ends     map[int32]int64 `json:"ends"`
	Sent     time.Time       `json:"sent"` // when the report was made
}

// Record returns the Kafka record carrying p to the progress topic topic.
func (p *Progress) Record(topic string) *kgo.Record {
	b, _ := json.Marshal(p) // cannot fail: plain types
	return &kgo.Record{Topic: topic, Key: []byte(p.Source), Value: b}
}

// DecodeProgress reads a Progress record value.
func DecodeProgress(b []byte) (Progress, error) {
	var p Progress
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("source: progress report: %w", err)
	}
	if p.Source == "" || p.Topic == "" || p.Time.IsZero() {
		return p, fmt.Errorf("source: progress report: missing source, topic or time")
	}
	return p, nil
}

// Reporter tracks what a producer has written, to make its Progress
// reports. Call Acked from each produce promise that succeeded, then Report
// with a time the producer knows is complete. Safe for concurrent use.
type Reporter struct {
	cl       *kgo.Client
	producer string
	topic    string // the progress topic

	mu    sync.Mutex
	ends  map[string]map[int32]int64 // topic → partition → offset after the last acked record
	known map[string]bool            // topics whose end offsets were listed
}

// NewReporter returns a Reporter producing with cl under the producer id
// to the progress topic progressTopic ("": DefaultProgressTopic).
func NewReporter(cl *kgo.Client, producer, progressTopic string) *Reporter {
	if progressTopic == "" {
		progressTopic = DefaultProgressTopic
	}
	return &Reporter{cl: cl, producer: producer, topic: progressTopic, ends: map[string]map[int32]int64{}, known: map[string]bool{}}
}

// Acked records that r was written.
func (r *Reporter) Acked(rec *kgo.Record) {
	r.mu.Lock()
	m := r.ends[rec.Topic]
	if m == nil {
		m = map[int32]int64{}
		r.ends[rec.Topic] = m
	}
	if rec.Offset+1 > m[rec.Partition] {
		m[rec.Partition] = rec.Offset + 1
	}
	r.mu.Unlock()
}

// Report publishes (and waits for), on the reporter's progress topic, the
// claim that every event of source with time <= t that this producer
// writes is in topic below the offsets acknowledged so far. The first
// report of a topic lists the topic's end offsets, which covers what
// earlier runs of the producer wrote.
func (r *Reporter) Report(ctx context.Context, source, topic string, t time.Time) error {
	r.mu.Lock()
	known := r.known[topic]
	r.mu.Unlock()
	if !known {
		ends, err := EndOffsets(ctx, r.cl, topic)
		if err != nil {
			return err
		}
		r.mu.Lock()
		m := r.ends[topic]
		if m == nil {
			m = map[int32]int64{}
			r.ends[topic] = m
		}
		for p, o := range ends[topic] {
			if cur, ok := m[p]; !ok || o > cur {
				m[p] = o
			}
		}
		r.known[topic] = true
		r.mu.Unlock()
	}
	r.mu.Lock()
	p := Progress{Source: source, Producer: r.producer, Topic: topic, Time: t.UTC(), Ends: maps.Clone(r.ends[topic]), Sent: time.Now().UTC()}
	r.mu.Unlock()
	return r.cl.ProduceSync(ctx, p.Record(r.topic)).FirstErr()
}
