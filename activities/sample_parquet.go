package activities

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/smithy-go"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"
	"github.com/parquet-go/parquet-go/format"
	"go.temporal.io/sdk/activity"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// Parquet sample tables: a flat schema (no nested or repeated columns)
// with a key (or entity) column, a string or an integer, and a time
// column: a timestamp (any unit; local timestamps are read as UTC), a date
// (UTC midnight) or a string (as in CSV). Chunks are runs of whole row
// groups; a chunk reads the file's footer and its row groups' bytes only.

// parquetReaderAt opens the table for random access, pinned to version: a
// local file checked by modification time and size, or S3 ranged GETs
// conditional on the ETag. On S3, the ranges given are fetched at once
// (each in one GET) and reads inside them served from memory.
func (a *Backfill) parquetReaderAt(ctx context.Context, l sampleLoc, version string, size int64, ranges ...[2]int64) (io.ReaderAt, func() error, error) {
	if l.bucket == "" {
		f, _, err := openLocal(l, version)
		if err != nil {
			return nil, nil, err
		}
		return f, f.Close, nil
	}
	r := &s3ReaderAt{ctx: ctx, a: a, l: l, version: version}
	for _, rg := range ranges {
		lo, hi := max(rg[0], 0), min(rg[1], size)
		if hi <= lo {
			continue
		}
		b := make([]byte, hi-lo)
		if _, err := r.get(b, lo); err != nil {
			return nil, nil, err
		}
		r.bufs = append(r.bufs, s3Buf{off: lo, data: b})
	}
	return r, func() error { return nil }, nil
}

type s3Buf struct {
	off  int64
	data []byte
}

// s3ReaderAt reads an S3 object of one version by ranged GETs.
type s3ReaderAt struct {
	ctx     context.Context
	a       *Backfill
	l       sampleLoc
	version string
	bufs    []s3Buf
}

func (r *s3ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	for _, b := range r.bufs {
		if off >= b.off && off+int64(len(p)) <= b.off+int64(len(b.data)) {
			return copy(p, b.data[off-b.off:]), nil
		}
	}
	return r.get(p, off)
}

func (r *s3ReaderAt) get(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	rc, err := r.a.openSample(r.ctx, r.l, r.version, off, off+int64(len(p)))
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n, err := io.ReadFull(rc, p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	return n, err
}

// footerRange is the tail of a file of size bytes read at once for its
// Parquet footer (most footers are smaller).
func footerRange(size int64) [2]int64 { return [2]int64{size - 256<<10, size} }

func openParquet(r io.ReaderAt, size int64, uri string) (*parquet.File, error) {
	f, err := parquet.OpenFile(r, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) || isPermanent(err) {
			return nil, err
		}
		return nil, permanent(ErrTypeBadSample, "backfill: sample %q: parquet: %v", uri, err)
	}
	return f, nil
}

func isPermanent(err error) bool {
	var ae interface{ NonRetryable() bool }
	return errors.As(err, &ae) && ae.NonRetryable()
}

