package activities

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"go.temporal.io/sdk/activity"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
	"github.com/tidemark-dev/tidemark/params"
)

const (
	// DefaultChunkRows is the number of sample rows per chunk when a plan
	// is given neither rows per chunk nor a number of chunks, and the
	// share a sized plan aims at least (see sizedChunkRows).
	DefaultChunkRows = 10_000
	// MaxSizedChunkRows is the share a sized plan aims at most, and the
	// most rows a sized chunk holds but for a Parquet row group larger
	// than that (never split): a chunk's output object and its retry stay
	// small.
	MaxSizedChunkRows = 100_000
)

// sizedChunkRows is the share of a table of rows that cuts it into about
// chunks chunks, from DefaultChunkRows to MaxSizedChunkRows. A CSV plan
// then joins its chunks of DefaultChunkRows k at a time (joinBy), a Parquet
// plan its row groups (planParquet), so a chunk holds about the share.
// Each chunk is an activity whose cost to Temporal (~10 ms of CPU) and
// whose object are paid per chunk, so a small table at a low parallelism
// gets few large chunks instead of many of 10 000 rows.
func sizedChunkRows(rows, chunks int) int {
	per := (rows + max(chunks, 1) - 1) / max(chunks, 1)
	return min(max(per, DefaultChunkRows), MaxSizedChunkRows)
}

// sizedChunks is the number of chunks of sizedChunkRows rows a table of
// rows is cut into (at least one).
func sizedChunks(rows, chunks int) int {
	per := sizedChunkRows(rows, chunks)
	return max((rows+per-1)/per, 1)
}

// sampleLoc is where a sample table is: a local path or an S3 object.
type sampleLoc struct {
	uri         string
	path        string // local
	bucket, key string // S3
}

func (a *Backfill) locate(uri string) (sampleLoc, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return sampleLoc{}, permanent(ErrTypeBadSample, "backfill: sample %q: %v", uri, err)
	}
	switch u.Scheme {
	case "":
		return sampleLoc{uri: uri, path: filepath.FromSlash(uri)}, nil
	case "file":
		return sampleLoc{uri: uri, path: filepath.FromSlash(u.Path)}, nil
	case "s3":
		if a.S3 == nil {
			return sampleLoc{}, permanent(ErrTypeBadSample, "backfill: sample %q: this worker has no S3 client", uri)
		}
		return sampleLoc{uri: uri, bucket: u.Host, key: strings.TrimPrefix(u.Path, "/")}, nil
	}
	return sampleLoc{}, permanent(ErrTypeBadSample, "backfill: sample %q: want a path, file:///path or s3://bucket/key", uri)
}

// fileVersion pins a local table: its modification time and size.
func fileVersion(fi os.FileInfo) string {
	return fmt.Sprintf("mtime=%d size=%d", fi.ModTime().UnixNano(), fi.Size())
}

// version returns the table's current version (see SamplePlan.Version)
// and size.
func (a *Backfill) version(ctx context.Context, l sampleLoc) (string, int64, error) {
	if l.bucket == "" {
		fi, err := os.Stat(l.path)
		if errors.Is(err, os.ErrNotExist) {
			return "", 0, permanent(ErrTypeBadSample, "backfill: sample %q: %v", l.uri, err)
		}
		if err != nil {
			return "", 0, err
		}
		return fileVersion(fi), fi.Size(), nil
	}
	head, err := a.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(l.bucket), Key: aws.String(l.key)})
	if err != nil {
		return "", 0, fmt.Errorf("backfill: sample %q: %w", l.uri, err)
	}
	return aws.ToString(head.ETag), aws.ToInt64(head.ContentLength), nil
}

func sampleChanged(l sampleLoc, version, now string) error {
	return permanent(ErrTypeSampleChanged, "backfill: sample %q changed since the backfill planned it (version %s, now %s): a table replaced mid-backfill would mix two tables; start the backfill again",
		l.uri, version, now)
}

