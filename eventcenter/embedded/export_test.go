package embedded

import (
	"bytes"
	"context"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/tidemark-dev/tidemark/eventcenter/codec"
)

// SetMinBatchPart sets the fewest reads AsOfBatch answers on a goroutine
// of their own, until the returned undo.
func SetMinBatchPart(n int) (undo func()) {
	was := minBatchPart
	minBatchPart = n
	return func() { minBatchPart = was }
}

// SetFormatMajorVersion sets the Pebble format of the stores opened next,
// until the returned undo.
func SetFormatMajorVersion(v pebble.FormatMajorVersion) (undo func()) {
	was := formatMajorVersion
	formatMajorVersion = v
	return func() { formatMajorVersion = was }
}

// FormatMajorVersion returns the Pebble format of s's files.
func FormatMajorVersion(s *Store) pebble.FormatMajorVersion { return s.db.FormatMajorVersion() }

// ColumnarTables returns how many of s's tables are columnar (they name a
// key schema, which only columnar tables do) and how many there are.
func ColumnarTables(s *Store) (columnar, all int, err error) {
	levels, err := s.db.SSTables(pebble.WithProperties())
	if err != nil {
		return 0, 0, err
	}
	for _, l := range levels {
		for _, t := range l {
			all++
			if t.Properties.KeySchemaName != "" {
				columnar++
			}
		}
	}
	return columnar, all, nil
}

// Compact compacts every table of s.
func Compact(s *Store) error {
	return s.db.Compact(context.Background(), []byte{0}, []byte{0xff}, true)
}

// Corrupt overwrites the stored body of every events row of (source, key)
// with bytes that do not decode.
func Corrupt(s *Store, source, key string) error {
	prefix := codec.KeyPrefix([]byte{tabEvents}, source, key)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix})
	if err != nil {
		return err
	}
	b := s.db.NewBatch()
	for ok := it.First(); ok && bytes.HasPrefix(it.Key(), prefix); ok = it.Next() {
		if err := b.Set(slices.Clone(it.Key()), []byte{0xff, 0xff, 0xff}, nil); err != nil {
			return err
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}
