package app

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/workflows"
)

// backfillFlags are the flags of `backfill start` that make the
// workflow's input; input maps them, in one place.
type backfillFlags struct {
	job, sample, sink, knownAt, params string
	write, format, watermark           string
	from, to                           time.Time
	chunk, watermarkTimeout, stall     time.Duration
	rows, par, segment                 int
	paramsVersion                      int64
}

func (f *backfillFlags) register(fs *pflag.FlagSet) {
	fs.Var(timeValue{&f.from}, "from", "range start, inclusive: a date (2026-11-25, midnight UTC), RFC 3339, \"now\" or a time from now (-24h)")
	fs.Var(timeValue{&f.to}, "to", "range end, exclusive: a date (2026-11-26, midnight UTC), RFC 3339, \"now\" or a time from now (-1m)")
	fs.StringVar(&f.sample, "sample", "", "sample table instead of a range: CSV or Parquet with key and time columns (path, file:///path or s3://bucket/key)")
	fs.DurationVar(&f.chunk, "chunk", 0, "time span of a chunk (default: the range over 4 × --parallelism, in whole hours from 1h to 24h)")
	fs.IntVar(&f.rows, "chunk-rows", 0, "sample rows per chunk (default: the table over 4 × parallelism, about 10000 to 100000)")
	fs.IntVar(&f.par, "parallelism", 0, "chunks at once (default 8)")
	fs.StringVar(&f.sink, "sink", "", `records go to: "" the job's outputs, featurestore[:source], file:///folder, s3://bucket/prefix`)
	fs.Var(choiceValue{s: &f.knownAt, words: []string{"", "trigger"}, times: true}, "known-at",
		`what the fetches know: "" the corrected truth, "trigger" what live saw, or a time (date or RFC 3339)`)
	fs.Var(choiceValue{s: &f.params, words: []string{"", "asof", "current", "defaults"}}, "params", `parameter values: "asof" (default), "current", "defaults"`)
	fs.Int64Var(&f.paramsVersion, "params-version", 0, `pin every run to this parameter version of the job (default: --params decides, "asof": the version in force at each trigger, as live used it)`)
	fs.IntVar(&f.segment, "segment-events", 0, "events (sample rows) between heartbeats of a chunk (default 65536 for a range to a feature-store or job-output sink, 8192 otherwise)")
	fs.Var(choiceValue{s: &f.write, words: []string{"", activities.WriteFill, activities.WriteReplace}}, "write",
		`into the feature store: "fill" only what is missing (default), "replace" a new version of every record`)
	fs.Var(choiceValue{s: &f.format, words: []string{"", "jsonl", "parquet"}}, "format", `file and S3 sinks: "jsonl" (default) or "parquet"`)
	fs.Var(choiceValue{s: &f.watermark, words: []string{"", workflows.WatermarkRefuse, workflows.WatermarkWait, workflows.WatermarkTruncate}}, "watermark",
		`when the range reaches past the trigger source's watermark: "refuse" (default), "wait", "truncate"`)
	fs.DurationVar(&f.watermarkTimeout, "watermark-timeout", 0, `longest wait of --watermark wait (default 1h)`)
	fs.DurationVar(&f.stall, "stall-timeout", 0, "fail a chunk attempt that made no progress for this long (default 10m)")
}

// input is the workflow input of the flags, validated as the workflow
// will.
func (f *backfillFlags) input() (workflows.BackfillInput, error) {
	in := workflows.BackfillInput{
		Job: f.job, From: f.from, To: f.to, Sample: f.sample,
		Chunk: workflows.Duration(f.chunk), ChunkRows: f.rows, Parallelism: f.par,
		Options: activities.Options{Sink: f.sink, KnownAt: f.knownAt, Params: f.params, ParamsVersion: f.paramsVersion, SegmentEvents: f.segment,
			Write: f.write, Format: f.format},
		Watermark: f.watermark, WatermarkTimeout: workflows.Duration(f.watermarkTimeout), StallTimeout: workflows.Duration(f.stall),
	}
	if in.Sample != "" && !strings.Contains(in.Sample, "://") && !filepath.IsAbs(in.Sample) {
		// A relative path is the caller's: the worker, which reads the
		// table, may run in another folder.
		abs, err := filepath.Abs(in.Sample)
		if err != nil {
			return in, usageError{fmt.Errorf("--sample %q: %v", in.Sample, err)}
		}
		in.Sample = abs
	}
	if f.format != "" && !activities.IsFileSink(f.sink) {
		// The workflow ignores it (inputs that ran with it must replay):
		// the starter says so.
		return in, usageError{fmt.Errorf("--format %s: only file:// and s3:// sinks write files; --sink %q is not one", f.format, f.sink)}
	}
	in, err := in.WithDefaults() // defaults travel with the input: see workflows/README.md, Versioning
	if err != nil {
		return in, usageError{err}
	}
	return in, nil
}