// parquetColumns reads a table's schema: the converters of its columns
// (by column index), the key and time columns (see sampleColumns), and
// the names of the others. The key must be a string or an integer, the
// time a timestamp, a date or a string.
func parquetColumns(f *parquet.File, uri string) (conv []func(parquet.Value) any, keyCol, timeCol int, carry []string, err error) {
	fields := f.Schema().Fields()
	names := make([]string, len(fields))
	for i, fd := range fields {
		names[i] = fd.Name()
		if !fd.Leaf() || fd.Repeated() {
			return nil, 0, 0, nil, permanent(ErrTypeBadSample, "backfill: sample %q: column %q is nested or repeated: want a flat table", uri, fd.Name())
		}
		c, ok := parquetConverter(fd)
		if !ok {
			return nil, 0, 0, nil, permanent(ErrTypeBadSample, "backfill: sample %q: column %q has an unsupported type %v %v: cast it first (to a string, say)", uri, fd.Name(), fd.Type(), fd.Type().LogicalType())
		}
		conv = append(conv, c)
	}
	if keyCol, timeCol, carry, err = sampleColumns(uri, names); err != nil {
		return nil, 0, 0, nil, err
	}
	switch t := fields[keyCol].Type(); {
	case t.Kind() == parquet.ByteArray && byteArrayMayBeText(t), t.Kind() == parquet.FixedLenByteArray && isUUID(t):
	case (t.Kind() == parquet.Int32 || t.Kind() == parquet.Int64) && isPlainInteger(t):
	default:
		return nil, 0, 0, nil, permanent(ErrTypeBadSample, "backfill: sample %q: key column %q is %v %v: want a string or an integer", uri, names[keyCol], t, t.LogicalType())
	}
	switch t := fields[timeCol].Type(); {
	case timestampUnit(t) != 0, t.Kind() == parquet.Int32 && isDate(t), t.Kind() == parquet.ByteArray && byteArrayMayBeText(t):
	default:
		return nil, 0, 0, nil, permanent(ErrTypeBadSample, "backfill: sample %q: time column %q is %v %v: want a timestamp, a date or a string", uri, names[timeCol], t, t.LogicalType())
	}
	return conv, keyCol, timeCol, carry, nil
}

func logicalType(t parquet.Type) format.LogicalTypeValue {
	if l := t.LogicalType(); l != nil {
		return l.Value
	}
	return nil
}

// byteArrayIsText reports whether a byte-array type is annotated as text:
// a string, an enum or JSON. A byte array without annotation is read as
// bytes (as DuckDB and Spark read it), but may be a key or a time (as
// older writers write text).
func byteArrayIsText(t parquet.Type) bool {
	switch logicalType(t).(type) {
	case *format.StringType, *format.EnumType, *format.JsonType:
		return true
	case nil:
		ct := t.ConvertedType()
		return ct != nil && (*ct == deprecated.UTF8 || *ct == deprecated.Enum || *ct == deprecated.Json)
	}
	return false
}

// byteArrayMayBeText reports whether a byte-array type is text or not
// annotated at all.
func byteArrayMayBeText(t parquet.Type) bool {
	return byteArrayIsText(t) || logicalType(t) == nil && t.ConvertedType() == nil
}

func isUUID(t parquet.Type) bool {
	_, ok := logicalType(t).(*format.UUIDType)
	return ok
}

func isDate(t parquet.Type) bool {
	_, ok := logicalType(t).(*format.DateType)
	return ok || t.ConvertedType() != nil && *t.ConvertedType() == deprecated.Date
}

// isPlainInteger reports whether an int32 or int64 type is an integer
// that an int64 holds: no annotation, or an integer's but an unsigned
// 64-bit one's.
func isPlainInteger(t parquet.Type) bool {
	switch lt := logicalType(t).(type) {
	case nil:
		ct := t.ConvertedType()
		return ct == nil || *ct >= deprecated.Uint8 && *ct <= deprecated.Int64 && *ct != deprecated.Uint64
	case *format.IntType:
		return lt.IsSigned || lt.BitWidth < 64
	}
	return false
}

// isUnsigned reports whether an integer type is an unsigned one's.
func isUnsigned(t parquet.Type) bool {
	if lt, ok := logicalType(t).(*format.IntType); ok {
		return !lt.IsSigned
	}
	ct := t.ConvertedType()
	return ct != nil && *ct >= deprecated.Uint8 && *ct <= deprecated.Uint64
}

