package correction

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/tidemark-dev/tidemark/cdc"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
	"github.com/tidemark-dev/tidemark/source"
)

// ErrNoSnapshotPosition: the server did not report the binlog position of a
// consistent snapshot (not MariaDB, or binary logging is off).
var ErrNoSnapshotPosition = errors.New("correction: the server reports no binlog position for a consistent snapshot (MariaDB with log_bin is required)")

// Open connects to the MySQL server the way the correction reads it: the
// text protocol (interpolateParams, so values come back as MySQL prints
// them, which is what cdc.ValueFromText reads) and no default database.
func Open(addr, user, password string) (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr, cfg.User, cfg.Passwd = "tcp", addr, user, password
	cfg.InterpolateParams = true
	return sql.Open("mysql", cfg.FormatDSN())
}

// DSNParams are the parameters Open sets, for a DSN written by hand.
var DSNParams = url.Values{"interpolateParams": {"true"}}.Encode()

// Chunk is one part of a table, read in one consistent snapshot: the keys
// in [From, To) in key order (a nil bound is open), or, if Keys is not nil,
// exactly those keys. Bounds and keys are key tuples as MySQL prints the
// key columns' values, so a chunk is plain data (a Temporal payload).
type Chunk struct {
	Index int        `json:"index"`
	From  [][]byte   `json:"from,omitempty"`
	To    [][]byte   `json:"to,omitempty"`
	Keys  [][][]byte `json:"keys,omitempty"`
	// Rows is the rows a range chunk was planned for, which it counts
	// against Options.InFlightRows (0: the Corrector's ChunkRows). The
	// plan leaves it 0 (the workflow's state holds its chunks); the
	// Correction activity sets its run's chunk rows.
	Rows int `json:"rows,omitempty"`
	// Archive, if set, is the object the chunk's rows are archived as
	// (see Options.Archive).
	Archive string `json:"archive,omitempty"`
	// Since is the start of the run: a correction stored at or after it
	// was written by an earlier attempt of this chunk (see Corrector.Chunk).
	// Zero: none is.
	Since time.Time `json:"since,omitzero"`
	// Resume is the point of an earlier attempt of the chunk that died
	// (nil: none): the corrections of keys unchanged since are written at
	// it, with the identities that attempt gave them (see Corrector.Chunk).
	Resume *Point `json:"resume,omitempty"`
}

// Point is where a chunk was read: the binlog coordinate of its snapshot
// and the event center position and time that stand for it.
type Point struct {
	File   string               `json:"file"`
	Offset uint64               `json:"offset"` // the binlog position
	Pos    eventcenter.Position `json:"pos"`    // {file sequence, Offset<<16}
	Time   time.Time            `json:"time"`   // the server's UTC clock inside the snapshot
}

func (p Point) String() string {
	return fmt.Sprintf("%s:%d (%v)", p.File, p.Offset, p.Time.Format(time.RFC3339Nano))
}

// mysqlRow is one row as a chunk read it: its event key, the hash of its
// encoding (the encoding of the row the CDC types it as: see rowText), and
// its values as MySQL printed them. Its typed values are made only for a
// key that takes the exact path, or for the archive (typed).
type mysqlRow struct {
	key    string
	sum    uint64      // encodedSum of the row's encoding, if hashed
	hashed bool        // false: a value the codec cannot write (never taken as in sync)
	texts  *chunkTexts // the chunk's values: this row's from cell on, in the table's column order
	cell   int
	vals   []any // typed, in name order (rowShape); nil until typed
}

// chunkBuf is what a chunk reads MySQL into. A Corrector keeps them for
// the next chunks (Corrector.bufs): growing a chunk's buffers anew took a
// tenth of a correction's CPU.
type chunkBuf struct {
	texts chunkTexts
	rows  []mysqlRow
	hits  []indexHit // the rows' keys in the index
}

// bufSize is what a chunkBuf held: the size a new one starts at, so that
// it does not grow (copying) row by row.
type bufSize struct{ rows, values, bytes int }

func (b *chunkBuf) size() bufSize {
	return bufSize{len(b.rows), len(b.texts.ends), len(b.texts.data)}
}

func (s bufSize) make() *chunkBuf {
	return &chunkBuf{rows: make([]mysqlRow, 0, s.rows+s.rows/8),
		texts: chunkTexts{data: make([]byte, 0, s.bytes+s.bytes/8), ends: make([]uint64, 0, s.values+s.values/8)}}
}

