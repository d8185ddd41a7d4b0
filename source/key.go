package source

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// RowKey makes the entity key of a row from its key column values, in key
// order. One column: the value's index text (eventcenter.IndexValue: an
// integer in decimal, a decimal as its text, a string or bytes as they are,
// a time in RFC 3339 UTC). Several columns: each text Go-quoted
// (strconv.Quote), joined by commas, e.g. `"u7","42"`, so no two
// different tuples share a key. A nil value is an error (key columns are
// NOT NULL in MySQL primary keys).
func RowKey(values ...any) (string, error) {
	switch len(values) {
	case 0:
		return "", errors.New("source: a row key needs at least one column")
	case 1:
		s, ok := eventcenter.IndexValue(values[0])
		if !ok {
			return "", errors.New("source: a key column is NULL")
		}
		if s == "" {
			return "", errors.New("source: a key column is empty")
		}
		return s, nil
	}
	var b strings.Builder
	for i, v := range values {
		s, ok := eventcenter.IndexValue(v)
		if !ok {
			return "", fmt.Errorf("source: key column %d is NULL", i)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(s))
	}
	return b.String(), nil
}