// parquetConverter returns how to read a column's values as row values:
// bool, int64, float64, string, []byte, eventcenter.Decimal, time.Time, or
// nil for a null; false for a type it cannot read as one of them (a time
// of day, an interval, a 16-bit float, an unsigned 64-bit integer).
func parquetConverter(n parquet.Node) (func(parquet.Value) any, bool) {
	t := n.Type()
	nullable := func(f func(parquet.Value) any) (func(parquet.Value) any, bool) {
		return func(v parquet.Value) any {
			if v.IsNull() {
				return nil
			}
			return f(v)
		}, true
	}
	lt := logicalType(t)
	if d, ok := lt.(*format.DecimalType); ok {
		scale := int(d.Scale)
		switch t.Kind() {
		case parquet.Int32:
			return nullable(func(v parquet.Value) any { return decimalText(big.NewInt(int64(v.Int32())), scale) })
		case parquet.Int64:
			return nullable(func(v parquet.Value) any { return decimalText(big.NewInt(v.Int64()), scale) })
		case parquet.ByteArray, parquet.FixedLenByteArray:
			return nullable(func(v parquet.Value) any { return decimalText(twosComplement(v.ByteArray()), scale) })
		}
		return nil, false
	}
	if ct := t.ConvertedType(); lt == nil && ct != nil {
		switch *ct {
		case deprecated.Decimal, deprecated.Interval, deprecated.TimeMillis, deprecated.TimeMicros, deprecated.Uint64:
			return nil, false
		}
	}
	switch lt := lt.(type) {
	case nil, *format.StringType, *format.EnumType, *format.JsonType, *format.DateType, *format.TimestampType, *format.UUIDType:
	case *format.IntType:
		if lt.BitWidth == 64 && !lt.IsSigned {
			return nil, false // past int64
		}
	default:
		return nil, false
	}
	switch t.Kind() {
	case parquet.Boolean:
		return nullable(func(v parquet.Value) any { return v.Boolean() })
	case parquet.Int32:
		if isDate(t) {
			return nullable(func(v parquet.Value) any { return time.Unix(int64(v.Int32())*86400, 0).UTC() })
		}
		if isUnsigned(t) {
			return nullable(func(v parquet.Value) any { return int64(v.Uint32()) })
		}
		return nullable(func(v parquet.Value) any { return int64(v.Int32()) })
	case parquet.Int64:
		if unit := timestampUnit(t); unit != 0 {
			return nullable(func(v parquet.Value) any { return unixUnits(v.Int64(), unit) })
		}
		if _, ok := lt.(*format.TimestampType); ok {
			return nil, false
		}
		return nullable(func(v parquet.Value) any { return v.Int64() })
	case parquet.Float:
		return nullable(func(v parquet.Value) any { return float64(v.Float()) })
	case parquet.Double:
		return nullable(func(v parquet.Value) any { return v.Double() })
	case parquet.ByteArray:
		if byteArrayIsText(t) {
			return nullable(func(v parquet.Value) any { return string(v.ByteArray()) })
		}
		return nullable(func(v parquet.Value) any { return slices.Clone(v.ByteArray()) })
	case parquet.FixedLenByteArray:
		if isUUID(t) {
			return nullable(func(v parquet.Value) any { return uuidText(v.ByteArray()) })
		}
		return nullable(func(v parquet.Value) any { return slices.Clone(v.ByteArray()) })
	}
	return nil, false
}

// unixUnits is the time of v units of unit nanoseconds (a unit of a second
// or less, dividing it) since the Unix epoch, for every v (no overflow of
// nanoseconds).
func unixUnits(v, unit int64) time.Time {
	per := int64(time.Second) / unit
	sec, frac := v/per, v%per
	if frac < 0 {
		sec, frac = sec-1, frac+per
	}
	return time.Unix(sec, frac*unit).UTC()
}

// twosComplement reads a big-endian two's-complement integer.
func twosComplement(b []byte) *big.Int {
	n := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return n
}

