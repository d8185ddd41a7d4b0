package activities

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"go.temporal.io/sdk/activity"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
)

// DefaultChunkRows is the default number of sample rows per chunk.
const DefaultChunkRows = 10000

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

// openSample opens bytes [offset, end) of the sample table (to its end if
// end is 0), failing with ErrTypeSampleChanged if the table is not version
// (when version is set). On S3 it is one ranged GET, conditional on the
// ETag; a local file is checked by modification time and size.
func (a *Backfill) openSample(ctx context.Context, l sampleLoc, version string, offset, end int64) (io.ReadCloser, error) {
	changed := func(now string) error {
		return permanent(ErrTypeSampleChanged, "backfill: sample %q changed since the backfill planned it (version %s, now %s): a table replaced mid-backfill would mix two tables; start the backfill again",
			l.uri, version, now)
	}
	if l.bucket == "" {
		f, err := os.Open(l.path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, permanent(ErrTypeBadSample, "backfill: sample %q: %v", l.uri, err)
			}
			return nil, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		if now := fileVersion(fi); version != "" && now != version {
			f.Close()
			return nil, changed(now)
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
			return nil, changed(now)
		}
		return nil, fmt.Errorf("backfill: sample %q: %w", l.uri, err)
	}
	return out.Body, nil
}

// planSample reads the whole table once: it checks the header and every
// row, counts the rows and records where every chunk starts.
func (a *Backfill) planSample(ctx context.Context, uri string, chunkRows int) (*SamplePlan, error) {
	if chunkRows <= 0 {
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
	p := &SamplePlan{URI: uri, ChunkRows: chunkRows, Columns: len(header), KeyCol: -1, TimeCol: -1, Size: size, Version: version}
	for i, h := range header {
		switch strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))) {
		case "key", "entity":
			p.KeyCol = i
		case "time":
			p.TimeCol = i
		}
	}
	if p.KeyCol < 0 || p.TimeCol < 0 {
		return nil, permanent(ErrTypeBadSample, "backfill: sample %q: header %q needs a key (or entity) column and a time column", uri, header)
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

var sampleLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02"}

// parseSampleTime reads a sample row's time: RFC 3339, or a UTC
// "2006-01-02 15:04:05[.fraction]" or "2006-01-02".
func parseSampleTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range sampleLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: want RFC 3339, \"2006-01-02 15:04:05\" or \"2006-01-02\"", s)
}

// sampleSource turns the chunk's sample rows into triggers: for row (key,
// T), the trigger source's event that holds key's state as of T, moved to
// time T (see Backfill.BackfillChunk). Rows before skip are passed over.
func (a *Backfill) sampleSource(ctx context.Context, j *job.Job, in ChunkInput, skip int, res *ChunkResult) (eventSource, error) {
	sc := in.Sample
	l, err := a.locate(sc.URI)
	if err != nil {
		return nil, err
	}
	rc, err := a.openSample(ctx, l, sc.Version, sc.Offset, sc.End)
	if err != nil {
		return nil, err
	}
	r := csv.NewReader(rc)
	r.FieldsPerRecord = sc.Columns
	r.ReuseRecord = true
	s := &sampleRows{ctx: ctx, store: a.Store, source: j.Source(), r: r, rc: rc, left: sc.Rows, chunk: sc, res: res, fixed: knownAt(in.Options), asKnown: in.Options.KnownAt == "trigger"}
	for range skip {
		if _, _, err := s.row(); err != nil {
			rc.Close()
			return nil, err
		}
	}
	return s, nil
}

type sampleRows struct {
	ctx     context.Context
	store   eventcenter.Reader
	source  string
	r       *csv.Reader
	rc      io.ReadCloser
	left    int
	chunk   *SampleChunk
	res     *ChunkResult
	fixed   time.Time // Options.KnownAt as a time
	asKnown bool      // Options.KnownAt == "trigger"
	e       eventcenter.Event
}

func (s *sampleRows) row() (string, time.Time, error) {
	if s.left == 0 {
		return "", time.Time{}, io.EOF
	}
	rec, err := s.r.Read()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // the table shrank since it was planned
		}
		return "", time.Time{}, permanent(ErrTypeBadSample, "backfill: sample %q, chunk at row %d: %v", s.chunk.URI, s.chunk.FirstRow, err)
	}
	s.left--
	t, err := parseSampleTime(rec[s.chunk.TimeCol])
	if err != nil {
		return "", time.Time{}, permanent(ErrTypeBadSample, "backfill: sample %q: %v", s.chunk.URI, err)
	}
	return rec[s.chunk.KeyCol], t, nil
}

func (s *sampleRows) next() (*eventcenter.Event, bool, error) {
	key, t, err := s.row()
	if err == io.EOF {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	q := eventcenter.AsOf{Source: s.source, Key: key, Time: t, KnownAt: s.fixed}
	if s.asKnown {
		q.KnownAt = t
	}
	e, err := s.store.AsOf(s.ctx, q)
	if errors.Is(err, eventcenter.ErrNotFound) {
		s.res.Missing++
		if len(s.res.Errors) < maxErrors {
			s.res.Errors = append(s.res.Errors, fmt.Sprintf("missing %s@%s: no state of %s", key, t.UTC().Format(time.RFC3339Nano), s.source))
		}
		return nil, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	if !e.Time.Equal(t) {
		// The state's event is older than the row: the trigger is at the
		// row's time, after every change of the key up to it.
		e.Time, e.Pos = t, eventcenter.Position{}
	}
	if s.asKnown {
		e.StoredAt = t
	}
	s.e = e
	return &s.e, true, nil
}

func (s *sampleRows) stop() { s.rc.Close() }
