package ingest

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/source"
)

// Dead-letter reasons (the value of HeaderReason starts with one of them).
const (
	ReasonMalformed     = "malformed"      // the value does not decode into a valid event
	ReasonUnknownSource = "unknown-source" // the event's source is not registered for the topic
	ReasonKeyMismatch   = "key-mismatch"   // the record key is not the event's key
	ReasonUnknownTopic  = "unknown-topic"  // no registered source uses the topic
	ReasonRejected      = "rejected"       // the event center refused the event
)

// route says how to turn the records of one topic into events.
type route struct {
	foreign *source.Source   // a kafka source in json or raw format: the topic's only source
	sources []*source.Source // the sources whose wire events the topic may carry
}

func routes(reg *source.Config) (map[string]route, error) {
	out := map[string]route{}
	for _, topic := range reg.Topics() {
		var r route
		for _, s := range reg.ByTopic(topic) {
			if s.Kind == source.KindKafka && s.Kafka.Format != "wire" {
				r.foreign = s
			}
			r.sources = append(r.sources, s)
		}
		if r.foreign != nil && len(r.sources) > 1 {
			return nil, fmt.Errorf("ingest: topic %s: kafka source %s (format %s) must be the topic's only source", topic, r.foreign.Name, r.foreign.Kafka.Format)
		}
		out[topic] = r
	}
	return out, nil
}

// failure is why a record cannot be stored.
type failure struct {
	reason string // one of the Reason constants
	detail string
}

func (f *failure) String() string { return f.reason + ": " + f.detail }

// convert turns one record into an event (by source.FromRecord, the rule
// the live worker shares), or says why it cannot.
func (r route) convert(rec *kgo.Record, e *eventcenter.Event) *failure {
	if r.sources == nil {
		return &failure{ReasonUnknownTopic, fmt.Sprintf("no registered source uses topic %s", rec.Topic)}
	}
	ev, err := source.FromRecord(rec, r.sources)
	switch {
	case err == nil:
		*e = ev
		return nil
	case errors.Is(err, source.ErrKeyMismatch):
		return &failure{ReasonKeyMismatch, err.Error()}
	case errors.Is(err, source.ErrUnregistered):
		return &failure{ReasonUnknownSource, err.Error()}
	}
	return &failure{ReasonMalformed, err.Error()}
}
