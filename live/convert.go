package live

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/source"
	"github.com/tidemark-dev/tidemark/wire"
)

// converter turns a trigger topic's records into events with the identity
// ingest gives them (source.FromRecord, the rule both share), so that the
// worker's Append of a trigger and ingest's Append of the same record store
// one event, and outputs keyed by the trigger's identity agree across the two.
type converter struct {
	topic []*source.Source // the trigger topic's sources; nil: no registry, wire records as they are
}

func (c converter) event(rec *kgo.Record) (eventcenter.Event, error) {
	if c.topic != nil {
		return source.FromRecord(rec, c.topic)
	}
	e, err := wire.Decode(codecOf(rec), rec.Value)
	if err != nil {
		return e, err
	}
	if string(rec.Key) != e.Key {
		return e, fmt.Errorf("%w: record key %q, event key %q", source.ErrKeyMismatch, rec.Key, e.Key)
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