// openLocal opens a local table, failing with ErrTypeSampleChanged if it
// is not version (when version is set).
func openLocal(l sampleLoc, version string) (*os.File, os.FileInfo, error) {
	f, err := os.Open(l.path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, permanent(ErrTypeBadSample, "backfill: sample %q: %v", l.uri, err)
		}
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if now := fileVersion(fi); version != "" && now != version {
		f.Close()
		return nil, nil, sampleChanged(l, version, now)
	}
	return f, fi, nil
}

// openSample opens bytes [offset, end) of the sample table (to its end if
// end is 0), failing with ErrTypeSampleChanged if the table is not version
// (when version is set). On S3 it is one ranged GET, conditional on the
// ETag; a local file is checked by modification time and size.
func (a *Backfill) openSample(ctx context.Context, l sampleLoc, version string, offset, end int64) (io.ReadCloser, error) {
	if l.bucket == "" {
		f, fi, err := openLocal(l, version)
		if err != nil {
			return nil, err
		}
		n := fi.Size() - offset
		if end > 0 {
			n = end - offset
		}
		return struct {
			io.Reader
			io.Closer
		}{io.NewSectionReader(f, offset, n), f}, nil
	}
	in := &s3.GetObjectInput{Bucket: aws.String(l.bucket), Key: aws.String(l.key)}
	if version != "" {
		in.IfMatch = aws.String(version)
	}
	switch {
	case end > offset:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", offset, end-1))
	case offset > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", offset))
	}
	out, err := a.S3.GetObject(ctx, in)
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && (ae.ErrorCode() == "PreconditionFailed" || ae.ErrorCode() == "412") {
			now, _, _ := a.version(ctx, l)
			return nil, sampleChanged(l, version, now)
		}
		return nil, fmt.Errorf("backfill: sample %q: %w", l.uri, err)
	}
	return out.Body, nil
}

// isParquet reports whether a sample table's URI names a Parquet file
// (by its extension, .parquet or .pq; planSample also reads the first bytes
// of a table named otherwise).
func isParquet(uri string) bool {
	if u, err := url.Parse(uri); err == nil && u.Scheme != "" {
		uri = u.Path
	}
	ext := strings.ToLower(filepath.Ext(uri))
	return ext == ".parquet" || ext == ".pq"
}

// planSample plans a sample table: CSV (planCSV) or Parquet (planParquet),
// in chunks of chunkRows rows; with chunkRows 0, in about chunks chunks
// (sizedChunkRows), or in chunks of DefaultChunkRows if chunks is 0 too.
func (a *Backfill) planSample(ctx context.Context, uri string, chunkRows, chunks int) (*SamplePlan, error) {
	if chunkRows <= 0 && chunks <= 0 {
		chunkRows = DefaultChunkRows
	}
	l, err := a.locate(uri)
	if err != nil {
		return nil, err
	}
	version, size, err := a.version(ctx, l)
	if err != nil {
		return nil, err
	}
	pq := isParquet(uri)
	if !pq && size >= 12 { // a Parquet file by another name: "PAR1" first and last
		if pq, err = a.parquetMagic(ctx, l, version); err != nil {
			return nil, err
		}
	}
	var p *SamplePlan
	switch {
	case pq:
		p, err = a.planParquet(ctx, l, version, size, chunkRows, chunks)
	case chunkRows > 0:
		p, err = a.planCSV(ctx, l, version, size, chunkRows)
	default:
		// The rows are counted as the plan reads them: cut in chunks of
		// DefaultChunkRows, then joined k at a time into the number of
		// chunks nearest sizedChunks.
		if p, err = a.planCSV(ctx, l, version, size, DefaultChunkRows); err == nil {
			p.join(joinBy(len(p.Offsets), sizedChunks(p.Rows, chunks)))
		}
	}
	if err != nil {
		return nil, err
	}
	if p.Rows > 0 {
		// A table of one chunk: its rows, not the size it could have had
		// (what the summary and the manifest report).
		p.ChunkRows = min(p.ChunkRows, p.Rows)
	}
	return p, nil
}