// decimalText is the decimal text of unscaled × 10^-scale.
func decimalText(unscaled *big.Int, scale int) eventcenter.Decimal {
	s := new(big.Int).Abs(unscaled).String()
	if scale > 0 {
		if len(s) <= scale {
			s = strings.Repeat("0", scale-len(s)+1) + s
		}
		s = s[:len(s)-scale] + "." + s[len(s)-scale:]
	} else if scale < 0 {
		s += strings.Repeat("0", -scale)
	}
	if unscaled.Sign() < 0 {
		s = "-" + s
	}
	return eventcenter.Decimal(s)
}

// uuidText is the canonical text of a UUID's 16 bytes.
func uuidText(b []byte) string {
	if len(b) != 16 {
		return hex.EncodeToString(b)
	}
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// tailShares returns where the k-th of n shares of total rows ends (k from
// 0 to n), n the chunks of per rows (sizedChunkRows) of a plan asked for
// about asked: the shares are equal but for the last min(n, asked)/4 — the
// last round of a backfill asked for 4 chunks per slot
// (workflows.ChunksPerSlot) — which are half as large, so that its last
// chunks, which may run alone, end soon. All are equal where a half would
// be less than DefaultChunkRows, or a whole share more than
// MaxSizedChunkRows.
func tailShares(total, n, asked, per int) func(k int) int {
	half := min(n, asked) / 4
	if per < 2*DefaultChunkRows || 2*total > MaxSizedChunkRows*(2*n-half) {
		half = 0
	}
	return func(k int) int {
		units := 2 * k // in half shares
		if full := n - half; k > full {
			units = 2*full + (k - full)
		}
		return total * units / (2*n - half)
	}
}

// sampleKey reads a key column's value.
func sampleKey(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, v != ""
	case []byte:
		return string(v), len(v) > 0
	case int64:
		return strconv.FormatInt(v, 10), true
	}
	return "", false
}

// sampleTime reads a time column's value.
func sampleTime(v any) (time.Time, error) {
	switch v := v.(type) {
	case time.Time:
		return v, checkSampleTime(v)
	case string:
		return parseSampleTime(v)
	case []byte:
		return parseSampleTime(string(v))
	}
	return time.Time{}, fmt.Errorf("time %v: want a timestamp, a date or a string", v)
}

// groupBytes returns the bytes [start, end) of a row group's column data.
func groupBytes(rg *format.RowGroup) (start, end int64) {
	start = -1
	for i := range rg.Columns {
		md := &rg.Columns[i].MetaData
		s := md.DataPageOffset
		if md.DictionaryPageOffset > 0 && md.DictionaryPageOffset < s {
			s = md.DictionaryPageOffset
		}
		if start < 0 || s < start {
			start = s
		}
		end = max(end, s+md.TotalCompressedSize)
	}
	return max(start, 0), end
}

