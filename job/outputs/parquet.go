package outputs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
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
// The other columns are the record's fields, named by parquetColumn.
var parquetMeta = []string{"id", "job", "job_version", "param_version", "entity", "time", "trigger_source", "trigger_key", "trigger_log", "trigger_offset"}

// samplePrefix marks the fields that carry a sample table's own columns.
const samplePrefix = "_sample."

// SampleColumn returns the field name under which a training-set record
// (a sample-table backfill's row) carries the sample table's column name,
// e.g. a label, in its Sample (job.Record.Sample; a record read back from
// JSON has it among its features). The '_' prefix is reserved for the
// runtime, so it never collides with the job's features. JSON Lines
// writes it as the feature "_sample.<name>", Parquet as a column named as
// parquetColumn says.
func SampleColumn(name string) string { return samplePrefix + name }

// reservedColumn reports whether a field's own name cannot be its column:
// a metadata column's, or one with the prefix of a renamed field.
func reservedColumn(name string) bool {
	return slices.Contains(parquetMeta, name) || strings.HasPrefix(name, "feature_") || strings.HasPrefix(name, "sample_")
}

// parquetColumn returns the column of the record field (a feature, or a
// sample column under SampleColumn) given the run's sample columns:
//
//   - a sample column is named as in its table, or "sample_<name>" if that
//     name is a metadata column's or starts with "feature_" or "sample_";
//   - a feature is named as itself, or "feature_<name>" if that name is a
//     metadata column's, a sample column's, or starts with "feature_" or
//     "sample_".
//
// Distinct fields get distinct columns (unprefixed names are never
// reserved, and each prefix belongs to one kind of field), and a field's
// column depends only on its name and the run's sample columns, never on
// which other fields an object holds: every object of a backfill names a
// field alike.
func parquetColumn(field string, sample map[string]bool) string {
	if name, ok := strings.CutPrefix(field, samplePrefix); ok {
		if reservedColumn(name) {
			return "sample_" + name
		}
		return name
	}
	if reservedColumn(field) || sample[field] {
		return "feature_" + field
	}
	return field
}

// ParquetOutput writes the records of one backfill chunk segment as one
// Parquet object: one row per record (each record ID once, in order), one
// optional column per feature and per Sample field (job.Record.Sample; a
// name in both is one column, whose value is Sample's), typed from the
// values (int64, double,
// boolean, string, binary, timestamp; a decimal as its text; a feature
// whose values have several types as text). Records are kept in memory
// until Close, which writes the object; a retried segment writes an object
// of the same name, which replaces the first.
type ParquetOutput struct {
	dst    Destination
	name   string
	sample map[string]bool // the run's sample columns
	nanos  map[string]bool // the sample columns whose times are in ns (SampleNanos)

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
// "bf-1/credit/chunk-000007-000000000000.parquet") in dst. sample names
// the sample-table columns that the records of a training set carry
// (SampleColumn): a feature of one of these names is written as
// "feature_<name>" (see parquetColumn). Give every object of a backfill the
// same sample columns, so that all name their columns alike; a record
// carrying a sample column not given is written as if it were.
func Parquet(dst Destination, name string, sample ...string) (*ParquetOutput, error) {
	if name == "" || strings.HasPrefix(name, "/") {
		return nil, fmt.Errorf("outputs: object name %q must be relative", name)
	}
	o := &ParquetOutput{dst: dst, name: name, sample: map[string]bool{}, seen: map[string]struct{}{}}
	for _, c := range sample {
		o.sample[c] = true
	}
	return o, nil
}

// SampleNanos names the sample columns whose times the object holds in
// nanoseconds (a Parquet sample table's TIMESTAMP(NANOS) columns, whose
// times fit them); it holds a sample column's other times in
// microseconds, so that any year fits (a "valid to" of 9999-12-31). Call
// it before Close (which writes the object), with the same names for
// every object of a backfill.
func (o *ParquetOutput) SampleNanos(names ...string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.nanos == nil {
		o.nanos = make(map[string]bool, len(names))
	}
	for _, n := range names {
		o.nanos[n] = true
	}
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
	if len(o.seen) == 0 { // sized for the first batch, usually the segment
		o.seen = make(map[string]struct{}, len(recs))
	}
	o.recs = slices.Grow(o.recs, len(recs))
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
	recs := o.recs
	o.recs = nil
	if d, ok := o.dst.(Dir); ok { // written in place, not copied
		err := d.write(o.name, func(w io.Writer) error {
			bw := bufio.NewWriterSize(w, 256<<10)
			return errors.Join(writeParquet(bw, recs, o.sample, o.nanos), bw.Flush())
		})
		if err != nil {
			return fmt.Errorf("outputs: parquet %s: %w", o.name, err)
		}
		return nil
	}
	tmp, drop, err := tempFile("tidemark-parquet-*")
	if err != nil {
		return err
	}
	defer drop()
	if err := writeParquet(tmp, recs, o.sample, o.nanos); err != nil {
		return fmt.Errorf("outputs: parquet %s: %w", o.name, err)
	}
	size, err := tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
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
	// kindMicros is a sample column's time, kept in microseconds: a
	// sample table's times may lie outside the nanosecond range
	// (1677-2262) that a feature's (an event center's) times keep to, as
	// a "valid to" of 9999-12-31 does.
	kindMicros
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
	case kindMicros:
		return parquet.Optional(parquet.Timestamp(parquet.Microsecond))
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
	case kindMicros:
		return parquet.Int64Value(v.(time.Time).UnixMicro())
	}
	switch v := v.(type) {
	case string:
		return stringValue(v)
	case eventcenter.Decimal:
		return stringValue(string(v))
	case time.Time:
		return parquet.ByteArrayValue([]byte(v.UTC().Format(time.RFC3339Nano)))
	}
	return parquet.ByteArrayValue(fmt.Append(nil, v))
}

