package tiered

import (
	"slices"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
)

// toRow returns e's segment row, as tiering would copy it from hot.
func toRow(e *eventcenter.Event) segRow {
	r := segRow{
		Source: e.Source, Key: e.Key, Time: e.Time.UTC(), PosLog: e.Pos.Log, PosOffset: e.Pos.Offset,
		Op: e.Op.String(), StoredAt: e.StoredAt.UTC(),
	}
	if e.After != nil {
		r.After = codec.AppendRow(nil, e.After)
	}
	if e.Before != nil {
		r.Before = codec.AppendRow(nil, e.Before)
	}
	return r
}

// toRows returns the rows of events.
func toRows(events []eventcenter.Event) []segRow {
	rows := make([]segRow, len(events))
	for i := range events {
		rows[i] = toRow(&events[i])
	}
	return rows
}

// sortKeyOrder sorts events into keyOrder.
func sortKeyOrder(events []eventcenter.Event) {
	slices.SortFunc(events, func(a, b eventcenter.Event) int { return keyOrder(&a, &b) })
}