// parquetMagic reports whether a table begins as a Parquet file does.
func (a *Backfill) parquetMagic(ctx context.Context, l sampleLoc, version string) (bool, error) {
	rc, err := a.openSample(ctx, l, version, 0, 4)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	var magic [4]byte
	if _, err := io.ReadFull(rc, magic[:]); err != nil {
		return false, fmt.Errorf("backfill: sample %q: %w", l.uri, err)
	}
	return string(magic[:]) == "PAR1", nil
}

// joinBy is the k (1 or more) for which fine chunks joined k at a time
// make the number of chunks nearest n (the fewer on a tie; the smaller k
// when both make as many).
func joinBy(fine, n int) int {
	chunksBy := func(k int) int { return (fine + k - 1) / k }
	lo := max(fine/max(n, 1), 1)
	hi := lo + 1
	if dHi, dLo := abs(chunksBy(hi)-n), abs(chunksBy(lo)-n); dHi < dLo || dHi == dLo && chunksBy(hi) < chunksBy(lo) {
		return hi
	}
	return lo
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// join makes every k chunks of a CSV plan one.
func (p *SamplePlan) join(k int) {
	if k <= 1 {
		return
	}
	offsets := p.Offsets[:0]
	for i := 0; i < len(p.Offsets); i += k {
		offsets = append(offsets, p.Offsets[i])
	}
	p.Offsets, p.ChunkRows = offsets, p.ChunkRows*k
}

// planCSV reads the whole table once: it checks the header and every row,
// counts the rows and records where every chunk starts.
func (a *Backfill) planCSV(ctx context.Context, l sampleLoc, version string, size int64, chunkRows int) (*SamplePlan, error) {
	uri := l.uri
	rc, err := a.openSample(ctx, l, version, 0, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	r := csv.NewReader(rc)
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return nil, permanent(ErrTypeBadSample, "backfill: sample %q: header: %v", uri, err)
	}
	p := &SamplePlan{URI: uri, ChunkRows: chunkRows, Columns: len(header), Size: size, Version: version}
	names := make([]string, len(header))
	for i, h := range header {
		names[i] = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
	}
	if p.KeyCol, p.TimeCol, p.Carry, err = sampleColumns(uri, names); err != nil {
		return nil, err
	}
	r.FieldsPerRecord = p.Columns
	for {
		off := r.InputOffset()
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, permanent(ErrTypeBadSample, "backfill: sample %q: %v", uri, err)
		}
		line, _ := r.FieldPos(0)
		if rec[p.KeyCol] == "" {
			return nil, permanent(ErrTypeBadSample, "backfill: sample %q line %d: empty key", uri, line)
		}
		t, err := parseSampleTime(rec[p.TimeCol])
		if err != nil {
			return nil, permanent(ErrTypeBadSample, "backfill: sample %q line %d: %v", uri, line, err)
		}
		if t.After(p.Latest) {
			p.Latest = t
		}
		if p.Rows%chunkRows == 0 {
			if len(p.Offsets) == MaxChunks {
				return nil, permanent(ErrTypeTooManyChunks, "backfill: sample %q in chunks of %d rows needs more than %d chunks: choose more rows per chunk", uri, chunkRows, MaxChunks)
			}
			p.Offsets = append(p.Offsets, off)
		}
		p.Rows++
		if p.Rows%65536 == 0 {
			activity.RecordHeartbeat(ctx, p.Rows)
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

// sampleColumns reads a sample table's column names: which is the key
// (named key or entity) and which the time (named time), and the names of
// the others, which each row carries into its output (names compared
// without case). A table must name each column, and each once, and have
// one key and one time column.
func sampleColumns(uri string, names []string) (keyCol, timeCol int, carry []string, err error) {
	keyCol, timeCol = -1, -1
	seen := make(map[string]int, len(names))
	for i, name := range names {
		lower := strings.ToLower(name)
		switch j, dup := seen[lower]; {
		case name == "":
			return 0, 0, nil, permanent(ErrTypeBadSample, "backfill: sample %q: column %d of %q has no name", uri, i+1, names)
		case dup:
			return 0, 0, nil, permanent(ErrTypeBadSample, "backfill: sample %q: columns %d and %d are both named %q: name each column once", uri, j+1, i+1, name)
		}
		seen[lower] = i
		switch lower {
		case "key", "entity":
			if keyCol >= 0 {
				return 0, 0, nil, permanent(ErrTypeBadSample, "backfill: sample %q: columns %q and %q are both a key column: rename the one that is not the key", uri, names[keyCol], name)
			}
			keyCol = i
		case "time":
			timeCol = i
		default:
			carry = append(carry, name)
		}
	}
	if keyCol < 0 || timeCol < 0 {
		return 0, 0, nil, permanent(ErrTypeBadSample, "backfill: sample %q: columns %q need a key (or entity) column and a time column", uri, names)
	}
	return keyCol, timeCol, carry, nil
}

var sampleLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02"}

// parseSampleTime reads a sample row's time: RFC 3339, or a UTC
// "2006-01-02 15:04:05[.fraction]" or "2006-01-02".
func parseSampleTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range sampleLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, checkSampleTime(t)
		}
	}
	return time.Time{}, fmt.Errorf("time %q: want RFC 3339, \"2006-01-02 15:04:05\" or \"2006-01-02\"", s)
}

