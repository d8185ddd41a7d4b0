package tiered

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
)

// segRow is one event as a row of a segment. The column names are part of
// the format that DuckDB and Spark read: never rename them.
type segRow struct {
	Source    string    `parquet:"source,dict"`
	Key       string    `parquet:"key"`
	Time      time.Time `parquet:"time,timestamp(nanosecond)"`
	PosLog    uint64    `parquet:"pos_log"`
	PosOffset uint64    `parquet:"pos_offset"`
	Op        string    `parquet:"op,dict"`
	StoredAt  time.Time `parquet:"stored_at,timestamp(nanosecond)"`
	After     []byte    `parquet:"after,optional"`  // codec.AppendRow; null: no row
	Before    []byte    `parquet:"before,optional"` // codec.AppendRow; null: no row
}

func fromRow(r *segRow) (eventcenter.Event, error) {
	op, err := eventcenter.ParseOp(r.Op)
	if err != nil {
		return eventcenter.Event{}, err
	}
	e := eventcenter.Event{
		Source: r.Source, Key: r.Key, Time: r.Time.UTC(), Pos: eventcenter.Position{Log: r.PosLog, Offset: r.PosOffset},
		Op: op, StoredAt: r.StoredAt.UTC(),
	}
	// AppendRow writes at least one byte: an empty value is a null (no row).
	if len(r.After) > 0 {
		if e.After, _, err = codec.ReadRow(r.After); err != nil {
			return e, err
		}
	}
	if len(r.Before) > 0 {
		if e.Before, _, err = codec.ReadRow(r.Before); err != nil {
			return e, err
		}
	}
	return e, nil
}

// keyOrder is the order of the rows of a segment: key, time, position,
// stored-at. All events of a key are adjacent, oldest first.
func keyOrder(a, b *eventcenter.Event) int {
	if c := cmp.Compare(a.Key, b.Key); c != 0 {
		return c
	}
	if c := a.Time.Compare(b.Time); c != 0 {
		return c
	}
	if c := a.Pos.Compare(b.Pos); c != 0 {
		return c
	}
	return a.StoredAt.Compare(b.StoredAt)
}

// checksum is the SHA-256 of a segment's rows in order, each the
// length-prefixed concatenation of its columns (times and positions as
// 8-byte big-endian integers, rows in their codec encoding), computed from
// the rows written: the manifest keeps it for whoever checks a segment
// later. (Tiering verifies an object read back value by value:
// verifySegment.)
func checksum(rows []segRow) string {
	h := sha256.New()
	var buf []byte
	for i := range rows {
		r := &rows[i]
		buf = buf[:0]
		for _, s := range []string{r.Source, r.Key, r.Op} {
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)))
			buf = append(buf, s...)
		}
		buf = binary.BigEndian.AppendUint64(buf, uint64(r.Time.UnixNano()))
		buf = binary.BigEndian.AppendUint64(buf, r.PosLog)
		buf = binary.BigEndian.AppendUint64(buf, r.PosOffset)
		buf = binary.BigEndian.AppendUint64(buf, uint64(r.StoredAt.UnixNano()))
		for _, b := range [][]byte{r.After, r.Before} {
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(b)))
			buf = append(buf, b...)
		}
		h.Write(buf)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// encodeSegment writes rows (one source, in rowKeyOrder, identities
