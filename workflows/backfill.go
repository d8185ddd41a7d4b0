package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tidemark-dev/tidemark/activities"
	"github.com/tidemark-dev/tidemark/eventcenter"
)

// Names under which the backfill is registered and found.
const (
	// TaskQueue is the default task queue of tidemark's workers.
	TaskQueue = "tidemark"
	// BackfillWorkflow is the workflow type of Backfill, as given to
	// `temporal workflow start --type`.
	BackfillWorkflow = "Backfill"
	// ProgressQuery is the query type answered with a Progress.
	ProgressQuery = "progress"
	// ProgressMemo is the memo field holding the last published Progress.
	ProgressMemo = "progress"
	// ParallelismUpdate changes a running backfill's Parallelism (an int
	// from 1 to MaxParallelism) and answers the parallelism before the
	// change; a value out of range is rejected with an error the caller
	// sees: `temporal workflow update execute --workflow-id <id> --name parallelism --input 8`.
	ParallelismUpdate = "parallelism"
	// ParallelismSignal is the older, fire-and-forget form of
	// ParallelismUpdate, kept for running backfills and older callers: a
	// value below 1 is ignored, one above MaxParallelism clamped, with a
	// warning in the workflow's log only.
	ParallelismSignal = "parallelism"
)

// Limits of BackfillInput.
const (
	// MaxParallelism bounds Parallelism: Temporal refuses to schedule more
	// pending activities than its limit per workflow (2000 by default),
	// and a workflow asking for more waits forever.
	MaxParallelism = 1000
	// MaxChunks bounds the chunks of a backfill (of a range: its span over
	// Chunk; of a sample table: its rows over ChunkRows).
	MaxChunks = activities.MaxChunks
)

// Watermark policies of BackfillInput.Watermark: what a backfill does when
// its input reaches past the trigger source's watermark (the event time up
// to which the event center holds every event), i.e. would run on data
// that is not all there yet.
const (
	// WatermarkRefuse fails the backfill before it runs anything, naming
	// the watermark. The default: it never writes results from partial
	// data and never blocks for an unbounded time.
	WatermarkRefuse = "refuse"
	// WatermarkWait waits (at most WatermarkTimeout) until the watermark
	// covers the input, then runs; it fails if the wait times out.
	WatermarkWait = "wait"
	// WatermarkTruncate runs a range up to the watermark only and says so
	// in the summary (Truncated, warnings). Not for sample tables.
	WatermarkTruncate = "truncate"
)

// Search attributes published by Backfill. They must be registered in the
// namespace (devtemporal does; elsewhere `temporal operator
// search-attribute create --name TidemarkJob --type Keyword`, and so on).
var (
	// SearchJob is the backfilled job's name.
	SearchJob = temporal.NewSearchAttributeKeyKeyword("TidemarkJob")
	// SearchProgress is the percentage done, 0 to 100 (Progress.Percent).
	SearchProgress = temporal.NewSearchAttributeKeyFloat64("TidemarkProgress")
	// SearchEvents is the number of events (sample rows) of finished chunks.
	SearchEvents = temporal.NewSearchAttributeKeyInt64("TidemarkEvents")
)

// Defaults of BackfillInput. WithDefaults (the starter) writes them into
// the input, so that a running backfill never depends on them; the workflow
// fills only what an input started elsewhere (the stock CLI) left unset,
// with the defaults of the workflow version that started it (see
// README.md, "Versioning"). Two exceptions: a sample table's ChunkRows,
// which its plan sizes from the table (the plan's recorded result fixes
// the chunks), and SegmentEvents, whose default is the latest's for
// every version (a field of the chunks' input only; see README.md).
const (
	// DefaultChunk is the chunk of a range backfill that sets none, before
	// versionChunkSized; since, it is the shortest default (see
	// defaultChunk).
	DefaultChunk = time.Hour
	// MaxDefaultChunk is the longest chunk defaultChunk picks.
	MaxDefaultChunk = 24 * time.Hour
	// ChunksPerSlot is how many chunks defaultChunk cuts a range into per
	// chunk run at once (Parallelism): enough that a slow chunk does not
	// leave the others idle for long, few enough that Temporal's cost of a
	// chunk (an activity, its workflow task and heartbeats: ~10 ms of the
	// server's CPU here) stays small beside its work.
	ChunksPerSlot          = 4
	DefaultParallelism     = 8
	DefaultMaxChunksPerRun = 1000
	DefaultProgressEvery   = 2 * time.Second
	// DefaultHeartbeatTimeout lets a chunk's worker crash be noticed within
	// this time; its retry then resumes after the last heartbeat.
	DefaultHeartbeatTimeout = 30 * time.Second
	// DefaultStallTimeout fails a chunk attempt that consumed no event for
	// this long; its retry resumes after the last heartbeat.
	DefaultStallTimeout     = 10 * time.Minute
	DefaultWatermark        = WatermarkRefuse
	DefaultWatermarkTimeout = time.Hour
)

// unpatched, set by tests only, runs today's code as if written without
// its workflow.GetVersion patch, to show that the patch is what keeps old
// histories replayable.
var unpatched bool

// legacyParallelism is DefaultParallelism of histories started before
// versionDefaults.
const legacyParallelism = 4