// checkSampleTime fails for a row time outside the event center's times
// (eventcenter.MinTime to MaxTime, about 1677 to 2262), which no event
// can have and no read can ask.
func checkSampleTime(t time.Time) error {
	if !eventcenter.InTimeRange(t) {
		return fmt.Errorf("time %s is outside the event center's times [%s, %s]", t.Format(time.RFC3339Nano), stamp(eventcenter.MinTime), stamp(eventcenter.MaxTime))
	}
	return nil
}

// sampleRow is one row of a sample table: its key, its time and the
// values of its other columns (SampleChunk.Carry, in order).
type sampleRow struct {
	key   string
	time  time.Time
	carry []any
}

// sampleReader reads the rows of one chunk of a sample table in order.
type sampleReader interface {
	// read reads the next row into r (reusing r.carry), io.EOF after the
	// chunk's last row.
	read(r *sampleRow) error
	close() error
}

// openChunk opens a reader of the chunk's rows.
func (a *Backfill) openChunk(ctx context.Context, sc *SampleChunk) (sampleReader, error) {
	l, err := a.locate(sc.URI)
	if err != nil {
		return nil, err
	}
	if sc.Format == FormatParquet {
		return a.openParquetChunk(ctx, l, sc)
	}
	rc, err := a.openSample(ctx, l, sc.Version, sc.Offset, sc.End)
	if err != nil {
		return nil, err
	}
	r := csv.NewReader(rc)
	r.FieldsPerRecord = sc.Columns
	r.ReuseRecord = true
	return &csvRows{r: r, rc: rc, sc: sc, left: sc.Rows}, nil
}

type csvRows struct {
	r    *csv.Reader
	rc   io.ReadCloser
	sc   *SampleChunk
	left int
}

func (c *csvRows) read(row *sampleRow) error {
	if c.left == 0 {
		return io.EOF
	}
	rec, err := c.r.Read()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // the table shrank since it was planned
		}
		return permanent(ErrTypeBadSample, "backfill: sample %q row %d: %v", c.sc.URI, c.sc.FirstRow+c.sc.Rows-c.left, err)
	}
	c.left--
	if row.time, err = parseSampleTime(rec[c.sc.TimeCol]); err != nil {
		return permanent(ErrTypeBadSample, "backfill: sample %q row %d: %v", c.sc.URI, c.sc.FirstRow+c.sc.Rows-c.left-1, err)
	}
	row.key = rec[c.sc.KeyCol]
	row.carry = row.carry[:0]
	for i, v := range rec {
		if i == c.sc.KeyCol || i == c.sc.TimeCol {
			continue
		}
		if v == "" {
			row.carry = append(row.carry, nil)
		} else {
			row.carry = append(row.carry, v)
		}
	}
	return nil
}