// unique) as a Parquet object whose row groups hold about groupRows rows
// each, cut only between keys, so that every key's events sit in one row
// group. It returns the object and its manifest entry, without Name and
// Slice.
func encodeSegment(all []segRow, groupRows int) ([]byte, Segment, error) {
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[segRow](&buf, parquet.Compression(&parquet.Zstd), parquet.PageBufferSize(256<<10))
	seg := Segment{Rows: len(all), Checksum: checksum(all)}
	var groups []RowGroup
	start := 0 // of the row group being filled
	flush := func(end int) error {
		if end == start {
			return nil
		}
		if _, err := w.Write(all[start:end]); err != nil {
			return err
		}
		if err := w.Flush(); err != nil {
			return err
		}
		groups = append(groups, RowGroup{Rows: end - start, FirstKey: []byte(all[start].Key), LastKey: []byte(all[end-1].Key)})
		start = end
		return nil
	}
	for i := range all {
		e := &all[i]
		if i-start >= groupRows && e.Key != all[i-1].Key {
			if err := flush(i); err != nil {
				return nil, seg, err
			}
		}
		if i == 0 || e.Time.Before(seg.MinTime) {
			seg.MinTime = e.Time.UTC()
		}
		if e.Time.After(seg.MaxTime) {
			seg.MaxTime = e.Time.UTC()
		}
		if e.StoredAt.After(seg.MaxStoredAt) {
			seg.MaxStoredAt = e.StoredAt.UTC()
		}
	}
	if err := flush(len(all)); err != nil {
		return nil, seg, err
	}
	if err := w.Close(); err != nil {
		return nil, seg, err
	}
	data := buf.Bytes()
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, seg, fmt.Errorf("tiered: reopen the segment just written: %w", err)
	}
	md := f.Metadata()
	if len(md.RowGroups) != len(groups) {
		return nil, seg, fmt.Errorf("tiered: wrote %d row groups, the file has %d", len(groups), len(md.RowGroups))
	}
	for i, rg := range md.RowGroups {
		lo, hi := int64(len(data)), int64(0)
		for _, c := range rg.Columns {
			start := c.MetaData.DataPageOffset
			if d := c.MetaData.DictionaryPageOffset; d > 0 && d < start {
				start = d
			}
			lo, hi = min(lo, start), max(hi, start+c.MetaData.TotalCompressedSize)
		}
		groups[i].Offset, groups[i].Length = lo, hi-lo
	}
	seg.Size = int64(len(data))
	seg.FooterLen = footerLen(data)
	seg.RowGroups = groups
	if len(all) > 0 {
		seg.MinKey, seg.MaxKey = []byte(all[0].Key), []byte(all[len(all)-1].Key)
	}
	return data, seg, nil
}

// footerLen is the length of a Parquet object's tail that OpenFile reads:
// the footer, its length and the magic bytes.
func footerLen(data []byte) int64 {
	n := len(data)
	l := int64(data[n-8]) | int64(data[n-7])<<8 | int64(data[n-6])<<16 | int64(data[n-5])<<24
	return l + 8
}

// verifySegment checks that the Parquet object data holds exactly rows, in
// order: the same number of rows, and in every column every row's value
// equal to the row's field (a null or empty value where the row has no
// After or Before row). It reads the values straight from each column's
// pages, rebuilding no rows: a full comparison at a fraction of the cost of
// reading the rows back.
func verifySegment(data []byte, rows []segRow) error {
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return err
	}
	if f.NumRows() != int64(len(rows)) {
		return fmt.Errorf("%d rows, want %d", f.NumRows(), len(rows))
	}
	leaves := f.Schema().Columns()
	same := make([]func(*segRow, *parquet.Value) bool, len(leaves))
	for i, path := range leaves {
		if len(path) != 1 || segColumns[path[0]] == nil {
			return fmt.Errorf("unexpected column %v", path)
		}
		same[i] = segColumns[path[0]]
	}
	base := 0 // the first row of the row group
	for _, rg := range f.RowGroups() {
		n := int(rg.NumRows())
		if base+n > len(rows) {
			return fmt.Errorf("row groups hold more than %d rows", len(rows))
		}
		for c, chunk := range rg.ColumnChunks() {
			got, err := compareColumn(chunk, rows[base:base+n], same[c])
			if err != nil {
				return fmt.Errorf("column %s: %w", leaves[c][0], err)
			}
			if got != n {
				return fmt.Errorf("column %s: %d values in a row group of %d rows", leaves[c][0], got, n)
			}
		}
		base += n
	}
	if base != len(rows) {
		return fmt.Errorf("row groups hold %d rows, want %d", base, len(rows))
	}
	return nil
}

// compareColumn compares the values of one column chunk with rows, in
// order, and returns how many values it read.
func compareColumn(chunk parquet.ColumnChunk, rows []segRow, same func(*segRow, *parquet.Value) bool) (int, error) {
	i := 0
	var differs error
	err := eachValue(chunk, func(v *parquet.Value) bool {
		switch {
		case i >= len(rows):
			differs = errors.New("more values than rows")
		case !same(&rows[i], v):
			differs = fmt.Errorf("row %d differs", i)
		default:
			i++
			return true
		}
		return false
	})
	if err == nil {
		err = differs
	}
	return i, err
}