// Workflow versions (workflow.GetVersion) of Backfill, see README.md.
const (
	// versionChange names the change; its versions are below.
	versionChange = "backfill"
	// versionDefaults: the current defaults, limits, the watermark policy,
	// the parallelism update, counts of writes, the sink's manifest.
	// Histories without the marker replay as before it.
	versionDefaults workflow.Version = 1
	// versionRuns: every trigger source's watermark is checked, and one
	// without any counts as behind; a range that truncation leaves empty
	// fails instead of ending done; the run identity (BackfillState.Run)
	// tags the feature store's records; a file sink's folder is cleared of
	// an earlier backfill of the same workflow ID before anything runs.
	versionRuns workflow.Version = 2
	// versionChunkSized: a range backfill that sets no Chunk gets one sized
	// to its range and parallelism (defaultChunk), not always an hour.
	versionChunkSized workflow.Version = 3
	// versionLatest is the version new backfills run.
	versionLatest = versionChunkSized
)

// BackfillInput asks for a backfill: a job over a time range or over a
// sample table. It is JSON, so the stock CLI can start one:
//
//	temporal workflow start --task-queue tidemark --type Backfill \
//	  --input '{"job":"credit.limit","from":"2026-11-01T00:00:00Z","to":"2026-11-02T00:00:00Z","chunk":"1h"}'
type BackfillInput struct {
	// Job is the name of a job the workers know. Required.
	Job string `json:"job"`
	// From, To: the backfill replays the job's trigger events with
	// From <= event time < To (RFC 3339). Required unless Sample is set.
	From time.Time `json:"from,omitzero"`
	To   time.Time `json:"to,omitzero"`
	// Sample, instead of a range, is a sample table of (key, time) rows:
	// a path the workers can read, file:///path or s3://bucket/key (see
	// activities.SampleChunk for the format). Each row runs the job once,
	// as of the row's time.
	Sample string `json:"sample,omitempty"`
	// Chunk is the time span of a range chunk, e.g. "15m". Default: the
	// range over ChunksPerSlot × Parallelism, in whole hours from 1h to
	// 24h (1h for backfills started before versionChunkSized).
	Chunk Duration `json:"chunk,omitzero"`
	// ChunkRows is the number of sample rows per chunk. Default: about the
	// table over ChunksPerSlot × Parallelism, aimed within 10 000
	// (activities.DefaultChunkRows) and 100 000 rows
	// (activities.MaxSizedChunkRows), in whole row groups of a Parquet
	// table (never split; the last round of chunks half as large, so the
	// backfill's last chunks end soon) or multiples of 10 000 rows
	// of a CSV table, sized by the plan (10 000 before versionChunkSized).
	ChunkRows int `json:"chunkRows,omitempty"`
	// Parallelism is the most chunks run at once, 1 to MaxParallelism.
	// Default DefaultParallelism (8; 4 for histories started before
	// versionDefaults).
	Parallelism int `json:"parallelism,omitempty"`
	// Sink, KnownAt, Params, SegmentEvents: how each chunk runs the job
	// (see activities.Options). Default: as live, to the job's outputs.
	activities.Options
	// MaxChunksPerRun: after starting this many chunks, the workflow waits
	// for them and continues as new (also when Temporal suggests it), so
	// its history stays small. Default 1000.
	MaxChunksPerRun int `json:"maxChunksPerRun,omitempty"`
	// ProgressEvery is the least time between two publications of the
	// progress as search attributes and memo. Default 2s.
	ProgressEvery Duration `json:"progressEvery,omitzero"`
	// HeartbeatTimeout of a chunk: how soon a dead worker's chunk is
	// retried elsewhere. Default 30s.
	HeartbeatTimeout Duration `json:"heartbeatTimeout,omitzero"`
	// StallTimeout fails a chunk attempt that consumed no event (sample
	// row) for this long, so that a stuck chunk is retried instead of
	// hiding behind its heartbeats. Default 10m.
	StallTimeout Duration `json:"stallTimeout,omitzero"`
	// Watermark is what to do when the input reaches past the trigger
	// source's watermark: "refuse" (default), "wait" or "truncate" (see
	// WatermarkRefuse).
	Watermark string `json:"watermark,omitempty"`
	// WatermarkTimeout bounds the wait of Watermark "wait". Default 1h.
	WatermarkTimeout Duration `json:"watermarkTimeout,omitzero"`
	// State carries the progress across continue-as-new; leave it unset.
	State *BackfillState `json:"state,omitempty"`
}

// BackfillState is what a run hands to its continuation.
type BackfillState struct {
	Plan activities.Plan `json:"plan"`
	// Chunks is the number of chunks; chunks [0, Next) were started, and
	// Done of them finished. A run continues as new only when every chunk
	// it started is done.
	Chunks  int       `json:"chunks"`
	Next    int       `json:"next"`
	Done    int       `json:"done"`
	Summary Summary   `json:"summary"`
	Started time.Time `json:"started"`
	Runs    int       `json:"runs"`
	// Version is the workflow version of the first run; continuations
	// keep its behaviour.
	Version workflow.Version `json:"version,omitempty"`
	// Run is the first run's ID (versions from 2): with the workflow ID, it
	// tells this backfill from an earlier one started with the same ID.
	Run string `json:"run,omitempty"`
}