func (c *csvRows) close() error { return c.rc.Close() }

// sampleRunner runs a sample chunk segment by segment. Per segment it reads
// the rows, reads the state of every row's key at the row's time in each of
// the job's trigger sources in one sorted batch (job.Prefetch), takes as a
// row's trigger the latest of those states (rowState), runs the job on the rows with state (in
// parallel, the logic per row; its fetches of the trigger key at the
// trigger time are answered from the batch), and writes the records in
// row order. For a training-set sink (file:// or s3://) every row gives
// one output record, in order: the run's features, or none (nulls) for a
// row without state or whose run did not end OK, plus the row's other
// columns (outputs.SampleColumn); its record ID is the row's
// (sampleIDPrefix).
// Other sinks get the OK runs' records.
type sampleRunner struct {
	a        *Backfill
	j        *job.Job
	in       ChunkInput
	training bool
	rows     sampleReader
	fixed    time.Time // Options.KnownAt as a time
	asKnown  bool      // Options.KnownAt == "trigger"

	carried  []string // the field names of Sample.Carry (outputs.SampleColumn)
	idPrefix string   // sampleIDPrefix
	idBuf    []byte   // trainingRecord's scratch

	buf      []sampleRow
	qs       []eventcenter.AsOf
	answers  []eventcenter.AsOfResult
	triggers []eventcenter.Event
	rowOf    []int // triggers[k] is row rowOf[k]
	results  []job.Result
	recs     []job.Record  // the segment's output records
	prefetch *job.Prefetch // over a.Store (every segment's env.Store); refilled per segment

	// unchanged, if set, fails if the table changed since it was planned:
	// a local file, whose version is checked when opened, but which can
	// be written over while it is read (an S3 object's reads are of the
	// ETag they ask for).
	unchanged func() error
}

func (a *Backfill) newSampleRunner(ctx context.Context, j *job.Job, in ChunkInput, training bool, skip int) (*sampleRunner, error) {
	rows, err := a.openChunk(ctx, in.Sample)
	if err != nil {
		return nil, err
	}
	s := &sampleRunner{a: a, j: j, in: in, training: training, rows: rows, fixed: knownAt(in.Options), asKnown: in.Options.KnownAt == "trigger",
		idPrefix: sampleIDPrefix(j.Name(), in.Sample), prefetch: job.NewPrefetch(a.Store)}
	for _, name := range in.Sample.Carry {
		s.carried = append(s.carried, outputs.SampleColumn(name))
	}
	if l, err := a.locate(in.Sample.URI); err == nil && l.bucket == "" && in.Sample.Version != "" {
		s.unchanged = func() error {
			fi, err := os.Stat(l.path)
			switch {
			case errors.Is(err, os.ErrNotExist):
				return sampleChanged(l, in.Sample.Version, "gone")
			case err != nil:
				return err // as the open's, retried
			}
			if now := fileVersion(fi); now != in.Sample.Version {
				return sampleChanged(l, in.Sample.Version, now)
			}
			return nil
		}
	}
	var r sampleRow
	for range skip {
		if err := rows.read(&r); err != nil {
			rows.close()
			if err == io.EOF {
				err = permanent(ErrTypeBadSample, "backfill: sample %q, chunk at row %d: resumed after row %d of %d", in.Sample.URI, in.Sample.FirstRow, skip, in.Sample.Rows)
			}
			return nil, err
		}
	}
	return s, nil
}

func (s *sampleRunner) stop() { s.rows.close() }