// chunkTexts holds a chunk's values as MySQL printed them, end to end, so
// that the collector has no pointer per value to scan and the reader no
// allocation per value to make.
type chunkTexts struct {
	data []byte   // never nil: a value of no bytes is not NULL
	ends []uint64 // per value: its end in data, nullEnd set for NULL
}

const nullEnd = 1 << 63

func (x *chunkTexts) add(b []byte) {
	x.data = append(x.data, b...)
	end := uint64(len(x.data))
	if b == nil {
		end |= nullEnd
	}
	x.ends = append(x.ends, end)
}

// value returns value i (nil: NULL).
func (x *chunkTexts) value(i int) []byte {
	end := x.ends[i]
	if end&nullEnd != 0 {
		return nil
	}
	start := uint64(0)
	if i > 0 {
		start = x.ends[i-1] &^ nullEnd
	}
	return x.data[start:end:end]
}

// typed types the row's values (cdc.ValueFromText), once.
func (r *mysqlRow) typed(t *cdc.Table, s *rowShape, zone *time.Location) error {
	if r.vals != nil {
		return nil
	}
	vals := make([]any, len(t.Columns))
	for i := range t.Columns {
		c := &t.Columns[i]
		v, err := cdc.ValueFromText(c, r.texts.value(r.cell+i), zone)
		if err != nil {
			return fmt.Errorf("correction: %s.%s column %s: %w", t.Database, t.Name, c.Name, err)
		}
		vals[s.place[i]] = v
	}
	r.vals = vals
	return nil
}

// row returns r, typed, as an event row.
func (r *mysqlRow) row(s *rowShape) eventcenter.Row {
	row := make(eventcenter.Row, len(s.names))
	for i, name := range s.names {
		row[name] = r.vals[i]
	}
	return row
}

// rowShape is a table's columns in name order: where a mysqlRow holds
// each column's value.
type rowShape struct {
	names []string // the column names, sorted
	place []int    // place[i]: the place of t.Columns[i] in names
	order []int    // order[j]: the column (of t.Columns) of names[j]
}

func shapeOf(t *cdc.Table) rowShape {
	s := rowShape{place: make([]int, len(t.Columns)), order: make([]int, len(t.Columns))}
	for _, c := range t.Columns {
		s.names = append(s.names, c.Name)
	}
	slices.Sort(s.names)
	for i, c := range t.Columns {
		s.place[i], _ = slices.BinarySearch(s.names, c.Name)
		s.order[s.place[i]] = i
	}
	return s
}

