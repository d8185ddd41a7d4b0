package live

import (
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/source"
	"github.com/tidemark-dev/tidemark/wire"
)

// converter turns a trigger topic's records into events with the identity
// ingest gives them, so that the worker's Append of a trigger and ingest's
// Append of the same record store one event, and outputs keyed by the
// trigger's identity agree across the two (see package ingest, "Positions"):
//
//   - wire records keep their event's position, except for sources of kind
//     http and kafka, whose position is the record's Kafka partition and
//     offset;
//   - records of kafka sources in json or raw format become message events
//     (time: the record's timestamp; key: the record key, or
//     "partition:offset").
//
// Records whose key differs from their event's key are refused, as ingest
// dead-letters them.
//
// TODO(lead): this mirrors ingest's unexported conversion; both should call
// one exported function of package ingest.
type converter struct {
	src *source.Source // nil: no registry, wire records as they are
}

func (c converter) event(rec *kgo.Record) (eventcenter.Event, error) {
	if s := c.src; s != nil && s.Kind == source.KindKafka && s.Kafka != nil && s.Kafka.Format != "wire" {
		e := eventcenter.Event{
			Source: s.Name, Key: string(rec.Key), Time: rec.Timestamp,
			Pos: eventcenter.Position{Log: uint64(rec.Partition), Offset: uint64(rec.Offset)},
			Op:  eventcenter.OpMessage,
		}
		if e.Key == "" {
			e.Key = strconv.Itoa(int(rec.Partition)) + ":" + strconv.FormatInt(rec.Offset, 10)
		}
		if s.Kafka.Format == "raw" {
			e.After = eventcenter.Row{"value": rec.Value}
		} else {
			row, err := source.RowFromJSON(rec.Value)
			if err != nil {
				return e, err
			}
			e.After = row
		}
		return e, e.Validate()
	}
	e, err := wire.Decode(codecOf(rec), rec.Value)
	if err != nil {
		return e, err
	}
	if string(rec.Key) != e.Key {
		return e, fmt.Errorf("record key %q is not the event key %q", rec.Key, e.Key)
	}
	if s := c.src; s != nil && (s.Kind == source.KindHTTP || s.Kind == source.KindKafka) {
		e.Pos = eventcenter.Position{Log: uint64(rec.Partition), Offset: uint64(rec.Offset)}
	}
	return e, nil
}

func codecOf(r *kgo.Record) string {
	for _, h := range r.Headers {
		if h.Key == wire.HeaderCodec {
			return string(h.Value)
		}
	}
	return ""
}