// segment runs the next n rows (fewer at the chunk's end) with env, whose
// Outputs are the segment's, starting at the chunk's row ordinal. It
// returns the runs' summary, the rows read and whether the chunk ended.
func (s *sampleRunner) segment(ctx context.Context, env *job.Env, ordinal, n int, res *ChunkResult) (job.Summary, int, bool, error) {
	var sum job.Summary
	clear(s.results) // the previous segment's
	s.buf = slices.Grow(s.buf[:0], n)
	done := false
	for len(s.buf) < n {
		if len(s.buf) < cap(s.buf) {
			s.buf = s.buf[:len(s.buf)+1] // reuse the row's carried values' slice
		} else {
			s.buf = append(s.buf, sampleRow{})
		}
		r := &s.buf[len(s.buf)-1]
		if err := s.rows.read(r); err != nil {
			s.buf = s.buf[:len(s.buf)-1]
			if err == io.EOF {
				done = true
				break
			}
			return sum, 0, false, err
		}
	}
	// The rows were read from the table as planned only if it is still
	// as planned once they are read: a table written over while a chunk
	// reads it would mix two tables' rows.
	if s.unchanged != nil {
		if err := s.unchanged(); err != nil {
			return sum, 0, false, err
		}
	}
	rows := s.buf
	for i := range rows {
		if k := rows[i].key; len(strings.TrimSpace(k)) != len(k) { // trimmed as a time is (parseSampleTime)
			if res.SpacedKeys == 0 {
				if len(k) > 64 { // a warning's example, not the key
					k = k[:64] + "…"
				}
				res.SpacedKey = fmt.Sprintf("row %d: %q", s.in.Sample.FirstRow+ordinal+i, k)
			}
			res.SpacedKeys++
		}
	}
	// The state of every row's key in every trigger source: row i's are
	// s.answers[i*len(sources):][:len(sources)].
	sources := s.j.Sources()
	s.qs = slices.Grow(s.qs[:0], len(rows)*len(sources))
	for i := range rows {
		for _, source := range sources {
			q := eventcenter.AsOf{Source: source, Key: rows[i].key, Time: rows[i].time, KnownAt: s.fixed}
			if s.asKnown {
				q.KnownAt = rows[i].time
			}
			s.qs = append(s.qs, q)
		}
	}
	s.answers = grow(s.answers, len(s.qs))
	pf := s.prefetch
	pf.Reset() // the previous segment's answers
	if err := pf.Fill(ctx, s.qs, s.answers); err != nil {
		return sum, 0, false, fmt.Errorf("backfill: sample %q: state as of the rows: %w", s.in.Sample.URI, err)
	}
	s.triggers, s.rowOf = grow(s.triggers, len(rows))[:0], grow(s.rowOf, len(rows))[:0]
	for i := range rows {
		a := rowState(s.answers[i*len(sources):][:len(sources)])
		switch {
		case errors.Is(a.Err, eventcenter.ErrNotFound):
			res.Missing++
			continue
		case a.Err != nil:
			sum.Counts[job.Failed]++
			if len(res.Errors) < maxErrors {
				res.Errors = append(res.Errors, fmt.Sprintf("row %d %s@%s: %v", s.in.Sample.FirstRow+ordinal+i, rows[i].key, stamp(rows[i].time), a.Err))
			}
			continue
		}
		res.WithState++
		e := a.Event
		// The trigger's rows are the run's to read (and a logic may change
		// them): a copy, made before the runs, as the answer's own rows go
		// to the first fetch of the row's key (job.Prefetch).
		e.After, e.Before = e.After.Clone(), e.Before.Clone()
		if !e.Time.Equal(rows[i].time) {
			// The state's event is older than the row: the trigger is at
			// the row's time, after every change of the key up to it.
			e.Time, e.Pos = rows[i].time, eventcenter.Position{}
		}
		if s.asKnown {
			e.StoredAt = rows[i].time
		}
		s.triggers = append(s.triggers, e)
		s.rowOf = append(s.rowOf, i)
	}
	runEnv := *env
	runEnv.Store = pf
	runEnv.NoRecordIDs = s.training // trainingRecord names them by row
	s.results = grow(s.results, len(s.triggers))
	job.EvaluateAll(ctx, s.j, &runEnv, s.triggers, s.results, s.a.Workers)
	s.recs = grow(s.recs, len(rows))[:0]
	// The training records' sample fields, a new slice per segment: the
	// records keep them after the segment (in the sink, until it closes).
	var fields []job.Field
	if s.training {
		fields = make([]job.Field, len(rows)*len(s.carried))
	}
	k := 0
	for i := range rows {
		var r *job.Result
		if k < len(s.rowOf) && s.rowOf[k] == i {
			r = &s.results[k]
			k++
			sum.Counts[r.Outcome]++
			if r.Err != nil && len(sum.Failures) < 10 {
				sum.Failures = append(sum.Failures, *r)
			}
		}
		switch {
		case !s.training && r != nil && r.Record != nil:
			s.recs = append(s.recs, *r.Record)
		case s.training:
			s.recs = append(s.recs, s.trainingRecord(ordinal+i, &rows[i], r, fields[i*len(s.carried):]))
		}
	}
	if err := ctx.Err(); err != nil {
		return sum, 0, false, err
	}
	sum.Events = len(rows)
	if !s.training {
		return sum, len(rows), done, job.WriteOutputs(ctx, env.Outputs, env.Ledger, s.recs)
	}
	// The parameter versions are those of the runs' records, not of the
	// rows without features.
	var sink []job.Output
	for _, o := range env.Outputs {
		pv, ok := o.(*paramVersions)
		if !ok {
			sink = append(sink, o)
			continue
		}
		pv.note(sum.Counts[job.OK], func(yield func(params.Version) bool) {
			for k := range s.triggers {
				if r := &s.results[k]; r.Record != nil && !yield(r.Record.ParamVersion) {
					return
				}
			}
		})
	}
	return sum, len(rows), done, job.WriteOutputs(ctx, sink, env.Ledger, s.recs)
}

