package outputs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/parquet-go/parquet-go"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
)

// Columns of a Parquet object besides the features, in this order of
// meaning (Parquet orders a flat schema's columns by name):
//
//	id, job, job_version (string), param_version (int64), entity (string),
//	time (timestamp, ns, UTC: the trigger time the features hold as of),
//	trigger_source, trigger_key (string), trigger_log, trigger_offset (int64)
//
// A feature whose name is one of these is written as "feature_<name>".
var parquetMeta = []string{"id", "job", "job_version", "param_version", "entity", "time", "trigger_source", "trigger_key", "trigger_log", "trigger_offset"}

// samplePrefix marks the features that carry a sample table's own columns.
const samplePrefix = "_sample."

// SampleColumn returns the feature name under which a training-set record
// (a sample-table backfill's row) carries the sample table's column name,
// e.g. a label. The '_' prefix is reserved for the runtime, so it never
// collides with the job's features. Parquet writes it as the column name
// itself, or "sample_<name>" if a feature or one of the columns above has
// that name; JSON Lines as the feature "_sample.<name>".
func SampleColumn(name string) string { return samplePrefix + name }

// ParquetOutput writes the records of one backfill chunk segment as one
// Parquet object: one row per record (each record ID once, in order), one
// optional column per feature, typed from the values (int64, double,
// boolean, string, binary, timestamp; a decimal as its text; a feature
// whose values have several types as text). Records are kept in memory
// until Close, which writes the object; a retried segment writes an object
// of the same name, which replaces the first.
type ParquetOutput struct {
	dst  Destination
	name string

	mu     sync.Mutex
	recs   []job.Record
	seen   map[string]struct{}
	n      int
	closed bool
}

var (
	_ job.Output     = (*ParquetOutput)(nil)
	_ job.Idempotent = (*ParquetOutput)(nil)
)

// Parquet returns a sink of the object name (e.g.
// "bf-1/credit/chunk-000007-000000000000.parquet") in dst.
func Parquet(dst Destination, name string) (*ParquetOutput, error) {
	if name == "" || strings.HasPrefix(name, "/") {
		return nil, fmt.Errorf("outputs: object name %q must be relative", name)
	}
	return &ParquetOutput{dst: dst, name: name, seen: map[string]struct{}{}}, nil
}

// Name implements job.Output.
func (o *ParquetOutput) Name() string { return "parquet:" + o.dst.String() + o.name }

// Idempotent implements job.Idempotent.
func (o *ParquetOutput) Idempotent() {}

// Write implements job.Output: records whose ID was written already are
// skipped.
func (o *ParquetOutput) Write(_ context.Context, recs []job.Record) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return errors.New("outputs: parquet sink closed")
	}
	for _, r := range recs {
		if _, ok := o.seen[r.ID]; ok {
			continue
		}
		o.seen[r.ID] = struct{}{}
		o.recs = append(o.recs, r)
		o.n++
	}
	return nil
}

// Count returns the number of records written.
func (o *ParquetOutput) Count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n
}

// Abort drops the sink's records without putting anything.
func (o *ParquetOutput) Abort() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed, o.recs = true, nil
}

// Close writes the object to the destination. Nothing is visible before.
func (o *ParquetOutput) Close(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil
	}
	o.closed = true
	tmp, err := os.CreateTemp("", "tidemark-parquet-*")
	if err != nil {
		return err
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	if err := writeParquet(tmp, o.recs); err != nil {
		return fmt.Errorf("outputs: parquet %s: %w", o.name, err)
	}
	size, err := tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	o.recs = nil
	return o.dst.Put(ctx, o.name, tmp, size)
}

// parquetKind is the Parquet type of a feature column.
type parquetKind uint8

const (
	kindNone parquetKind = iota // only nulls so far
	kindInt
	kindDouble
	kindBool
	kindString
	kindBytes
	kindTime
)

func kindOf(v any) parquetKind {
	switch v.(type) {
	case int64, int:
		return kindInt
	case float64:
		return kindDouble
	case bool:
		return kindBool
	case string, eventcenter.Decimal:
		return kindString
	case []byte:
		return kindBytes
	case time.Time:
		return kindTime
	}
	return kindNone
}

func (k parquetKind) node() parquet.Node {
	switch k {
	case kindInt:
		return parquet.Optional(parquet.Leaf(parquet.Int64Type))
	case kindDouble:
		return parquet.Optional(parquet.Leaf(parquet.DoubleType))
	case kindBool:
		return parquet.Optional(parquet.Leaf(parquet.BooleanType))
	case kindBytes:
		return parquet.Optional(parquet.Leaf(parquet.ByteArrayType))
	case kindTime:
		return parquet.Optional(parquet.Timestamp(parquet.Nanosecond))
	}
	return parquet.Optional(parquet.String())
}