// Summary is the result of a backfill.
type Summary struct {
	Job    string `json:"job"`
	Chunks int    `json:"chunks"`
	// ChunkRows: of a sample table, the rows per chunk the plan chose
	// (BackfillInput.ChunkRows, or the size it aimed at when that is 0,
	// before a Parquet plan halved its last round's chunks). A Parquet
	// table's chunks are whole row groups: where a group holds more rows
	// than BackfillInput.ChunkRows, ChunkRows is the rows over the chunks
	// if that is more, and Warnings say so with the largest chunk's rows.
	ChunkRows int `json:"chunkRows,omitempty"`
	// Events: trigger-source events replayed, or sample rows read.
	Events int `json:"events"`
	// Outputs: records produced (OK runs) and given to the sink.
	Outputs int `json:"outputs"`
	// What the sink did with them (feature store and file sinks):
	// written, unchanged (fill: the trigger had a record), replaced
	// (replace: a new version).
	Written   int `json:"written"`
	Unchanged int `json:"unchanged"`
	Replaced  int `json:"replaced"`
	// Errors: runs that failed or were stale (Failed + Stale).
	Errors int `json:"errors"`
	Failed int `json:"failed"`
	Stale  int `json:"stale"`
	// Missing and WithState: sample rows whose key had no state at the
	// row's time (not errors: a training set gets a row of nulls for each)
	// and those whose key had.
	Missing   int `json:"missing"`
	WithState int `json:"withState,omitempty"`
	// SpacedKeys: sample rows whose key begins or ends with white space
	// (matched as written); SpacedKey names one (ChunkResult.SpacedKey).
	SpacedKeys int    `json:"spacedKeys,omitempty"`
	SpacedKey  string `json:"spacedKey,omitempty"`
	Skipped    int    `json:"skipped"`
	// FirstErrors: a few error messages.
	FirstErrors []string `json:"firstErrors,omitempty"`
	// Resumed: chunks that resumed after a heartbeat of a failed attempt.
	Resumed int `json:"resumed"`
	// Duration from the start of the first run to the end.
	Duration Duration `json:"duration"`
	// Runs: the number of workflow runs (1 + continue-as-new count).
	Runs int `json:"runs"`
	// ParamVersions: the parameter versions the records were computed
	// with (at most 100).
	ParamVersions []int64 `json:"paramVersions,omitempty"`
	// Truncated: the range ran up to the watermark only, To (exclusive).
	Truncated bool      `json:"truncated,omitempty"`
	To        time.Time `json:"to,omitzero"`
	// Warnings: what the caller must know although the backfill is done,
	// e.g. that its range held no event.
	Warnings []string `json:"warnings,omitempty"`
}

func (s *Summary) add(r *activities.ChunkResult) {
	s.Events += r.Events
	s.Outputs += r.Outputs
	s.Failed += r.Failed
	s.Stale += r.Stale
	s.Missing += r.Missing
	s.WithState += r.WithState
	if s.SpacedKeys == 0 {
		s.SpacedKey = r.SpacedKey
	}
	s.SpacedKeys += r.SpacedKeys
	s.Skipped += r.Skipped
	s.Written += r.Written
	s.Unchanged += r.Unchanged
	s.Replaced += r.Replaced
	for _, v := range r.ParamVersions {
		if i, found := slices.BinarySearch(s.ParamVersions, v); !found && len(s.ParamVersions) < 100 {
			s.ParamVersions = slices.Insert(s.ParamVersions, i, v)
		}
	}
	s.Errors = s.Failed + s.Stale
	if r.Resumed {
		s.Resumed++
	}
	for _, e := range r.Errors {
		if len(s.FirstErrors) < 10 {
			s.FirstErrors = append(s.FirstErrors, fmt.Sprintf("chunk %d: %s", r.Index, e))
		}
	}
}

// Progress is the answer of the progress query.
type Progress struct {
	Job string `json:"job"`
	// State: "planning", "running", "canceling", "done", "failed", "canceled".
	State string `json:"state"`
	// Chunks in all; Done of them finished, Running now.
	Chunks  int `json:"chunks"`
	Done    int `json:"done"`
	Running int `json:"running"`
	// Percent done: of a sample table, its rows in finished chunks over
	// Rows (the chunks of a sized plan differ in size: its last ones are
	// smaller); of a range, its chunks finished over Chunks.
	Percent float64 `json:"percent"`
	// Rows of the sample table (0 for a range): the events to expect.
	Rows int `json:"rows,omitempty"`
	// Counts of finished chunks.
	Events    int `json:"events"`
	Outputs   int `json:"outputs"`
	Written   int `json:"written"`
	Unchanged int `json:"unchanged"`
	Replaced  int `json:"replaced"`
	Errors    int `json:"errors"`
	// Missing: sample rows whose key had no state (Summary.Missing).
	Missing int `json:"missing,omitempty"`
	// Parallelism now.
	Parallelism int `json:"parallelism,omitempty"`
	// Warnings so far (see Summary.Warnings).
	Warnings []string `json:"warnings,omitempty"`
	// Started is the start of the first run; Elapsed the time since.
	Started time.Time `json:"started"`
	Elapsed Duration  `json:"elapsed"`
	Runs    int       `json:"runs"`
}

// Validate reports what is wrong with in, limits included; it does not
// check what only the workers know (the job's name, the sink, a sample
// table's size), which the plan activity does.
func (in *BackfillInput) Validate() error { return in.validate(versionLatest) }

// negative is the error of the inputs of fields that are negative.
func negative(fields map[string]int64) error {
	var names []string
	for name, v := range fields {
		if v < 0 {
			names = append(names, fmt.Sprintf("%s %d", name, v))
		}
	}
	slices.Sort(names)
	return fmt.Errorf("backfill: %s: must not be negative", strings.Join(names, ", "))
}

