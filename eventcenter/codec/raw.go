package codec

import (
	"context"
	"iter"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// ReplayRaw yields the events of one source of r as RawEvents: from r's
// own ReplayRaw if it has one (eventcenter.RawReplayer), else from Replay,
// each row encoded with AppendRow into a buffer reused from one step to the
// next (a RawEvent's rows are valid until the next step, as the
// interface's).
func ReplayRaw(ctx context.Context, r eventcenter.Replayer, source string, from, to, knownAt time.Time) iter.Seq2[eventcenter.RawEvent, error] {
	if rr, ok := r.(eventcenter.RawReplayer); ok {
		return rr.ReplayRaw(ctx, source, from, to, knownAt)
	}
	return func(yield func(eventcenter.RawEvent, error) bool) {
		var buf []byte
		for e, err := range r.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{source}, From: from, To: to, KnownAt: knownAt}) {
			if err != nil {
				yield(eventcenter.RawEvent{}, err)
				return
			}
			raw := eventcenter.RawEvent{Source: e.Source, Key: e.Key, Time: e.Time, Pos: e.Pos, Op: e.Op, StoredAt: e.StoredAt}
			buf = buf[:0]
			if e.After != nil {
				buf = AppendRow(buf, e.After)
				raw.After = buf[:len(buf):len(buf)]
			}
			if e.Before != nil {
				n := len(buf)
				buf = AppendRow(buf, e.Before)
				raw.Before = buf[n:len(buf):len(buf)]
			}
			if !yield(raw, nil) {
				return
			}
		}
	}
}
