package activities

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
)

// sink opens the outputs of one segment of a chunk.
type sink interface {
	// open returns the segment's outputs.
	open(ctx context.Context, j *job.Job, in ChunkInput, ordinal int) (segmentOutputs, error)
}

type segmentOutputs interface {
	outputs() []job.Output
	close(ctx context.Context) error // make the segment's records visible
	abort()
	// counts returns what the segment's writes did (after close).
	counts() outputs.WriteCounts
}

// parseWrite reads Options.Write.
func parseWrite(s string) (outputs.WriteMode, error) {
	if s == "" {
		return outputs.Fill, nil
	}
	m, err := outputs.ParseWriteMode(s)
	if err != nil || m == outputs.Append {
		return "", permanent(ErrTypeBadInput, "backfill: write %q: want \"fill\" or \"replace\"", s)
	}
	return m, nil
}

// parseSink reads Options.Sink (and Write, Format).
func (a *Backfill) parseSink(o Options) (sink, error) {
	spec := o.Sink
	mode, err := parseWrite(o.Write)
	if err != nil {
		return nil, err
	}
	switch {
	case spec == "" || spec == "job":
		return jobSink{store: a.Store, mode: mode}, nil
	case spec == "featurestore":
		return featureSink{store: a.Store, out: outputs.FeatureStore(a.Store, ""), mode: mode}, nil
	case strings.HasPrefix(spec, "featurestore:"):
		return featureSink{store: a.Store, out: outputs.FeatureStore(a.Store, strings.TrimPrefix(spec, "featurestore:")), mode: mode}, nil
	}
	u, err := url.Parse(spec)
	if err != nil {
		return nil, permanent(ErrTypeBadInput, "backfill: sink %q: %v", spec, err)
	}
	format := o.Format
	switch format {
	case "":
		format = FormatJSONLines
	case FormatJSONLines, FormatParquet:
	default:
		return nil, permanent(ErrTypeBadInput, "backfill: format %q: want %q or %q", o.Format, FormatJSONLines, FormatParquet)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" || !filepath.IsAbs(u.Path) {
			return nil, permanent(ErrTypeBadInput, "backfill: sink %q: want file:///absolute/folder", spec)
		}
		return fileSink{dst: outputs.Dir(u.Path), format: format}, nil
	case "s3":
		if a.S3 == nil {
			return nil, permanent(ErrTypeBadInput, "backfill: sink %q: this worker has no S3 client", spec)
		}
		prefix := strings.TrimPrefix(u.Path, "/")
		if prefix != "" && !strings.HasSuffix(prefix, "/") {
			prefix += "/"
		}
		return fileSink{dst: outputs.S3{Client: a.S3, Bucket: u.Host, Prefix: prefix}, format: format}, nil
	}
	return nil, permanent(ErrTypeBadInput, "backfill: sink %q: want \"\", featurestore[:source], file:///folder or s3://bucket/prefix", spec)
}

// tag is what the feature store sinks write into the job.ColBackfill
// column of the chunk's records, and by which they know their own:
// "<backfill>@<run>", or the backfill alone for inputs without a run.
func (in *ChunkInput) tag() string {
	if in.Run == "" {
		return in.Backfill
	}
	return in.Backfill + "@" + in.Run
}

// jobSink writes to the job's own outputs, its feature store outputs in
// the backfill's write mode.
type jobSink struct {
	store eventcenter.Store
	mode  outputs.WriteMode
}

func (s jobSink) open(_ context.Context, j *job.Job, in ChunkInput, _ int) (segmentOutputs, error) {
	outs := j.Outputs()
	var fs []*outputs.FeatureStoreOutput
	for i, o := range outs {
		if f, ok := o.(*outputs.FeatureStoreOutput); ok {
			f = f.Backfill(s.store, s.mode, in.tag())
			outs[i] = f
			fs = append(fs, f)
		}
	}
	return jobOutputs{outs: outs, fs: fs}, nil
}

type jobOutputs struct {
	outs []job.Output
	fs   []*outputs.FeatureStoreOutput
}

func (o jobOutputs) outputs() []job.Output     { return o.outs }
func (jobOutputs) close(context.Context) error { return nil }
func (jobOutputs) abort()                      {}

// counts are those of the first feature store output (the job's outputs
// other than the feature store are not counted).
func (o jobOutputs) counts() outputs.WriteCounts {
	if len(o.fs) == 0 {
		return outputs.WriteCounts{}
	}
	return o.fs[0].Counts()
}

// featureSink writes to the feature store in the backfill's write mode.
type featureSink struct {
	store eventcenter.Store
	out   *outputs.FeatureStoreOutput
	mode  outputs.WriteMode
}

func (s featureSink) open(_ context.Context, _ *job.Job, in ChunkInput, _ int) (segmentOutputs, error) {
	f := s.out.Backfill(s.store, s.mode, in.tag())
	return jobOutputs{outs: []job.Output{f}, fs: []*outputs.FeatureStoreOutput{f}}, nil
}

// File formats of Options.Format.
const (
	FormatJSONLines = "jsonl"
	FormatParquet   = "parquet"
)

// fileSink writes one object per segment, JSON Lines or Parquet. Segments
// start at fixed event ordinals (multiples of SegmentEvents from the chunk
// start, as every attempt cuts them alike), so a redone segment replaces
// its object with the same records and no two objects hold the same record.
type fileSink struct {
	dst    outputs.Destination
	format string
}

// ObjectName is the name of the file-sink object of the segment of chunk
// index that starts at event ordinal, in the backfill's folder (folder),
// with the extension of format ("jsonl" or "parquet").
func ObjectName(backfill, jobName string, index, ordinal int, format string) string {
	return fmt.Sprintf("%schunk-%06d-%012d.%s", folder(backfill, jobName), index, ordinal, format)
}

// folder is the folder of a backfill's objects in a file sink,
// "<backfill>/<job>/", each name escaped by pathSegment.
func folder(backfill, jobName string) string {
	return pathSegment(backfill) + "/" + pathSegment(jobName) + "/"
}

// pathSegment escapes a name into one path segment, injectively, so that
// distinct backfill IDs (or job names) never share a folder: '%', '/',
// '\' and control characters become %XX (upper-case hex), and so do the
// dots of "." and "..". Other names, the usual IDs, are unchanged.
func pathSegment(s string) string {
	if s == "." || s == ".." {
		return strings.Repeat("%2E", len(s))
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '%' || c == '/' || c == '\\' || c < ' ' || c == 0x7f:
			fmt.Fprintf(&b, "%%%02X", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func (s fileSink) open(_ context.Context, _ *job.Job, in ChunkInput, ordinal int) (segmentOutputs, error) {
	name := ObjectName(in.Backfill, in.Job, in.Index, ordinal, s.format)
	if s.format == FormatParquet {
		var carry []string // the same for every segment of the backfill
		if in.Sample != nil {
			carry = in.Sample.Carry
		}
		o, err := outputs.Parquet(s.dst, name, carry...)
		if err != nil {
			return nil, err
		}
		if in.Sample != nil {
			o.SampleNanos(in.Sample.CarryNanos...)
		}
		return fileOutputs{o}, nil
	}
	o, err := outputs.JSONLines(s.dst, name)
	if err != nil {
		return nil, err
	}
	return fileOutputs{o}, nil
}

// fileObject is a file sink's output of one segment.
type fileObject interface {
	job.Output
	Count() int
	Close(ctx context.Context) error
	Abort()
}

type fileOutputs struct{ o fileObject }

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

func (f fileOutputs) counts() outputs.WriteCounts { return outputs.WriteCounts{Written: f.o.Count()} }
