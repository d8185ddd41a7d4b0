package activities

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
)

// sink opens the outputs of one segment of a chunk.
type sink interface {
	// open returns the segment's outputs, or nil for the job's own.
	open(ctx context.Context, in ChunkInput, ordinal int) (segmentOutputs, error)
}

type segmentOutputs interface {
	outputs() []job.Output
	close(ctx context.Context) error // make the segment's records visible
	abort()
}

// parseSink reads Options.Sink.
func (a *Backfill) parseSink(spec string) (sink, error) {
	switch {
	case spec == "" || spec == "job":
		return jobSink{}, nil
	case spec == "featurestore":
		return fixedSink{outputs.FeatureStore(a.Store, "")}, nil
	case strings.HasPrefix(spec, "featurestore:"):
		return fixedSink{outputs.FeatureStore(a.Store, strings.TrimPrefix(spec, "featurestore:"))}, nil
	}
	u, err := url.Parse(spec)
	if err != nil {
		return nil, permanent(ErrTypeBadInput, "backfill: sink %q: %v", spec, err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" || !filepath.IsAbs(u.Path) {
			return nil, permanent(ErrTypeBadInput, "backfill: sink %q: want file:///absolute/folder", spec)
		}
		return fileSink{dst: outputs.Dir(u.Path)}, nil
	case "s3":
		if a.S3 == nil {
			return nil, permanent(ErrTypeBadInput, "backfill: sink %q: this worker has no S3 client", spec)
		}
		prefix := strings.TrimPrefix(u.Path, "/")
		if prefix != "" && !strings.HasSuffix(prefix, "/") {
			prefix += "/"
		}
		return fileSink{dst: outputs.S3{Client: a.S3, Bucket: u.Host, Prefix: prefix}}, nil
	}
	return nil, permanent(ErrTypeBadInput, "backfill: sink %q: want \"\", featurestore[:source], file:///folder or s3://bucket/prefix", spec)
}

type jobSink struct{}

func (jobSink) open(context.Context, ChunkInput, int) (segmentOutputs, error) { return nil, nil }

type fixedSink struct{ out job.Output }

func (s fixedSink) open(context.Context, ChunkInput, int) (segmentOutputs, error) {
	return fixedOutputs{s.out}, nil
}

type fixedOutputs struct{ out job.Output }

func (f fixedOutputs) outputs() []job.Output     { return []job.Output{f.out} }
func (fixedOutputs) close(context.Context) error { return nil }
func (fixedOutputs) abort()                      {}

// fileSink writes one JSON Lines object per segment. Segments start at
// fixed event ordinals (multiples of SegmentEvents from the chunk start, as
// every attempt cuts them alike), so a redone segment replaces its object
// with the same records and no two objects hold the same record.
type fileSink struct{ dst outputs.Destination }

// ObjectName is the name of the file-sink object of the segment of chunk
// index that starts at event ordinal, under the backfill's name.
func ObjectName(backfill, jobName string, index, ordinal int) string {
	return fmt.Sprintf("%s/%s/chunk-%06d-%012d.jsonl", safeName(backfill), safeName(jobName), index, ordinal)
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r < ' ' {
			return '_'
		}
		return r
	}, s)
}

func (s fileSink) open(_ context.Context, in ChunkInput, ordinal int) (segmentOutputs, error) {
	o, err := outputs.JSONLines(s.dst, ObjectName(in.Backfill, in.Job, in.Index, ordinal))
	if err != nil {
		return nil, err
	}
	return fileOutputs{o}, nil
}

type fileOutputs struct{ o *outputs.JSONLinesOutput }

func (f fileOutputs) outputs() []job.Output { return []job.Output{f.o} }

// close puts the object, or nothing for a segment without records.
func (f fileOutputs) close(ctx context.Context) error {
	if f.o.Count() == 0 {
		f.o.Abort()
		return nil
	}
	return f.o.Close(ctx)
}

func (f fileOutputs) abort() { f.o.Abort() }