// validate applies the rules of workflow version v: a running backfill is
// judged by the rules of the version that started it, so that its history
// replays (a limit added later would refuse an input that ran).
func (in *BackfillInput) validate(v workflow.Version) error {
	switch {
	case in.Job == "":
		return errors.New("backfill: no job")
	case in.Sample != "" && (!in.From.IsZero() || !in.To.IsZero()):
		return errors.New("backfill: give either a range (from, to) or a sample table, not both")
	case in.Sample == "" && (in.From.IsZero() || in.To.IsZero()):
		return errors.New("backfill: give a range (from, to) or a sample table")
	case in.Sample == "" && !in.From.Before(in.To):
		return fmt.Errorf("backfill: range [%v, %v) is empty", in.From, in.To)
	case in.Sample == "" && in.To.Sub(in.From) >= 100*365*24*time.Hour:
		return fmt.Errorf("backfill: range [%v, %v) is longer than 100 years", in.From, in.To)
	case in.Chunk < 0, in.ChunkRows < 0, in.Parallelism < 0, in.MaxChunksPerRun < 0, in.ProgressEvery < 0, in.HeartbeatTimeout < 0:
		return negative(map[string]int64{"chunk": int64(in.Chunk), "chunkRows": int64(in.ChunkRows), "parallelism": int64(in.Parallelism),
			"maxChunksPerRun": int64(in.MaxChunksPerRun), "progressEvery": int64(in.ProgressEvery), "heartbeatTimeout": int64(in.HeartbeatTimeout)})
	case v < versionDefaults:
		return nil // the rules below came with versionDefaults
	case in.StallTimeout < 0, in.WatermarkTimeout < 0, in.SegmentEvents < 0:
		return negative(map[string]int64{"stallTimeout": int64(in.StallTimeout), "watermarkTimeout": int64(in.WatermarkTimeout), "segmentEvents": int64(in.SegmentEvents)})
	case in.Parallelism > MaxParallelism:
		return fmt.Errorf("backfill: parallelism %d is above the limit of %d chunks at once", in.Parallelism, MaxParallelism)
	}
	switch in.Watermark {
	case "", WatermarkRefuse, WatermarkWait:
	case WatermarkTruncate:
		if in.Sample != "" {
			return errors.New(`backfill: watermark "truncate" cuts a range; a sample table takes "refuse" or "wait"`)
		}
	default:
		return fmt.Errorf("backfill: watermark %q: want %q, %q or %q", in.Watermark, WatermarkRefuse, WatermarkWait, WatermarkTruncate)
	}
	if in.Sample == "" && in.Chunk > 0 {
		if n := (eventcenter.Chunks{From: in.From, To: in.To, Size: time.Duration(in.Chunk)}).Len(); n > MaxChunks {
			return fmt.Errorf("backfill: range [%v, %v) in chunks of %v makes %d chunks, more than %d: choose a larger chunk",
				in.From.UTC().Format(time.RFC3339), in.To.UTC().Format(time.RFC3339), time.Duration(in.Chunk), n, MaxChunks)
		}
	}
	return nil
}

// WithDefaults returns in validated and with every default written in, as
// starters (our CLI, tests) should send it: a backfill started so never
// depends on a default of the worker that runs it, which may change while
// it runs (see README.md, "Versioning").
func (in BackfillInput) WithDefaults() (BackfillInput, error) {
	if err := in.Validate(); err != nil {
		return in, err
	}
	in.setDefaults(versionLatest)
	return in, in.Validate() // the default chunk may make too many
}

// setDefaults fills what in leaves unset with the defaults of workflow
// version v.
func (in *BackfillInput) setDefaults(v workflow.Version) {
	parallelism := DefaultParallelism
	if v < versionDefaults {
		parallelism = legacyParallelism
	}
	if in.Parallelism == 0 {
		in.Parallelism = parallelism
	}
	if in.Chunk == 0 {
		in.Chunk = Duration(DefaultChunk)
		if v >= versionChunkSized && in.Sample == "" {
			in.Chunk = Duration(defaultChunk(in.To.Sub(in.From), in.Parallelism))
		}
	}
	if in.MaxChunksPerRun == 0 {
		in.MaxChunksPerRun = DefaultMaxChunksPerRun
	}
	if in.ProgressEvery == 0 {
		in.ProgressEvery = Duration(DefaultProgressEvery)
	}
	if in.HeartbeatTimeout == 0 {
		in.HeartbeatTimeout = Duration(DefaultHeartbeatTimeout)
	}
	if in.SegmentEvents == 0 {
		// By sink and input, for every version: the segment is the
		// chunks' input, which replay does not compare, and a
		// continuation carries the one its first run resolved.
		in.SegmentEvents = activities.SegmentEventsFor(in.Sink, in.Sample != "")
	}
	if v < versionDefaults {
		return // the fields below came with versionDefaults
	}
	if in.StallTimeout == 0 {
		in.StallTimeout = Duration(DefaultStallTimeout)
	}
	if in.Watermark == "" {
		in.Watermark = DefaultWatermark
	}
	if in.WatermarkTimeout == 0 {
		in.WatermarkTimeout = Duration(DefaultWatermarkTimeout)
	}
	if in.Write == "" {
		in.Write = activities.WriteFill
	}
}

// defaultChunk is the chunk of a range of span run parallelism chunks at
// once: span over ChunksPerSlot × parallelism, rounded up to whole hours,
// from DefaultChunk (1h) to MaxDefaultChunk (24h). A day at parallelism 8
// keeps hours (24 chunks); at 2 it gets 3h (8 chunks); a quarter at 8
// gets days.
func defaultChunk(span time.Duration, parallelism int) time.Duration {
	per := span / time.Duration(ChunksPerSlot*max(parallelism, 1))
	chunk := (per + time.Hour - 1).Truncate(time.Hour)
	return min(max(chunk, DefaultChunk), MaxDefaultChunk)
}