// rowText appends to enc the encoding of the row whose values MySQL
// printed as text (in the table's column order): the bytes codec.AppendRow
// writes for the row cdc.ValueFromText types them as, made straight from
// the text (cdc.AppendValueText). ok is false if the codec cannot write a
// value; err is ValueFromText's.
func rowText(enc []byte, t *cdc.Table, s *rowShape, text [][]byte, zone *time.Location) (_ []byte, ok bool, err error) {
	enc = codec.AppendRowHeader(enc, len(s.names))
	ok = true
	for j, name := range s.names {
		i := s.order[j]
		enc = codec.AppendColumnName(enc, name)
		var valueOK bool
		if enc, valueOK, err = cdc.AppendValueText(enc, &t.Columns[i], text[i], zone); err != nil {
			return enc, false, fmt.Errorf("correction: %s.%s column %s: %w", t.Database, t.Name, t.Columns[i].Name, err)
		}
		ok = ok && valueOK
	}
	return enc, ok, nil
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func qualified(t *cdc.Table) string { return quoteIdent(t.Database) + "." + quoteIdent(t.Name) }

func keyList(t *cdc.Table) string {
	cols := make([]string, len(t.Key))
	for i, k := range t.Key {
		cols[i] = quoteIdent(t.Columns[k].Name)
	}
	return strings.Join(cols, ", ")
}

// param makes a SQL operand for a key column's value as MySQL prints it,
// typed so that MySQL compares it as the column's type (and collation).
// ordered: the operand of a range bound (>=, <), not of an equality.
func param(c *cdc.Column, text []byte, ordered bool) (string, any, error) {
	switch c.DataType {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "bool", "boolean", "year":
		if c.Unsigned {
			u, err := strconv.ParseUint(string(text), 10, 64)
			return "?", u, err
		}
		n, err := strconv.ParseInt(string(text), 10, 64)
		return "?", n, err
	case "bit":
		var n uint64
		for _, b := range text {
			n = n<<8 | uint64(b)
		}
		return "?", n, nil
	case "decimal", "numeric":
		// Inlined as an exact-value literal: a string operand would be
		// compared as a double.
		for _, b := range text {
			if (b < '0' || b > '9') && b != '.' && b != '-' {
				return "", nil, fmt.Errorf("correction: column %s: %q is not a decimal", c.Name, text)
			}
		}
		return string(text), nil, nil
	case "enum", "set":
		if ordered {
			// By number: MySQL orders ENUM and SET columns by their
			// members' numbers (an ENUM's position, a SET's bits), and a
			// string operand would compare their text instead, so a
			// chunk's range would not be the range of the key order.
			// (An equality compares the text, under the column's
			// collation: a value no member has then matches no row.)
			n, err := memberNumber(c, string(text))
			return "?", n, err
		}
	}
	if bytes.Contains([]byte(c.DataType), []byte("binary")) || strings.HasSuffix(c.DataType, "blob") {
		return "?", bytes.Clone(text), nil
	}
	return "?", string(text), nil
}

// memberNumber is the number MySQL stores for an ENUM or SET column's
// value as it prints it: an ENUM member's position from 1 (an empty value
// that is not a member: 0, MySQL's invalid value), a SET's bits, one per
// member, in declaration order.
func memberNumber(c *cdc.Column, text string) (uint64, error) {
	find := func(v string) (int, error) {
		if i := slices.Index(c.Values, v); i >= 0 {
			return i, nil
		}
		for i, m := range c.Values {
			if strings.EqualFold(m, v) {
				return i, nil
			}
		}
		return 0, fmt.Errorf("correction: column %s: %q is not one of its members %q", c.Name, v, c.Values)
	}
	if text == "" && !slices.Contains(c.Values, "") {
		return 0, nil
	}
	if c.DataType == "enum" {
		i, err := find(text)
		return uint64(i + 1), err
	}
	var bits uint64
	for _, v := range strings.Split(text, ",") {
		i, err := find(v)
		if err != nil {
			return 0, err
		}
		bits |= 1 << i
	}
	return bits, nil
}

// tupleCompare builds "(k1, …, kn) op (v1, …, vn)" for op ">=" or "<" as
// nested comparisons MySQL can use a range scan of the key for.
func tupleCompare(t *cdc.Table, op string, vals [][]byte, args *[]any) (string, error) {
	if len(vals) != len(t.Key) {
		return "", fmt.Errorf("correction: a bound of %d values for a key of %d columns", len(vals), len(t.Key))
	}
	strict := ">"
	if op == "<" {
		strict = "<"
	}
	var build func(i int) (string, error)
	build = func(i int) (string, error) {
		c := &t.Columns[t.Key[i]]
		ph, arg, err := param(c, vals[i], true)
		if err != nil {
			return "", err
		}
		col := quoteIdent(c.Name)
		compare := func(op string) string {
			if in, ok := enumRange(c, op, arg); ok {
				return in
			}
			if arg != nil {
				*args = append(*args, arg)
			}
			return col + " " + op + " " + ph
		}
		if i == len(vals)-1 {
			return compare(op), nil
		}
		first := compare(strict)
		if arg != nil {
			*args = append(*args, arg)
		}
		rest, err := build(i + 1)
		if err != nil {
			return "", err
		}
		return "(" + first + " OR (" + col + " = " + ph + " AND " + rest + "))", nil
	}
	return build(0)
}

// enumRange writes "col op n" of an ENUM column c as "col IN (…)" of the
// member numbers it holds (0, MySQL's invalid value, among those below
// any), which MariaDB reads as a range of the key, where it scans the
// whole index for a comparison. ok is false for other columns and for an
// ENUM of more than 64 members.
func enumRange(c *cdc.Column, op string, arg any) (in string, ok bool) {
	n, isNumber := arg.(uint64)
	if c.DataType != "enum" || !isNumber || len(c.Values) > 64 {
		return "", false
	}
	var from, to uint64 // the numbers in [from, to]
	switch op {
	case ">":
		from, to = n+1, uint64(len(c.Values))
	case ">=":
		from, to = n, uint64(len(c.Values))
	case "<":
		if n == 0 {
			return "FALSE", true
		}
		from, to = 0, n-1
	default:
		return "", false
	}
	if from > to {
		return "FALSE", true
	}
	nums := make([]string, 0, to-from+1)
	for v := from; v <= to; v++ {
		nums = append(nums, strconv.FormatUint(v, 10))
	}
	return quoteIdent(c.Name) + " IN (" + strings.Join(nums, ", ") + ")", true
}

// where returns the chunk's condition and its arguments.
func (ch *Chunk) where(t *cdc.Table) (string, []any, error) {
	var args []any
	if ch.Keys != nil {
		if len(ch.Keys) == 0 {
			return "FALSE", nil, nil
		}
		var or []string
		for _, k := range ch.Keys {
			if len(k) != len(t.Key) {
				return "", nil, fmt.Errorf("correction: a key of %d values for a key of %d columns", len(k), len(t.Key))
			}
			var and []string
			for i, v := range k {
				c := &t.Columns[t.Key[i]]
				ph, arg, err := param(c, v, false)
				if err != nil {
					return "", nil, err
				}
				if arg != nil {
					args = append(args, arg)
				}
				and = append(and, quoteIdent(c.Name)+" = "+ph)
			}
			or = append(or, "("+strings.Join(and, " AND ")+")")
		}
		return strings.Join(or, " OR "), args, nil
	}
	conds := []string{"TRUE"}
	if ch.From != nil {
		c, err := tupleCompare(t, ">=", ch.From, &args)
		if err != nil {
			return "", nil, err
		}
		conds = append(conds, c)
	}
	if ch.To != nil {
		c, err := tupleCompare(t, "<", ch.To, &args)
		if err != nil {
			return "", nil, err
		}
		conds = append(conds, c)
	}
	return strings.Join(conds, " AND "), args, nil
}

// DefaultChunkRows is the rows of a range chunk that Plan and PlanPage
// plan when asked for none, and a Corrector's and the Correction
// workflow's default. Through Temporal a chunk is an activity, which cost
// the worker's process (an in-process server's share included) ~4 ms of
// CPU here: at 10 000 rows a chunk that was a fifth of a correction's CPU,
// at 50 000 a twentieth (bench/README.md). A chunk's read stays short (a
// few tens of ms of MariaDB's time) and its Parquet object a fair size
// for DuckDB or Spark; a worker's rows held at once are bounded in rows,
// not chunks (Options.InFlightRows).
const DefaultChunkRows = 50_000

// Plan cuts the table into range chunks of about rows rows (default DefaultChunkRows)
// by reading its key columns once, in key order (one statement, no
// transaction held). The chunks cover every key, now and later: the first
// starts at the table's start, the last ends at its end.
func Plan(ctx context.Context, db *sql.DB, t *cdc.Table, rows int) ([]Chunk, error) {
	chunks, _, err := PlanPage(ctx, db, t, rows, Page{})
	return chunks, err
}

// Page is where a page of a table's plan starts: at key From (nil: the
// table's start) with chunk index First, and how many chunks it holds at
// most (Chunks; 0: all the rest).
type Page struct {
	From   [][]byte `json:"from,omitempty"`
	First  int      `json:"first,omitempty"`
	Chunks int      `json:"chunks,omitempty"`
}

// MaxPageBytes bounds the key bytes of a page's chunk bounds: a page of
// long keys holds fewer chunks, so that it stays small as an activity's
// result and in the workflow's state.
const MaxPageBytes = 64 << 10

var errPageFull = errors.New("correction: page full")

// PlanPage cuts the part of the table from p.From on into at most p.Chunks
// range chunks of about rows rows (fewer if their bounds' keys exceed
// MaxPageBytes), as Plan does, reading at most p.Chunks × rows + 1 keys
// (one statement). If more of the table is left,
// next is where the next page starts (the last chunk's To); nil: the last
// chunk ends at the table's end. The pages of a table, planned one after
// another, cover every key exactly once, as Plan's chunks do, however the
// table changes between them.
func PlanPage(ctx context.Context, db *sql.DB, t *cdc.Table, rows int, p Page) (chunks []Chunk, next [][]byte, err error) {
	if rows <= 0 {
		rows = DefaultChunkRows
	}
	limit := 0
	if p.Chunks > 0 {
		limit = p.Chunks*rows + 1
	}
	var bounds [][][]byte
	n, size, full := 0, 0, false
	err = scanKeysFrom(ctx, db, t, p.From, limit, func(key [][]byte) error {
		if n > 0 && n%rows == 0 {
			bounds = append(bounds, cloneTuple(key))
			for _, v := range key {
				size += len(v)
			}
			if p.Chunks > 0 && (len(bounds) == p.Chunks || size >= MaxPageBytes) {
				full = true
				return errPageFull
			}
		}
		n++
		return nil
	})
	if err != nil && !errors.Is(err, errPageFull) {
		return nil, nil, err
	}
	count := len(bounds) + 1 // the last ends at the table's end
	if full {
		next = bounds[len(bounds)-1]
		count-- // the last ends at next
	}
	chunks = make([]Chunk, count)
	for i := range chunks {
		chunks[i].Index = p.First + i
		if i > 0 {
			chunks[i].From = bounds[i-1]
		} else {
			chunks[i].From = p.From
		}
		if i < len(bounds) {
			chunks[i].To = bounds[i]
		}
	}
	return chunks, next, nil
}

func cloneTuple(k [][]byte) [][]byte {
	out := make([][]byte, len(k))
	for i, v := range k {
		out[i] = bytes.Clone(v)
	}
	return out
}

// scanKeys calls fn with the key tuple of every row, in key order. The
// tuple is valid only during the call.
func scanKeys(ctx context.Context, db *sql.DB, t *cdc.Table, fn func([][]byte) error) error {
	return scanKeysFrom(ctx, db, t, nil, 0, fn)
}

// scanKeysFrom is scanKeys of the keys at or after from (nil: all), at
// most limit of them (0: no limit).
func scanKeysFrom(ctx context.Context, db *sql.DB, t *cdc.Table, from [][]byte, limit int, fn func([][]byte) error) error {
	q := "SELECT " + keyList(t) + " FROM " + qualified(t)
	var args []any
	if from != nil {
		c, err := tupleCompare(t, ">=", from, &args)
		if err != nil {
			return err
		}
		q += " WHERE " + c
	}
	q += " ORDER BY " + keyList(t)
	if limit > 0 {
		q += " LIMIT " + strconv.Itoa(limit)
	}
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("correction: reading the keys of %s.%s: %w", t.Database, t.Name, err)
	}
	defer rows.Close()
	raw := make([]sql.RawBytes, len(t.Key))
	ptrs := make([]any, len(raw))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	key := make([][]byte, len(raw))
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		for i := range raw {
			key[i] = raw[i]
		}
		if err := fn(key); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("correction: reading the keys of %s.%s: %w", t.Database, t.Name, err)
	}
	return nil
}

