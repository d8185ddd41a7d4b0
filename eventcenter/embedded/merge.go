package embedded

import (
	"io"

	"github.com/cockroachdb/pebble/v2"
)

// firstWins is the events table's merger: of all bodies written under one
// event key, the oldest is the value. It makes Append idempotent without a
// read: a re-appended event is an ignored newer operand.
var firstWins = &pebble.Merger{
	Name: "tidemark.first-wins.v1",
	Merge: func(key, value []byte) (pebble.ValueMerger, error) {
		return &oldest{value: append([]byte(nil), value...)}, nil
	},
}

type oldest struct{ value []byte }

func (m *oldest) MergeNewer([]byte) error { return nil }

func (m *oldest) MergeOlder(value []byte) error {
	m.value = append(m.value[:0], value...)
	return nil
}

func (m *oldest) Finish(bool) ([]byte, io.Closer, error) { return m.value, nil, nil }
