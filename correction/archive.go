package correction

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/tidemark-dev/tidemark/cdc"
	"github.com/tidemark-dev/tidemark/eventcenter"
)

// Objects is where snapshots are archived: S3 (outputs.S3) or a folder
// (outputs.Dir) in practice.
type Objects interface {
	// Put stores the object name with the content of r (size bytes),
	// replacing any object of that name.
	Put(ctx context.Context, name string, r io.ReadSeeker, size int64) error
	// String describes the destination, e.g. "s3://bucket/prefix".
	String() string
}

// ArchiveName is the object a chunk's snapshot is archived as, for the run
// started at started:
// snapshots/<source>/<date>/<time>/chunk-<index>.parquet, date and time
// (hhmmss.µs) the run's start (UTC), so every run has a folder of its own
// (a repair of a few keys the same day replaces none of the nightly run's
// objects) and a day's runs are under one folder. A retried chunk
// replaces its object.
func ArchiveName(source string, started time.Time, chunk int) string {
	started = started.UTC()
	return fmt.Sprintf("snapshots/%s/%s/%s/chunk-%06d.parquet", source, started.Format(time.DateOnly), started.Format("150405.000000"), chunk)
}

// parquetNode is the Parquet column of a MySQL column, from the CDC's
// mapping: integers int64 (BIGINT UNSIGNED as text: it may exceed int64),
// DECIMAL as its exact text, FLOAT and DOUBLE double, DATETIME, DATE and
// TIMESTAMP as timestamps (ns, UTC; a zero date is null), binary types as
// bytes, the rest as text. Every column is optional (NULL).
func parquetNode(c *cdc.Column) parquet.Node {
	switch c.DataType {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bool", "boolean", "year", "bit":
		return parquet.Optional(parquet.Leaf(parquet.Int64Type))
	case "bigint":
		if !c.Unsigned {
			return parquet.Optional(parquet.Leaf(parquet.Int64Type))
		}
	case "float", "double", "real":
		return parquet.Optional(parquet.Leaf(parquet.DoubleType))
	case "datetime", "date", "timestamp":
		return parquet.Optional(parquet.Timestamp(parquet.Nanosecond))
	}
	if isBinaryType(c.DataType) {
		return parquet.Optional(parquet.Leaf(parquet.ByteArrayType))
	}
	return parquet.Optional(parquet.String())
}

func isBinaryType(t string) bool {
	return strings.Contains(t, "binary") || strings.HasSuffix(t, "blob") || t == "geometry" || strings.HasPrefix(t, "multi") ||
		t == "point" || t == "linestring" || t == "polygon" || t == "geometrycollection"
}

// parquetValue converts a row value for the column's node (see parquetNode).
func parquetValue(v any) parquet.Value {
	switch v := v.(type) {
	case nil:
		return parquet.NullValue()
	case int64:
		return parquet.Int64Value(v)
	case float64:
		return parquet.DoubleValue(v)
	case time.Time:
		return parquet.Int64Value(v.UnixNano())
	case []byte:
		return parquet.ByteArrayValue(v)
	case eventcenter.Decimal:
		return parquet.ByteArrayValue([]byte(v))
	case string:
		return parquet.ByteArrayValue([]byte(v))
	}
	return parquet.ByteArrayValue(fmt.Append(nil, v))
}

// writeParquet writes the rows as one Parquet file: one column per table
// column, one row per MySQL row, in key order.
func writeParquet(w io.Writer, t *cdc.Table, rows []mysqlRow, zone *time.Location) error {
	group := parquet.Group{}
	for i := range t.Columns {
		group[t.Columns[i].Name] = parquetNode(&t.Columns[i])
	}
	schema := parquet.NewSchema(t.Name, group)
	fields := schema.Fields() // sorted by name
	shape := shapeOf(t)
	cols := make([]*cdc.Column, len(fields))
	vals := make([]int, len(fields)) // the field's value in a mysqlRow
	for i, f := range fields {
		for j := range t.Columns {
			if t.Columns[j].Name == f.Name() {
				cols[i], vals[i] = &t.Columns[j], shape.place[j]
			}
		}
	}
	pw := parquet.NewWriter(w, schema)
	row := make(parquet.Row, len(fields))
	for j := range rows {
		r := &rows[j]
		if err := r.typed(t, &shape, zone); err != nil {
			return err
		}
		for i, c := range cols {
			v := r.vals[vals[i]]
			if _, ok := v.(string); ok && (c.DataType == "datetime" || c.DataType == "date" || c.DataType == "timestamp") {
				v = nil // a zero date: no instant
			}
			val := parquetValue(v)
			if v == nil {
				row[i] = val.Level(0, 0, i)
			} else {
				row[i] = val.Level(0, 1, i)
			}
		}
		if _, err := pw.WriteRows([]parquet.Row{row}); err != nil {
			return err
		}
	}
	return pw.Close()
}

// archive writes the chunk's rows to the object name.
func (c *Corrector) archive(ctx context.Context, name string, t *cdc.Table, rows []mysqlRow) error {
	var buf bytes.Buffer
	if err := writeParquet(&buf, t, rows, c.opts.Zone); err != nil {
		return fmt.Errorf("correction: archive %s: %w", name, err)
	}
	if err := c.opts.Archive.Put(ctx, name, bytes.NewReader(buf.Bytes()), int64(buf.Len())); err != nil {
		return fmt.Errorf("correction: archive %s: %w", name, err)
	}
	return nil
}