// rangeChunks cuts a validated range backfill as replays are cut.
func rangeChunks(in BackfillInput) eventcenter.Chunks {
	return eventcenter.Chunks{From: in.From, To: in.To, Size: time.Duration(in.Chunk)}
}

// badInput is the workflow's error for an input it refuses.
func badInput(err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadInput, nil)
}

// Error types the workflow fails with, besides the activities' own.
const (
	ErrTypeBadInput    = "BadInput"
	ErrTypeChunkFailed = "ChunkFailed"
	// ErrTypeWatermark: the input reaches past the trigger source's
	// watermark (Watermark "refuse", or "wait" timed out).
	ErrTypeWatermark = "Watermark"
)

// Backfill runs a job over a time range or a sample table in chunks (see
// the package documentation). It returns the Summary; a cancelled backfill
// ends cancelled with the Summary so far as details, a failed chunk (after
// its retries) fails it with the Summary so far as details.
func Backfill(ctx workflow.Context, in BackfillInput) (Summary, error) {
	logger := workflow.GetLogger(ctx)
	var a *activities.Backfill

	// The version first, then the rules of that version: validating by
	// today's rules would refuse, on replay, an old input that ran.
	st := in.State
	if st == nil {
		st = &BackfillState{Started: workflow.Now(ctx), Summary: Summary{Job: in.Job}}
		if unpatched {
			st.Version = versionLatest
		} else {
			st.Version = workflow.GetVersion(ctx, versionChange, workflow.DefaultVersion, versionLatest)
		}
		if st.Version >= versionRuns { // this is the first run
			st.Run = workflow.GetInfo(ctx).WorkflowExecution.RunID
		}
	}
	if err := in.validate(st.Version); err != nil {
		return Summary{}, badInput(err)
	}
	v1 := st.Version >= versionDefaults
	v2 := st.Version >= versionRuns
	in.setDefaults(st.Version)
	st.Runs++
	st.Summary.Runs = st.Runs
	running := 0
	state := "planning"
	progress := func() Progress {
		p := Progress{
			Job: in.Job, State: state, Chunks: st.Chunks, Done: st.Done, Running: running,
			Events: st.Summary.Events, Outputs: st.Summary.Outputs, Errors: st.Summary.Errors,
			Written: st.Summary.Written, Unchanged: st.Summary.Unchanged, Replaced: st.Summary.Replaced, Missing: st.Summary.Missing,
			Started: st.Started, Elapsed: Duration(workflow.Now(ctx).Sub(st.Started)), Runs: st.Runs,
			Parallelism: in.Parallelism, Warnings: st.Summary.Warnings,
		}
		if st.Plan.Sample != nil {
			p.Rows = st.Plan.Sample.Rows
		}
		switch {
		case p.Rows > 0:
			p.Percent = min(100, float64(p.Events)*100/float64(p.Rows))
		case st.Chunks > 0:
			p.Percent = float64(p.Done) * 100 / float64(st.Chunks)
		}
		return p
	}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (Progress, error) { return progress(), nil }); err != nil {
		return Summary{}, err
	}
	// wake unblocks the chunk loop after an update of the parallelism.
	wake := workflow.NewBufferedChannel(ctx, 1)
	if v1 {
		err := workflow.SetUpdateHandlerWithOptions(ctx, ParallelismUpdate,
			func(ctx workflow.Context, n int) (int, error) {
				old := in.Parallelism
				in.Parallelism = n
				wake.SendAsync(true)
				return old, nil
			},
			workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, n int) error {
				if n < 1 || n > MaxParallelism {
					return fmt.Errorf("backfill: parallelism %d: want 1 to %d", n, MaxParallelism)
				}
				return nil
			}})
		if err != nil {
			return Summary{}, err
		}
	}
	var published time.Time
	publish := func(force bool) {
		now := workflow.Now(ctx)
		if !force && now.Sub(published) < time.Duration(in.ProgressEvery) {
			return
		}
		published = now
		p := progress()
		if err := workflow.UpsertTypedSearchAttributes(ctx,
			SearchJob.ValueSet(in.Job), SearchProgress.ValueSet(p.Percent), SearchEvents.ValueSet(int64(p.Events))); err != nil {
			logger.Warn("backfill: progress search attributes", "error", err)
		}
		if err := workflow.UpsertMemo(ctx, map[string]any{ProgressMemo: p}); err != nil {
			logger.Warn("backfill: progress memo", "error", err)
		}
	}
	warn := func(msg string) {
		logger.Warn("backfill: " + msg)
		st.Summary.Warnings = append(st.Summary.Warnings, msg)
	}
	// finish ends the backfill: for file sinks (v1) it writes the manifest
	// and, when done, the _SUCCESS marker.
	finish := func(status string, err error) (Summary, error) {
		state = status
		if v1 && activities.IsFileSink(in.Sink) {
			fctx, cancel := workflow.NewDisconnectedContext(ctx)
			defer cancel()
			fctx = workflow.WithActivityOptions(fctx, workflow.ActivityOptions{
				StartToCloseTimeout: 10 * time.Minute,
				RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5},
			})
			resolved := in.withoutState()
			if resolved.ChunkRows == 0 && st.Plan.Sample != nil {
				resolved.ChunkRows = st.Plan.Sample.ChunkRows // as the plan sized them
			}
			input, _ := json.Marshal(resolved)
			summary, _ := json.Marshal(st.Summary)
			fin := activities.FinishInput{
				Backfill: workflow.GetInfo(ctx).WorkflowExecution.ID, Run: st.Run, Job: in.Job, Options: in.Options,
				Status: status, Input: input, Summary: summary,
			}
			if st.Plan.Sample != nil {
				fin.Sample = st.Plan.Sample.Table()
			}
			switch {
			case err != nil:
				fin.Error = finishError(err)
			case status == "canceled":
				fin.Error = "canceled: a request to cancel the backfill's workflow"
			}
			ferr := workflow.ExecuteActivity(fctx, a.BackfillFinish, fin).Get(fctx, nil)
			if ferr != nil && err == nil {
				state = "failed"
				err = temporal.NewNonRetryableApplicationError("backfill: manifest: "+ferr.Error(), "Manifest", ferr, st.Summary)
			}
		}
		publish(true)
		return st.Summary, err
	}

	opts := in.Options
	if st.Chunks == 0 {
		publish(true)
		if v2 && activities.IsFileSink(in.Sink) {
			// The folder is this backfill's from now on, also for its
			// manifest if it fails: an earlier backfill of this workflow
			// ID must not be read as part of it.
			cctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
				StartToCloseTimeout: 10 * time.Minute,
				RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5},
			})
			var removed int
			if err := workflow.ExecuteActivity(cctx, a.BackfillClear, activities.ClearInput{
				Backfill: workflow.GetInfo(ctx).WorkflowExecution.ID, Job: in.Job, Options: in.Options,
			}).Get(ctx, &removed); err != nil {
				return finish("failed", err)
			}
			if removed > 0 {
				warn(fmt.Sprintf("removed %d objects of an earlier backfill with this ID from the sink", removed))
			}
		}
		planCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: time.Hour,
			HeartbeatTimeout:    time.Minute,
			RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5},
		})
		plan := activities.Plan{}
		planIn := activities.PlanInput{Job: in.Job, Options: opts, Sample: in.Sample, ChunkRows: in.ChunkRows}
		if in.Sample != "" && in.ChunkRows == 0 && st.Version >= versionChunkSized {
			// The plan sizes the chunks, as defaultChunk does a range's
			// (and as for a range, backfills of earlier versions keep the
			// earlier default: 10 000 rows).
			planIn.Chunks = ChunksPerSlot * in.Parallelism
		}
		err := workflow.ExecuteActivity(planCtx, a.BackfillPlan, planIn).Get(ctx, &plan)
		if err != nil {
			return finish("failed", err)
		}
		st.Plan = plan
		switch {
		case v2:
			if err := watermarks(ctx, &in, st, warn); err != nil {
				return finish("failed", err)
			}
		case v1:
			if err := watermark(ctx, &in, st, warn); err != nil {
				return finish("failed", err)
			}
		}
		if plan.Sample != nil {
			st.Chunks = len(plan.Sample.Offsets)
			st.Summary.ChunkRows = plan.Sample.ChunkRows
			if in.ChunkRows > 0 { // a sized plan's chunks are as large as it chose
				if largest := plan.Sample.LargestChunk(); largest > in.ChunkRows {
					warn(fmt.Sprintf("the sample table's row groups hold more than the %d rows per chunk asked: its chunks are whole row groups, the largest of %d rows", in.ChunkRows, largest))
					// What "about" the chunks hold; small groups left over
					// between large ones may bring the mean below the rows
					// asked, which then stay.
					st.Summary.ChunkRows = max(in.ChunkRows, (plan.Sample.Rows+st.Chunks/2)/st.Chunks)
				}
			}
		} else if in.From.Before(in.To) {
			n := rangeChunks(in).Len()
			if n > MaxChunks { // validated; kept for inputs of old versions
				return finish("failed", badInput(fmt.Errorf("backfill: %d chunks, more than %d", n, MaxChunks)))
			}
			st.Chunks = n
		}
		st.Summary.Chunks = st.Chunks
		if st.Chunks == 0 { // an empty sample table, or a range truncated to nothing
			if v1 {
				warn(fmt.Sprintf("the input held 0 events of %s: nothing ran", plan.Source))
			}
			return finish("done", nil)
		}
	}

	state = "running"
	chunkCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 24 * time.Hour,
		HeartbeatTimeout:    time.Duration(in.HeartbeatTimeout),
		WaitForCancellation: true,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
			MaximumAttempts:    20,
		},
	})
	backfillID := workflow.GetInfo(ctx).WorkflowExecution.ID
	chunkInput := func(i int) activities.ChunkInput {
		c := activities.ChunkInput{Backfill: backfillID, Run: st.Run, Job: in.Job, Index: i, Options: opts, StallTimeout: time.Duration(in.StallTimeout)}
		if st.Plan.Sample != nil {
			c.Sample = st.Plan.Sample.Chunk(i)
		} else {
			r := rangeChunks(in).At(i)
			c.From, c.To = r.From, r.To
		}
		return c
	}

	sel := workflow.NewSelector(ctx)
	setPar := workflow.GetSignalChannel(ctx, ParallelismSignal)
	parallelism := func(c workflow.ReceiveChannel) {
		var n int
		c.Receive(ctx, &n)
		switch {
		case n < 1:
			logger.Warn("backfill: ignoring parallelism below 1", "parallelism", n)
			return
		case n > MaxParallelism && v1:
			logger.Warn("backfill: parallelism above the limit, clamped", "parallelism", n, "limit", MaxParallelism)
			n = MaxParallelism
		}
		in.Parallelism = n
	}
	sel.AddReceive(setPar, func(c workflow.ReceiveChannel, _ bool) { parallelism(c) })
	sel.AddReceive(wake, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
	var failure error
	started := 0
	publish(true)
	for {
		for running < in.Parallelism && st.Next < st.Chunks && failure == nil && ctx.Err() == nil &&
			started < in.MaxChunksPerRun && !workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			ci := chunkInput(st.Next)
			st.Next++
			running++
			started++
			sel.AddFuture(workflow.ExecuteActivity(chunkCtx, a.BackfillChunk, ci), func(f workflow.Future) {
				running--
				var r activities.ChunkResult
				if err := f.Get(ctx, &r); err != nil {
					if failure == nil && !temporal.IsCanceledError(err) {
						failure = fmt.Errorf("backfill: chunk %d: %w", ci.Index, err)
					}
					return
				}
				st.Done++
				st.Summary.add(&r)
			})
		}
		if running == 0 {
			break
		}
		sel.Select(ctx)
		if ctx.Err() != nil {
			state = "canceling"
		}
		publish(false)
	}
	st.Summary.Duration = Duration(workflow.Now(ctx).Sub(st.Started))

	switch {
	case ctx.Err() != nil:
		sum, _ := finish("canceled", nil)
		return sum, temporal.NewCanceledError(sum)
	case failure != nil:
		return finish("failed", temporal.NewNonRetryableApplicationError(failure.Error(), ErrTypeChunkFailed, failure, st.Summary))
	case st.Next < st.Chunks:
		for setPar.Len() > 0 { // carry pending signals into the next run
			parallelism(setPar)
		}
		publish(true)
		next := in
		next.State = st
		logger.Info("backfill: continuing as new", "done", st.Next, "chunks", st.Chunks)
		return Summary{}, workflow.NewContinueAsNewError(ctx, BackfillWorkflow, next)
	}
	switch sum := &st.Summary; {
	case v1 && sum.Events == 0:
		warn(fmt.Sprintf("the input held 0 events of %s: check the range (or the sample table) and the source", st.Plan.Source))
	case st.Plan.Sample != nil && sum.Missing > 0 && sum.WithState == 0 && sum.Outputs == 0:
		// (Outputs too: chunks of workers older than WithState count none.)
		warn(fmt.Sprintf("none of the %d sample rows had state: no key had a change in %s at or before its row's time (as known at --known-at, if given); check the key column and the times (a time cut to microseconds is before a change stored to the nanosecond)",
			sum.Events, st.Plan.Source))
	}
	if n := st.Summary.SpacedKeys; n > 0 {
		warn(fmt.Sprintf("%d sample rows have a key that begins or ends with white space (%s): keys are matched as written, so such a row finds no state unless its key was stored with the spaces; trim the key column if they are not part of the keys",
			n, st.Summary.SpacedKey))
	}
	return finish("done", nil)
}