// stringValue returns a Parquet value that points into s, without a copy:
// the writer copies a value's bytes into its pages as it is written.
func stringValue(s string) parquet.Value {
	return parquet.ByteArrayValue(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// writeParquet writes recs as one Parquet file to w, with the run's sample
// columns sample (see parquetColumn), whose times are in microseconds but
// for those in nanos (ParquetOutput.SampleNanos).
func writeParquet(w io.Writer, recs []job.Record, sample, nanos map[string]bool) error {
	kinds := map[string]parquetKind{} // field -> kind
	inSample := map[string]bool{}     // the fields some record has in its Sample
	note := func(name string, v any) {
		if c, ok := strings.CutPrefix(name, samplePrefix); ok && !sample[c] {
			sample = maps.Clone(sample)
			sample[c] = true
		}
		k := kindOf(v)
		switch have, ok := kinds[name]; {
		case !ok || have == kindNone:
			kinds[name] = k
		case k != kindNone && k != have:
			kinds[name] = kindString // mixed types: as text
		}
	}
	// The Sample fields of one record after another are usually the same
	// names, with values of the same kinds: the kinds noted last for each
	// position, which need no note again.
	type noted struct {
		name string
		kind parquetKind
	}
	var last []noted
	for i := range recs {
		for name, v := range recs[i].Features {
			note(name, v)
		}
		for j, f := range recs[i].Sample {
			k := kindOf(f.Value)
			if j < len(last) && last[j].name == f.Name && (last[j].kind == k || k == kindNone) {
				continue
			}
			note(f.Name, f.Value)
			inSample[f.Name] = true
			if j >= len(last) {
				last = append(last, noted{})
			}
			last[j] = noted{f.Name, kinds[f.Name]}
		}
	}
	// The metadata columns that keep one value over a backfill (its job,
	// versions and trigger source) or over a training set (a sample
	// trigger's zero position) are dictionary or delta encoded: a few
	// bytes a page instead of 8 to 20 a row, a third of a training set's
	// object, for about the same CPU (bench/README.md). DuckDB, pyarrow
	// and Spark read both encodings (Spark's vectorized reader
	// DELTA_BINARY_PACKED since 3.3; set
	// spark.sql.parquet.enableVectorizedReader=false before it).
	dict := func(n parquet.Node) parquet.Node { return parquet.Encoded(n, &parquet.RLEDictionary) }
	delta := func(n parquet.Node) parquet.Node { return parquet.Encoded(n, &parquet.DeltaBinaryPacked) }
	group := parquet.Group{
		"id": parquet.String(), "job": dict(parquet.String()), "job_version": dict(parquet.String()),
		"param_version": delta(parquet.Leaf(parquet.Int64Type)), "entity": parquet.String(),
		"time":           parquet.Timestamp(parquet.Nanosecond),
		"trigger_source": dict(parquet.String()), "trigger_key": parquet.String(),
		"trigger_log": delta(parquet.Leaf(parquet.Int64Type)), "trigger_offset": delta(parquet.Leaf(parquet.Int64Type)),
	}
	for name, k := range kinds {
		// A Sample field's name (SampleColumn) or one read back from JSON.
		if c, ok := strings.CutPrefix(name, samplePrefix); ok && k == kindTime && !nanos[c] {
			kinds[name] = kindMicros
		}
	}
	column := map[string]string{} // field -> column
	for name, k := range kinds {
		col := parquetColumn(name, sample)
		column[name] = col
		group[col] = k.node()
	}
	schema := parquet.NewSchema("record", group)
	index := map[string]int{}
	for i, f := range schema.Fields() {
		index[f.Name()] = i
	}
	pw := parquet.NewWriter(w, schema)
	// The records go to the writer column by column, in batches of rows:
	// each column's values are resolved once per batch, with no row
	// assembled. Values of strings point into the records' strings
	// (stringValue). The metadata columns are required: their values need
	// no levels.
	cols := pw.ColumnWriters()
	const batch = 1024
	vals := make([]parquet.Value, batch)
	type field struct {
		name   string
		kind   parquetKind
		col    int
		sample bool // in some record's Sample: read with sampleValue
	}
	fields := make([]field, 0, len(kinds))
	for name, k := range kinds {
		fields = append(fields, field{name, k, index[column[name]], inSample[name]})
	}
	var vs []parquet.Value // the batch's values of one column
	var err error          // the first write's that failed
	put := func(col int) {
		if err == nil {
			_, err = cols[col].WriteRowValues(vs)
		}
	}
	for start := 0; start < len(recs) && err == nil; start += batch {
		rs := recs[start:min(start+batch, len(recs))]
		vs = vals[:len(rs)]
		for i := range rs {
			vs[i] = stringValue(rs[i].ID)
		}
		put(index["id"])
		for i := range rs {
			vs[i] = stringValue(rs[i].Job)
		}
		put(index["job"])
		for i := range rs {
			vs[i] = stringValue(rs[i].JobVersion)
		}
		put(index["job_version"])
		for i := range rs {
			vs[i] = parquet.Int64Value(int64(rs[i].ParamVersion))
		}
		put(index["param_version"])
		for i := range rs {
			vs[i] = stringValue(rs[i].Entity)
		}
		put(index["entity"])
		for i := range rs {
			vs[i] = parquet.Int64Value(rs[i].Trigger.Time.UnixNano())
		}
		put(index["time"])
		for i := range rs {
			vs[i] = stringValue(rs[i].Trigger.Source)
		}
		put(index["trigger_source"])
		for i := range rs {
			vs[i] = stringValue(rs[i].Trigger.Key)
		}
		put(index["trigger_key"])
		for i := range rs {
			vs[i] = parquet.Int64Value(int64(rs[i].Trigger.Pos.Log))
		}
		put(index["trigger_log"])
		for i := range rs {
			vs[i] = parquet.Int64Value(int64(rs[i].Trigger.Pos.Offset))
		}
		put(index["trigger_offset"])
		for _, f := range fields {
			for i := range rs {
				var v any
				if f.sample {
					v = sampleValue(&rs[i], f.name)
				} else {
					v = rs[i].Features[f.name]
				}
				if v == nil {
					vs[i] = parquet.NullValue().Level(0, 0, f.col)
				} else {
					vs[i] = f.kind.value(v).Level(0, 1, f.col)
				}
			}
			put(f.col)
		}
	}
	if err != nil {
		return err
	}
	return pw.Close()
}

// sampleValue returns the value of r's sample field name: from r.Sample,
// else from its features (a record read back from JSON carries them
// there), nil if neither has it. Of a field in both, Sample's value is the
// one, as in the record's JSON form.
func sampleValue(r *job.Record, name string) any {
	for _, f := range r.Sample {
		if f.Name == name {
			return f.Value
		}
	}
	return r.Features[name]
}