// rowState returns a row's state from the answers of its key's as-of
// reads in each of the job's trigger sources, in the job's order: a read's
// failure if one failed (the state it did not read might be the latest),
// else the latest event found (the first source's on a tie), else not
// found.
func rowState(answers []eventcenter.AsOfResult) *eventcenter.AsOfResult {
	var latest *eventcenter.AsOfResult
	for k := range answers {
		a := &answers[k]
		switch {
		case a.Err == nil:
			if latest == nil || a.Event.Time.After(latest.Event.Time) {
				latest = a
			}
		case !errors.Is(a.Err, eventcenter.ErrNotFound):
			return a
		}
	}
	if latest == nil {
		return &answers[0]
	}
	return latest
}

// trainingRecord returns the training-set record of row (the chunk's row
// ordinal): the run's features if it ended OK, none otherwise, and the
// row's other columns in its Sample, made of fields (len(fields) >=
// len(s.carried)).
func (s *sampleRunner) trainingRecord(ordinal int, row *sampleRow, r *job.Result, fields []job.Field) job.Record {
	var rec job.Record
	if r != nil && r.Record != nil {
		rec = *r.Record
	} else {
		rec = job.Record{Job: s.j.Name(), JobVersion: s.j.Version(), Entity: row.key,
			Trigger: eventcenter.ID{Source: s.j.Source(), Key: row.key, Time: row.time}}
		if r != nil {
			rec.ParamVersion = r.ParamVersion
		}
	}
	// The row's columns beside the run's features, which stay the row the
	// logic returned (it may be one the logic shares).
	rec.Sample = fields[:len(s.carried):len(s.carried)]
	for i, col := range s.carried {
		rec.Sample[i] = job.Field{Name: col}
		if i < len(row.carry) {
			rec.Sample[i].Value = row.carry[i]
		}
	}
	s.idBuf = strconv.AppendInt(append(s.idBuf[:0], s.idPrefix...), int64(s.in.Sample.FirstRow+ordinal), 10)
	rec.ID = string(s.idBuf) // one allocation
	return rec
}

// sampleIDPrefix is the prefix of the training-set record IDs of a table:
// a hash of the job and the table (URI and version), then "-" and the row
// number make a row's ID. Two rows of one key and time are two records.
func sampleIDPrefix(jobName string, sc *SampleChunk) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d:%s%d:%s%d:%s", len(jobName), jobName, len(sc.URI), sc.URI, len(sc.Version), sc.Version)
	var sum [32]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:12]) + "-"
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// grow returns s with length n, reusing its memory.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