// readChunk reads the chunk's rows in one consistent snapshot and returns
// them, in key order, with the snapshot's point. zone reads DATETIME and
// DATE, as the CDC's Zone.
func readChunk(ctx context.Context, db *sql.DB, t *cdc.Table, ch *Chunk, zone *time.Location, buf *chunkBuf) (Point, []mysqlRow, error) {
	cond, args, err := ch.where(t)
	if err != nil {
		return Point{}, nil, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return Point{}, nil, err
	}
	defer conn.Close()
	for _, q := range []string{"SET time_zone = '+00:00'", "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
		"START TRANSACTION WITH CONSISTENT SNAPSHOT"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return Point{}, nil, fmt.Errorf("correction: %s: %w", q, err)
		}
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK") // read only: nothing to commit

	var p Point
	st, err := conn.QueryContext(ctx, "SHOW STATUS LIKE 'binlog_snapshot_%'")
	if err != nil {
		return Point{}, nil, err
	}
	for st.Next() {
		var name, value string
		if err := st.Scan(&name, &value); err != nil {
			st.Close()
			return Point{}, nil, err
		}
		switch strings.ToLower(name) {
		case "binlog_snapshot_file":
			p.File = value
		case "binlog_snapshot_position":
			p.Offset, _ = strconv.ParseUint(value, 10, 64)
		}
	}
	if err := st.Close(); err != nil {
		return Point{}, nil, err
	}
	if p.File == "" || p.Offset == 0 {
		return Point{}, nil, ErrNoSnapshotPosition
	}
	seq, err := fileSeq(p.File)
	if err != nil {
		return Point{}, nil, err
	}
	p.Pos = eventcenter.Position{Log: seq, Offset: p.Offset << 16}
	if p.Time, err = serverTime(ctx, conn); err != nil {
		return Point{}, nil, err
	}

	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = quoteIdent(c.Name)
	}
	q := "SELECT " + strings.Join(cols, ", ") + " FROM " + qualified(t) + " WHERE " + cond + " ORDER BY " + keyList(t)
	rows, err := conn.QueryContext(ctx, q, args...)
	if err != nil {
		return Point{}, nil, fmt.Errorf("correction: reading %s.%s: %w", t.Database, t.Name, err)
	}
	defer rows.Close()
	raw := make([]sql.RawBytes, len(t.Columns))
	ptrs := make([]any, len(raw))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	var (
		out   = buf.rows[:0]
		texts = &buf.texts
		enc   []byte
	)
	if texts.data == nil {
		texts.data = []byte{}
	}
	texts.data, texts.ends = texts.data[:0], texts.ends[:0]
	defer func() { buf.rows = out }()
	shape := shapeOf(t)
	keyVals := make([]any, len(t.Key))
	intKey := len(t.Key) == 1 && integerType(t.Columns[t.Key[0]].DataType)
	view := make([][]byte, len(raw))
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return Point{}, nil, err
		}
		for i, b := range raw {
			view[i] = b
		}
		var r mysqlRow
		var err error
		if enc, r.hashed, err = rowText(enc[:0], t, &shape, view, zone); err != nil {
			return Point{}, nil, err
		}
		r.sum = encodedSum(enc)
		if r.key, err = rowKey(t, raw, keyVals, intKey, zone); err != nil {
			return Point{}, nil, err
		}
		r.texts, r.cell = texts, len(texts.ends)
		for _, b := range view {
			texts.add(b)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return Point{}, nil, fmt.Errorf("correction: reading %s.%s: %w", t.Database, t.Name, err)
	}
	return p, out, nil
}