// withoutState returns in without the continue-as-new state (for the
// manifest).
func (in BackfillInput) withoutState() BackfillInput {
	in.State = nil
	return in
}

// watermarks applies in.Watermark (versions from 2) when the input needs
// events after the time up to which every trigger source has stored them:
// the earliest of the sources' watermarks, never later than now. A source
// without a watermark (at the floor, or never reported) has stored nothing
// known, so it holds that time at zero: "refuse" fails naming it, "wait"
// waits for it, "truncate" leaves no range, which fails too (nothing ran:
// the backfill must not end done). The input is then covered, or the
// backfill waits for it, refuses it or truncates its range.
func watermarks(ctx workflow.Context, in *BackfillInput, st *BackfillState, warn func(string)) error {
	plan := &st.Plan
	var last time.Time // the latest event time the input needs
	if plan.Sample != nil {
		last = plan.Sample.Latest
	} else {
		last = in.To.Add(-time.Nanosecond)
	}
	if last.IsZero() {
		return nil
	}
	ws := plan.Watermarks
	if len(ws) == 0 { // a plan by a worker of an older version: the earliest
		ws = []activities.SourceWatermark{{Source: plan.Source, Watermark: plan.Watermark, Floor: plan.Floor}}
	}
	lowest := ws[0] // the source furthest behind
	for _, w := range ws[1:] {
		if w.Watermark.Before(lowest.Watermark) {
			lowest = w
		}
	}
	covered, clock := lowest.Watermark, false
	what := "the watermark of " + lowest.Source
	switch now := workflow.Now(ctx); {
	case lowest.Floor:
		what += ", at the floor: a partition has stored nothing yet"
	case covered.IsZero():
		what += ", which it has never reported: nothing says any of its events is stored"
	case covered.After(now):
		covered, what, clock = now, "now", true
	}
	if !covered.Before(last) {
		return nil
	}
	if !covered.IsZero() {
		what += " (" + covered.UTC().Format(time.RFC3339Nano) + ")"
	}
	behind := fmt.Sprintf("the input reaches %s, after %s", last.UTC().Format(time.RFC3339Nano), what)
	switch in.Watermark {
	case WatermarkTruncate:
		to := covered.Add(time.Nanosecond)
		if !to.After(in.From) {
			return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
				"backfill: nothing ran: %s, which leaves nothing of the range [%s, %s) (watermark: truncate). Start it again with watermark \"wait\" (up to watermarkTimeout) or later",
				behind, in.From.UTC().Format(time.RFC3339Nano), in.To.UTC().Format(time.RFC3339Nano)), ErrTypeWatermark, nil)
		}
		warn(fmt.Sprintf("%s: ran [%s, %s) only (watermark: truncate)", behind,
			in.From.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano)))
		in.To = to
		st.Summary.Truncated, st.Summary.To = true, to
		return nil
	case WatermarkWait:
		return waitWatermark(ctx, in, plan, last, workflow.Now(ctx), clock, behind)
	}
	hint := fmt.Sprintf(`watermark "wait" (up to watermarkTimeout) or "truncate" (a range up to %s)`, what)
	switch {
	case covered.IsZero():
		hint = fmt.Sprintf(`watermark "wait" (up to watermarkTimeout), or when ingest has stored events of %s`, lowest.Source)
	case in.Sample != "":
		hint = sampleWatermarkHint(what)
	}
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
		"backfill: %s: its later events may not all be stored yet. Start it again with %s", behind, hint), ErrTypeWatermark, nil)
}

