package source

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/wire"
)

// Why a record is not an event (wire.ErrMalformed covers undecodable values).
var (
	// ErrKeyMismatch: a wire record's Kafka key is not its event's key.
	ErrKeyMismatch = errors.New("source: record key is not the event key")
	// ErrUnregistered: the event's source is not registered for the topic.
	ErrUnregistered = errors.New("source: not registered for the topic")
)

// FromRecord turns a record of a registered topic into the event it carries:
// the one rule shared by ingest (which stores it) and the live worker (which
// stores the same event before running a job on it), so both give it the same
// identity. sources are the topic's registered sources (Config.ByTopic).
//
//   - A kafka source in json or raw format (the topic's only source) makes a
//     message event: time is the record's timestamp, key the record key (or
//     "partition:offset" when empty), After the JSON row or {"value": bytes}.
//   - Otherwise the value is a wire event; its source must be one of sources
//     and its key the record key. Sources of kind http and kafka take the
//     record's Kafka partition and offset as their position; the others keep
//     the position their producer set (the binlog's, for mysql).
func FromRecord(rec *kgo.Record, sources []*Source) (eventcenter.Event, error) {
	for _, s := range sources {
		if s.Kind == KindKafka && s.Kafka != nil && s.Kafka.Format != "wire" {
			return foreignEvent(s, rec)
		}
	}
	codec := ""
	for _, h := range rec.Headers {
		if h.Key == wire.HeaderCodec {
			codec = string(h.Value)
		}
	}
	e, err := wire.Decode(codec, rec.Value)
	if err != nil {
		return e, err
	}
	var src *Source
	for _, s := range sources {
		if s.Matches(e.Source) {
			src = s
			break
		}
	}
	if src == nil {
		return e, fmt.Errorf("%w: source %q, topic %s", ErrUnregistered, e.Source, rec.Topic)
	}
	if string(rec.Key) != e.Key {
		return e, fmt.Errorf("%w: record key %q, event key %q", ErrKeyMismatch, truncate(rec.Key), truncate([]byte(e.Key)))
	}
	if src.Kind == KindHTTP || src.Kind == KindKafka {
		e.Pos = eventcenter.Position{Log: uint64(rec.Partition), Offset: uint64(rec.Offset)}
	}
	return e, nil
}

func foreignEvent(s *Source, rec *kgo.Record) (eventcenter.Event, error) {
	e := eventcenter.Event{
		Source: s.Name,
		Key:    string(rec.Key),
		Time:   rec.Timestamp,
		Pos:    eventcenter.Position{Log: uint64(rec.Partition), Offset: uint64(rec.Offset)},
		Op:     eventcenter.OpMessage,
	}
	if e.Key == "" {
		e.Key = strconv.Itoa(int(rec.Partition)) + ":" + strconv.FormatInt(rec.Offset, 10)
	}
	if s.Kafka.Format == "raw" {
		e.After = eventcenter.Row{"value": rec.Value}
	} else {
		row, err := RowFromJSON(rec.Value)
		if err != nil {
			return e, fmt.Errorf("%w: %v", wire.ErrMalformed, err)
		}
		e.After = row
	}
	if err := e.Validate(); err != nil {
		return e, fmt.Errorf("%w: %v", wire.ErrMalformed, err)
	}
	return e, nil
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}