// statsLatest reads from a row group's column statistics that its key and
// time columns hold no null and its latest time; false if they do not say.
func statsLatest(rg *format.RowGroup, keyCol, timeCol int, conv func(parquet.Value) any) (time.Time, bool) {
	if keyCol >= len(rg.Columns) || timeCol >= len(rg.Columns) {
		return time.Time{}, false
	}
	for _, c := range []int{keyCol, timeCol} {
		if st := &rg.Columns[c].MetaData.Statistics; st.NullCount != 0 || (len(st.MaxValue) == 0 && len(st.Max) == 0) {
			return time.Time{}, false
		}
	}
	md := &rg.Columns[timeCol].MetaData
	stat := func(b []byte) (time.Time, bool) {
		var v parquet.Value
		switch {
		case md.Type == format.Int64 && len(b) == 8:
			v = parquet.Int64Value(int64(binary.LittleEndian.Uint64(b)))
		case md.Type == format.Int32 && len(b) == 4:
			v = parquet.Int32Value(int32(binary.LittleEndian.Uint32(b)))
		default:
			return time.Time{}, false // e.g. string times: their maximum is not the latest
		}
		t, ok := conv(v).(time.Time)
		return t, ok
	}
	// Both ends within the event center's times, or each row is read (and
	// the first out of them named).
	first, ok := stat(md.Statistics.MinValue)
	if !ok || !eventcenter.InTimeRange(first) {
		return time.Time{}, false
	}
	latest, ok := stat(md.Statistics.MaxValue)
	return latest, ok && eventcenter.InTimeRange(latest)
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// planParquet reads the table's footer and cuts its row groups into
// chunks. It checks the schema, and takes the row counts and the latest
// time from the footer when the statistics of the key and time columns
// say there is no null and the time's maximum; else it reads the row
// group and checks every row's key and time. Rows are checked again when
// their chunk runs (an empty key fails it).
func (a *Backfill) planParquet(ctx context.Context, l sampleLoc, version string, size int64, chunkRows, chunks int) (*SamplePlan, error) {
	ra, closeFile, err := a.parquetReaderAt(ctx, l, version, size, [2]int64{0, size})
	if err != nil {
		return nil, err
	}
	defer closeFile()
	f, err := openParquet(ra, size, l.uri)
	if err != nil {
		return nil, err
	}
	conv, keyCol, timeCol, carry, err := parquetColumns(f, l.uri)
	if err != nil {
		return nil, err
	}
	// Sized (chunkRows 0): the table in about n chunks, each a run of
	// whole row groups that ends at the group whose middle row is nearest
	// the end of the next share of the rows, or before MaxSizedChunkRows
	// (a row group larger than that is a chunk of its own); a chunk of less
	// than half its share takes the next group if it fits. The shares are
	// equal, but for the last round's, which are half as large where that
	// keeps every chunk within DefaultChunkRows and MaxSizedChunkRows
	// (tailShares): the backfill runs its chunks in order, Parallelism at
	// a time, and its last chunks may run with nothing beside them.
	total := 0
	for _, rg := range f.RowGroups() {
		total += int(rg.NumRows())
	}
	n := 0
	if chunkRows <= 0 {
		chunkRows = sizedChunkRows(total, chunks)
		n = sizedChunks(total, chunks)
	}
	p := &SamplePlan{URI: l.uri, Format: FormatParquet, ChunkRows: chunkRows, Columns: len(conv), KeyCol: keyCol, TimeCol: timeCol,
		Carry: carry, Size: size, Version: version, RowGroups: len(f.RowGroups())}
	for i, fd := range f.Schema().Fields() {
		if i != keyCol && i != timeCol && timestampUnit(fd.Type()) == int64(time.Nanosecond) { // a carried column
			p.CarryNanos = append(p.CarryNanos, fd.Name())
		}
	}
	meta := f.Metadata().RowGroups
	chunkStart := 0
	next := 1 // sized: the share the chunk ends nearest
	end := tailShares(total, n, chunks, chunkRows)
	newChunk := func(rows int) bool {
		if rows == 0 || p.Rows == chunkStart {
			return false // no chunk of no rows
		}
		if n == 0 {
			return p.Rows-chunkStart+rows > chunkRows
		}
		has, fits := p.Rows-chunkStart, p.Rows-chunkStart+rows <= MaxSizedChunkRows
		if 2*has < end(next)-end(next-1) && fits {
			return false // no chunk of less than half its share while the group fits
		}
		mid2 := 2*p.Rows + rows // twice the group's middle row
		if mid2 < 2*end(next) && fits {
			return false
		}
		for next < n && 2*end(next) <= mid2 {
			next++ // to the first share that ends past the group's middle
		}
		return true
	}
	for g, rg := range f.RowGroups() {
		groupRows := int(rg.NumRows())
		start, end := groupBytes(&meta[g])
		if len(p.Groups) == 0 || newChunk(groupRows) {
			if len(p.Groups) == MaxChunks {
				return nil, permanent(ErrTypeTooManyChunks, "backfill: sample %q in chunks of %d rows needs more than %d chunks: choose more rows per chunk", l.uri, chunkRows, MaxChunks)
			}
			p.Groups, p.FirstRows = append(p.Groups, g), append(p.FirstRows, p.Rows)
			p.Offsets, p.Ends = append(p.Offsets, start), append(p.Ends, end)
			chunkStart = p.Rows
		}
		last := len(p.Groups) - 1
		p.Offsets[last], p.Ends[last] = min(p.Offsets[last], start), max(p.Ends[last], end)
		if latest, ok := statsLatest(&meta[g], keyCol, timeCol, conv[timeCol]); ok {
			// The footer says enough: no null key or time, the latest
			// time. Rows are read (and each checked) when their chunk runs.
			p.Latest = maxTime(p.Latest, latest)
			p.Rows += groupRows
			continue
		}
		rows := rg.Rows()
		buf := make([]parquet.Row, 256)
		row := p.Rows
		for {
			k, err := rows.ReadRows(buf)
			for _, r := range buf[:k] {
				if len(r) != len(conv) {
					rows.Close()
					return nil, permanent(ErrTypeBadSample, "backfill: sample %q row %d: %d values for %d columns", l.uri, row, len(r), len(conv))
				}
				if _, ok := sampleKey(conv[keyCol](r[keyCol])); !ok {
					rows.Close()
					return nil, permanent(ErrTypeBadSample, "backfill: sample %q row %d: empty key", l.uri, row)
				}
				t, terr := sampleTime(conv[timeCol](r[timeCol]))
				if terr != nil {
					rows.Close()
					return nil, permanent(ErrTypeBadSample, "backfill: sample %q row %d: %v", l.uri, row, terr)
				}
				if t.After(p.Latest) {
					p.Latest = t
				}
				row++
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				rows.Close()
				return nil, permanent(ErrTypeBadSample, "backfill: sample %q: %v", l.uri, err)
			}
		}
		rows.Close()
		if row-p.Rows != groupRows {
			return nil, permanent(ErrTypeBadSample, "backfill: sample %q: row group %d holds %d rows, says %d", l.uri, g, row-p.Rows, groupRows)
		}
		p.Rows = row
		activity.RecordHeartbeat(ctx, p.Rows)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// openParquetChunk opens a reader of a Parquet chunk's rows.
func (a *Backfill) openParquetChunk(ctx context.Context, l sampleLoc, sc *SampleChunk) (sampleReader, error) {
	ra, closeFile, err := a.parquetReaderAt(ctx, l, sc.Version, sc.Size, footerRange(sc.Size), [2]int64{sc.Offset, sc.End})
	if err != nil {
		return nil, err
	}
	f, err := openParquet(ra, sc.Size, sc.URI)
	if err != nil {
		closeFile()
		return nil, err
	}
	conv, keyCol, timeCol, _, err := parquetColumns(f, sc.URI)
	switch {
	case err != nil:
	case keyCol != sc.KeyCol || timeCol != sc.TimeCol || len(conv) != sc.Columns || len(f.RowGroups()) < sc.FirstGroup+sc.RowGroups:
		err = permanent(ErrTypeSampleChanged, "backfill: sample %q changed since the backfill planned it (its schema or row groups differ)", sc.URI)
	}
	if err != nil {
		closeFile()
		return nil, err
	}
	p := &parquetRows{f: f, closeFile: closeFile, sc: sc, conv: conv, group: sc.FirstGroup, left: sc.Rows, buf: make([]parquet.Row, 0, 512)}
	// The key and time read straight from their values where their
	// converters would make a string or a timestamp (without boxing them).
	fields := f.Schema().Fields()
	p.keyBytes = fields[keyCol].Type().Kind() == parquet.ByteArray
	p.timeUnit = timestampUnit(fields[timeCol].Type())
	return p, nil
}

// timestampUnit returns the nanoseconds of a unit of t's values if t is a
// timestamp stored as an int64, else 0.
func timestampUnit(t parquet.Type) int64 {
	if t.Kind() != parquet.Int64 || t.LogicalType() == nil {
		return 0
	}
	if ts, ok := t.LogicalType().Value.(*format.TimestampType); ok && ts.Unit.Value != nil {
		return int64(ts.Unit.Value.Duration())
	}
	return 0
}

type parquetRows struct {
	f         *parquet.File
	closeFile func() error
	sc        *SampleChunk
	conv      []func(parquet.Value) any
	group     int           // next row group to open
	rows      parquet.Rows  // of the current row group
	buf       []parquet.Row // read, not yet returned: buf[at:]
	at        int
	left      int
	keyBytes  bool  // the key column's values are byte arrays: read as strings
	timeUnit  int64 // the time column's values are timestamps of this unit (ns); 0: by conv
}

func (p *parquetRows) read(row *sampleRow) error {
	if p.left == 0 {
		return io.EOF
	}
	for p.at == len(p.buf) {
		if err := p.fill(); err != nil {
			return err
		}
	}
	r := p.buf[p.at]
	p.at++
	p.left--
	sc := p.sc
	var ok bool
	if kv := r[sc.KeyCol]; p.keyBytes && !kv.IsNull() {
		b := kv.ByteArray()
		row.key, ok = string(b), len(b) > 0
	} else {
		row.key, ok = sampleKey(p.conv[sc.KeyCol](kv))
	}
	n := sc.FirstRow + sc.Rows - p.left - 1 // the row's number in the table
	if !ok {
		return permanent(ErrTypeBadSample, "backfill: sample %q row %d: empty key", sc.URI, n)
	}
	if tv := r[sc.TimeCol]; p.timeUnit != 0 && !tv.IsNull() {
		row.time = unixUnits(tv.Int64(), p.timeUnit)
		if err := checkSampleTime(row.time); err != nil {
			return permanent(ErrTypeBadSample, "backfill: sample %q row %d: %v", sc.URI, n, err)
		}
	} else {
		t, err := sampleTime(p.conv[sc.TimeCol](tv))
		if err != nil {
			return permanent(ErrTypeBadSample, "backfill: sample %q row %d: %v", sc.URI, n, err)
		}
		row.time = t
	}
	row.carry = row.carry[:0]
	for i, v := range r {
		if i != sc.KeyCol && i != sc.TimeCol {
			c := p.conv[i](v)
			if t, ok := c.(time.Time); ok && (t.Year() < 1 || t.Year() > 9999) {
				// Past what JSON (and most readers) can write of a time.
				return permanent(ErrTypeBadSample, "backfill: sample %q row %d: column %q: time %v is outside the years 1 to 9999: cast it first (to a string, say)",
					sc.URI, n, p.f.Schema().Fields()[i].Name(), t)
			}
			row.carry = append(row.carry, c)
		}
	}
	return nil
}

// fill reads the next rows into buf.
func (p *parquetRows) fill() error {
	if p.rows == nil {
		if p.group >= p.sc.FirstGroup+p.sc.RowGroups {
			return permanent(ErrTypeBadSample, "backfill: sample %q, chunk at row %d: %v", p.sc.URI, p.sc.FirstRow, io.ErrUnexpectedEOF)
		}
		p.rows = p.f.RowGroups()[p.group].Rows()
		p.group++
	}
	p.buf, p.at = p.buf[:cap(p.buf)], 0
	n, err := p.rows.ReadRows(p.buf)
	p.buf = p.buf[:n]
	if err == io.EOF {
		p.rows.Close()
		p.rows = nil
		err = nil
	}
	if err != nil {
		return fmt.Errorf("backfill: sample %q, chunk at row %d: %w", p.sc.URI, p.sc.FirstRow, err)
	}
	return nil
}

func (p *parquetRows) close() error {
	if p.rows != nil {
		p.rows.Close()
	}
	return p.closeFile()
}