// watermark is watermarks of version 1, for its histories: it applies
// in.Watermark when the input needs events after the
// time up to which they are known to be stored: the trigger source's
// watermark, and never later than now. A source that reports no watermark
// cannot be checked: its input may run up to now, with a warning. The
// input is then covered, or the backfill waits for it, refuses it or
// truncates its range.
func watermark(ctx workflow.Context, in *BackfillInput, st *BackfillState, warn func(string)) error {
	plan := &st.Plan
	var last time.Time // the latest event time the input needs
	if plan.Sample != nil {
		last = plan.Sample.Latest
	} else {
		last = in.To.Add(-time.Nanosecond)
	}
	now := workflow.Now(ctx)
	covered, what := plan.Watermark, "the watermark of "+plan.Source
	switch {
	case plan.Floor:
		// A partition registered at the floor: nothing is known stored.
		what = "the watermark of " + plan.Source + ", at the floor: a partition has stored nothing yet"
	case covered.IsZero() || covered.After(now):
		covered, what = now, "now"
	}
	if last.IsZero() || !covered.Before(last) {
		if plan.Watermark.IsZero() && !last.IsZero() {
			warn(fmt.Sprintf("%s reports no watermark: nothing says that the input's events are all stored", plan.Source))
		}
		return nil
	}
	behind := fmt.Sprintf("the input reaches %s, after %s (%s)", last.UTC().Format(time.RFC3339Nano), what, covered.UTC().Format(time.RFC3339Nano))
	switch in.Watermark {
	case WatermarkTruncate:
		to := covered.Add(time.Nanosecond)
		if !to.After(in.From) {
			to = in.From
		}
		warn(fmt.Sprintf("%s: ran [%s, %s) only (watermark: truncate)", behind,
			in.From.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano)))
		in.To = to
		st.Summary.Truncated, st.Summary.To = true, to
		return nil
	case WatermarkWait:
		return waitWatermark(ctx, in, plan, last, now, plan.Watermark.IsZero() && !plan.Floor, behind)
	}
	again := fmt.Sprintf("watermark \"wait\" (up to watermarkTimeout) or \"truncate\" (a range up to %s)", what)
	if in.Sample != "" {
		again = sampleWatermarkHint(what)
	}
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
		"backfill: %s: its later events may not all be stored yet. Start it again with %s", behind, again), ErrTypeWatermark, nil)
}

