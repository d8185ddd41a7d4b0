package ingest

import (
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/source"
	"github.com/tidemark-dev/tidemark/wire"
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

// convert turns one record into an event, or says why it cannot.
func (r route) convert(rec *kgo.Record, e *eventcenter.Event) *failure {
	if s := r.foreign; s != nil {
		return foreignEvent(s, rec, e)
	}
	if r.sources == nil {
		return &failure{ReasonUnknownTopic, fmt.Sprintf("no registered source uses topic %s", rec.Topic)}
	}
	codec := ""
	for _, h := range rec.Headers {
		if h.Key == wire.HeaderCodec {
			codec = string(h.Value)
		}
	}
	ev, err := wire.Decode(codec, rec.Value)
	if err != nil {
		return &failure{ReasonMalformed, err.Error()}
	}
	var src *source.Source
	for _, s := range r.sources {
		if s.Matches(ev.Source) {
			src = s
			break
		}
	}
	if src == nil {
		return &failure{ReasonUnknownSource, fmt.Sprintf("source %q is not registered for topic %s", ev.Source, rec.Topic)}
	}
	if string(rec.Key) != ev.Key {
		return &failure{ReasonKeyMismatch, fmt.Sprintf("record key %q, event key %q", truncate(rec.Key), truncate([]byte(ev.Key)))}
	}
	if src.Kind == source.KindHTTP || src.Kind == source.KindKafka {
		ev.Pos = eventcenter.Position{Log: uint64(rec.Partition), Offset: uint64(rec.Offset)}
	}
	*e = ev
	return nil
}

func foreignEvent(s *source.Source, rec *kgo.Record, e *eventcenter.Event) *failure {
	*e = eventcenter.Event{
		Source: s.Name,
		Key:    string(rec.Key),
		Time:   rec.Timestamp,
		Pos:    eventcenter.Position{Log: uint64(rec.Partition), Offset: uint64(rec.Offset)},
		Op:     eventcenter.OpMessage,
	}
	if e.Key == "" {
		e.Key = strconv.Itoa(int(rec.Partition)) + ":" + strconv.FormatInt(rec.Offset, 10)
	}
	switch s.Kafka.Format {
	case "raw":
		e.After = eventcenter.Row{"value": rec.Value}
	default:
		row, err := source.RowFromJSON(rec.Value)
		if err != nil {
			return &failure{ReasonMalformed, err.Error()}
		}
		e.After = row
	}
	if err := e.Validate(); err != nil {
		return &failure{ReasonMalformed, err.Error()}
	}
	return nil
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}