// rowKey returns the event key of a row MySQL printed as raw: the CDC's
// (source.RowKey of the key columns' values), or, for a key of one integer
// column (intKey) printed in canonical decimal, that text, which is what
// typing and printing it again would make. keyVals has a place per key
// column.
func rowKey(t *cdc.Table, raw []sql.RawBytes, keyVals []any, intKey bool, zone *time.Location) (string, error) {
	if intKey {
		if text := raw[t.Key[0]]; canonicalInt(text, t.Columns[t.Key[0]].Unsigned) {
			return string(text), nil
		}
	}
	for i, k := range t.Key {
		var err error
		if keyVals[i], err = cdc.ValueFromText(&t.Columns[k], raw[k], zone); err != nil {
			return "", err
		}
	}
	return source.RowKey(keyVals...)
}

// integerType reports whether MySQL's data type is one the CDC types as an
// integer (cdc.ValueFromText).
func integerType(dataType string) bool {
	switch dataType {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "bool", "boolean", "year":
		return true
	}
	return false
}

// canonicalInt reports whether b is an integer in canonical decimal that
// the column's type holds: an optional minus (signed only), then digits
// without a leading zero (0 alone), in int64's range (uint64's if
// unsigned). A ZEROFILL column's 007 is not.
func canonicalInt(b []byte, unsigned bool) bool {
	limit := "9223372036854775807"
	switch {
	case unsigned:
		limit = "18446744073709551615"
	case len(b) > 0 && b[0] == '-':
		b, limit = b[1:], "9223372036854775808"
		if len(b) > 0 && b[0] == '0' {
			return false // -0
		}
	}
	if len(b) == 0 || len(b) > len(limit) || b[0] == '0' && len(b) > 1 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) < len(limit) || string(b) <= limit
}

// serverTime returns MySQL's UTC clock (inside a snapshot if q holds one).
func serverTime(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (time.Time, error) {
	var now string
	if err := q.QueryRowContext(ctx, "SELECT UTC_TIMESTAMP(6)").Scan(&now); err != nil {
		return time.Time{}, err
	}
	t, err := time.ParseInLocation("2006-01-02 15:04:05.999999", now, time.UTC)
	if err != nil {
		return time.Time{}, fmt.Errorf("correction: server time %q: %w", now, err)
	}
	return t, nil
}

// fileSeq is the sequence number of a binlog file name, as the CDC's.
func fileSeq(name string) (uint64, error) {
	i := strings.LastIndexByte(name, '.')
	n, err := strconv.ParseUint(name[i+1:], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("correction: binlog file %q has no sequence number", name)
	}
	return n, nil
}