// eachValue calls fn with the values of chunk in order, page by page,
// until fn returns false. A value is valid only during its call.
func eachValue(chunk parquet.ColumnChunk, fn func(*parquet.Value) bool) error {
	pages := chunk.Pages()
	defer pages.Close()
	values := make([]parquet.Value, 256)
	for {
		p, err := pages.ReadPage()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		more, err := eachPageValue(p, values, fn)
		parquet.Release(p)
		if err != nil || !more {
			return err
		}
	}
}

// eachPageValue is eachValue for one page, read through values; it
// returns whether fn asked for more.
func eachPageValue(p parquet.Page, values []parquet.Value, fn func(*parquet.Value) bool) (bool, error) {
	r := p.Values()
	for {
		n, err := r.ReadValues(values)
		for i := range values[:n] {
			if !fn(&values[i]) {
				return false, nil
			}
		}
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
}

// segColumns compares a value read from a segment's column with the
// field of a row it must hold, by column name.
var segColumns = map[string]func(*segRow, *parquet.Value) bool{
	"source":     func(r *segRow, v *parquet.Value) bool { return !v.IsNull() && string(v.ByteArray()) == r.Source },
	"key":        func(r *segRow, v *parquet.Value) bool { return !v.IsNull() && string(v.ByteArray()) == r.Key },
	"time":       func(r *segRow, v *parquet.Value) bool { return !v.IsNull() && v.Int64() == r.Time.UnixNano() },
	"pos_log":    func(r *segRow, v *parquet.Value) bool { return !v.IsNull() && v.Uint64() == r.PosLog },
	"pos_offset": func(r *segRow, v *parquet.Value) bool { return !v.IsNull() && v.Uint64() == r.PosOffset },
	"op":         func(r *segRow, v *parquet.Value) bool { return !v.IsNull() && string(v.ByteArray()) == r.Op },
	"stored_at":  func(r *segRow, v *parquet.Value) bool { return !v.IsNull() && v.Int64() == r.StoredAt.UnixNano() },
	"after":      func(r *segRow, v *parquet.Value) bool { return sameBytes(r.After, v) },
	"before":     func(r *segRow, v *parquet.Value) bool { return sameBytes(r.Before, v) },
}

// sameBytes: v holds b's bytes. A null and an empty value both stand for
// no row (b empty): the writer may write either for a nil slice, and a
// row's encoding is never empty (see fromRow).
func sameBytes(b []byte, v *parquet.Value) bool {
	if v.IsNull() {
		return len(b) == 0
	}
	return bytes.Equal(v.ByteArray(), b)
}

// segmentRows reads every row of a whole segment object, in its order.
func segmentRows(data []byte) ([]segRow, error) {
	return parquet.Read[segRow](bytes.NewReader(data), int64(len(data)))
}

// readAll reads every row r has left.
func readAll(r *parquet.GenericReader[segRow]) ([]segRow, error) {
	rows := make([]segRow, r.NumRows())
	n, err := r.Read(rows)
	if err != nil && err != io.EOF {
		return nil, err
	}
	return rows[:n], nil
}

// rowKeyOrder is keyOrder on segment rows.
func rowKeyOrder(a, b *segRow) int {
	if c := cmp.Compare(a.Key, b.Key); c != 0 {
		return c
	}
	if c := a.Time.Compare(b.Time); c != 0 {
		return c
	}
	if c := cmp.Compare(a.PosLog, b.PosLog); c != 0 {
		return c
	}
	if c := cmp.Compare(a.PosOffset, b.PosOffset); c != 0 {
		return c
	}
	return a.StoredAt.Compare(b.StoredAt)
}

// sameRowID reports whether two rows of one source are one event's.
func sameRowID(a, b *segRow) bool {
	return a.Key == b.Key && a.Time.Equal(b.Time) && a.PosLog == b.PosLog && a.PosOffset == b.PosOffset
}
