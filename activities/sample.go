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
	"go.temporal.io/sdk/activity"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
)

// DefaultChunkRows is the default number of sample rows per chunk.
const DefaultChunkRows = 10000

// openSample opens the sample table at uri from byte offset.
func (a *Backfill) openSample(ctx context.Context, uri string, offset int64) (io.ReadCloser, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, permanent(ErrTypeBadSample, "backfill: sample %q: %v", uri, err)
	}
	switch u.Scheme {
	case "", "file":
		path := uri
		if u.Scheme == "file" {
			path = u.Path
		}
		f, err := os.Open(filepath.FromSlash(path))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, permanent(ErrTypeBadSample, "backfill: sample %q: %v", uri, err)
			}
			return nil, err
		}
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	case "s3":
		if a.S3 == nil {
			return nil, permanent(ErrTypeBadSample, "backfill: sample %q: this worker has no S3 client", uri)
		}
		in := &s3.GetObjectInput{Bucket: aws.String(u.Host), Key: aws.String(strings.TrimPrefix(u.Path, "/"))}
		if offset > 0 {
			in.Range = aws.String(fmt.Sprintf("bytes=%d-", offset))
		}
		out, err := a.S3.GetObject(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("backfill: sample %q: %w", uri, err)
		}
		return out.Body, nil
	}
	return nil, permanent(ErrTypeBadSample, "backfill: sample %q: want a path, file:///path or s3://bucket/key", uri)
}

// planSample reads the whole table once: it checks the header and every
// row, counts the rows and records where every chunk starts.
func (a *Backfill) planSample(ctx context.Context, uri string, chunkRows int) (*SamplePlan, error) {
	if chunkRows <= 0 {
		chunkRows = DefaultChunkRows
	}
	rc, err := a.openSample(ctx, uri, 0)
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
	p := &SamplePlan{URI: uri, ChunkRows: chunkRows, Columns: len(header), KeyCol: -1, TimeCol: -1}
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
		if _, err := parseSampleTime(rec[p.TimeCol]); err != nil {
			return nil, permanent(ErrTypeBadSample, "backfill: sample %q line %d: %v", uri, line, err)
		}
		if p.Rows%chunkRows == 0 {
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
	rc, err := a.openSample(ctx, sc.URI, sc.Offset)
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