// sampleWatermarkHint is what a sample table whose rows reach past what
// (the watermark, or now) can be started again with: a table is not
// truncated.
func sampleWatermarkHint(what string) string {
	return fmt.Sprintf(`watermark "wait" (up to watermarkTimeout), or without the table's rows after %s`, what)
}

// Duration is a time.Duration that JSON spells as Go does ("1h30m"); it
// also reads a number of nanoseconds.
type Duration time.Duration

// waitWatermark is watermark "wait" (every version): it waits until the
// input's last event time last is covered — on the clock alone when
// clockOnly (no watermark to wait for: sleep until last, if that is within
// the timeout), else by the BackfillWaitWatermark activity, which updates
// plan.Watermark — and fails with ErrTypeWatermark, naming behind, if that
// does not happen within in.WatermarkTimeout.
func waitWatermark(ctx workflow.Context, in *BackfillInput, plan *activities.Plan, last, now time.Time, clockOnly bool, behind string) error {
	timeout := time.Duration(in.WatermarkTimeout)
	var err error
	if clockOnly {
		if wait := last.Sub(now) + time.Nanosecond; wait > timeout {
			err = fmt.Errorf("%v away", wait)
		} else {
			err = workflow.Sleep(ctx, wait)
		}
	} else {
		var a *activities.Backfill
		wctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: timeout,
			HeartbeatTimeout:    time.Minute,
			RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
		})
		err = workflow.ExecuteActivity(wctx, a.BackfillWaitWatermark, activities.WaitInput{Source: plan.Source, Sources: plan.Sources, Until: last}).Get(ctx, &plan.Watermark)
	}
	if err != nil {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("backfill: %s, and it did not get there within %v (watermark: wait): %v",
			behind, timeout, err), ErrTypeWatermark, err)
	}
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("duration %s: want a string like \"1h\" or nanoseconds", b)
	}
	*d = Duration(n)
	return nil
}

func (d Duration) String() string { return time.Duration(d).String() }

// maxFinishError is the most bytes of a backfill's error that its manifest
// keeps (FinishInput.Error), "…" besides.
const maxFinishError = 4 << 10

// finishError is err's text for the manifest: of an application error,
// its message and then its cause's text only if the message lacks it (the
// SDK's Error adds the cause's text after the message, which this
// workflow's messages already hold: a chunk's failure would read twice),
// cut to maxFinishError.
func finishError(err error) string {
	text := err.Error()
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		text = ae.Message()
		if cause := errors.Unwrap(ae); cause != nil && !strings.Contains(text, cause.Error()) {
			text += ": " + cause.Error()
		}
	}
	return cut(text, maxFinishError)
}

// cut returns s, or its first n bytes (less a character cut in two, and
// any bytes that are not UTF-8) and "…" if it is longer.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…" // a character cut in two dropped
}