func (k parquetKind) value(v any) parquet.Value {
	switch k {
	case kindInt:
		switch v := v.(type) {
		case int64:
			return parquet.Int64Value(v)
		case int:
			return parquet.Int64Value(int64(v))
		}
	case kindDouble:
		return parquet.DoubleValue(v.(float64))
	case kindBool:
		return parquet.BooleanValue(v.(bool))
	case kindBytes:
		return parquet.ByteArrayValue(v.([]byte))
	case kindTime:
		return parquet.Int64Value(v.(time.Time).UnixNano())
	}
	switch v := v.(type) {
	case string:
		return parquet.ByteArrayValue([]byte(v))
	case eventcenter.Decimal:
		return parquet.ByteArrayValue([]byte(v))
	case time.Time:
		return parquet.ByteArrayValue([]byte(v.UTC().Format(time.RFC3339Nano)))
	}
	return parquet.ByteArrayValue(fmt.Append(nil, v))
}

// writeParquet writes recs as one Parquet file to w.
func writeParquet(w io.Writer, recs []job.Record) error {
	kinds := map[string]parquetKind{} // feature -> kind
	for i := range recs {
		for name, v := range recs[i].Features {
			k := kindOf(v)
			switch have, ok := kinds[name]; {
			case !ok || have == kindNone:
				kinds[name] = k
			case k != kindNone && k != have:
				kinds[name] = kindString // mixed types: as text
			}
		}
	}
	group := parquet.Group{
		"id": parquet.String(), "job": parquet.String(), "job_version": parquet.String(),
		"param_version": parquet.Leaf(parquet.Int64Type), "entity": parquet.String(),
		"time":           parquet.Timestamp(parquet.Nanosecond),
		"trigger_source": parquet.String(), "trigger_key": parquet.String(),
		"trigger_log": parquet.Leaf(parquet.Int64Type), "trigger_offset": parquet.Leaf(parquet.Int64Type),
	}
	column := map[string]string{} // feature -> column
	for name, k := range kinds {
		col := name
		switch {
		case strings.HasPrefix(name, samplePrefix):
			col = strings.TrimPrefix(name, samplePrefix)
			if _, feature := kinds[col]; feature || slices.Contains(parquetMeta, col) {
				col = "sample_" + col
			}
		case slices.Contains(parquetMeta, name):
			col = "feature_" + name
		}
		column[name] = col
		group[col] = k.node()
	}
	schema := parquet.NewSchema("record", group)
	index := map[string]int{}
	for i, f := range schema.Fields() {
		index[f.Name()] = i
	}
	pw := parquet.NewWriter(w, schema)
	// Rows go to the writer in batches; values of strings point into the
	// records' strings (the writer copies them into its pages).
	str := func(s string) parquet.Value {
		return parquet.ByteArrayValue(unsafe.Slice(unsafe.StringData(s), len(s)))
	}
	cols := make([]string, 0, len(kinds)) // features in column order
	for name := range kinds {
		cols = append(cols, name)
	}
	slices.SortFunc(cols, func(a, b string) int { return index[column[a]] - index[column[b]] })
	meta := [...]int{index["id"], index["job"], index["job_version"], index["param_version"], index["entity"], index["time"],
		index["trigger_source"], index["trigger_key"], index["trigger_log"], index["trigger_offset"]}
	const batch = 512
	rows := make([]parquet.Row, batch)
	for i := range rows {
		rows[i] = make(parquet.Row, len(group))
	}
	for start := 0; start < len(recs); start += batch {
		n := min(batch, len(recs)-start)
		for k := range n {
			r, row := &recs[start+k], rows[k]
			set := func(c int, v parquet.Value, def int) { row[c] = v.Level(0, def, c) }
			set(meta[0], str(r.ID), 0)
			set(meta[1], str(r.Job), 0)
			set(meta[2], str(r.JobVersion), 0)
			set(meta[3], parquet.Int64Value(int64(r.ParamVersion)), 0)
			set(meta[4], str(r.Entity), 0)
			set(meta[5], parquet.Int64Value(r.Trigger.Time.UnixNano()), 0)
			set(meta[6], str(r.Trigger.Source), 0)
			set(meta[7], str(r.Trigger.Key), 0)
			set(meta[8], parquet.Int64Value(int64(r.Trigger.Pos.Log)), 0)
			set(meta[9], parquet.Int64Value(int64(r.Trigger.Pos.Offset)), 0)
			for _, name := range cols {
				c := index[column[name]]
				v, ok := r.Features[name]
				if !ok || v == nil {
					set(c, parquet.NullValue(), 0)
					continue
				}
				set(c, kinds[name].value(v), 1)
			}
		}
		if _, err := pw.WriteRows(rows[:n]); err != nil {
			return err
		}
	}
	return pw.Close()
}
