package activities

import (
	"encoding/json"
	"time"

	"github.com/tidemark-dev/tidemark/job/outputs"
)

// Options say how a backfill runs the job; every chunk of one backfill gets
// the same. The zero value runs the job as live does: its own outputs, the
// parameter values current at each trigger's time, the corrected truth.
type Options struct {
	// Sink is where records go:
	//
	//	""                      the job's own outputs (as live)
	//	"featurestore"          the feature store, source "feature.<job>"
	//	"featurestore:<source>" the feature store under another source
	//	"file:///abs/dir"       JSON Lines files in a local folder
	//	"s3://bucket/prefix"    JSON Lines objects on S3
	//
	// File sinks write one object per chunk segment (see SegmentEvents),
	// named <backfill>/<job>/chunk-<index>-<first event ordinal>.<format>,
	// and when the backfill ends <backfill>/<job>/_manifest.json, then (if
	// it is done) <backfill>/<job>/_SUCCESS. Before anything runs, the
	// folder is emptied of an earlier backfill of the same ID
	// (BackfillClear; workflow versions from 2).
	//
	// Over a sample table, a file sink writes the training set: one record
	// per sample row, in table order, with the job's features as of the
	// row's time, or none (nulls) where the key had no state then or the
	// run did not end OK, plus the row's other columns (see
	// outputs.SampleColumn); its ID is the row's, so two rows of one key
	// and time are two records. The other sinks get the OK runs' records.
	Sink string `json:"sink,omitempty"`
	// Format of file sinks: "jsonl" (JSON Lines, the default) or
	// "parquet" (see outputs.Parquet).
	Format string `json:"format,omitempty"`
	// Write is how records reach the feature store (the featurestore sinks
	// and the job's own feature store outputs): "fill" (the default)
	// writes only the records whose trigger has none, counting the others
	// unchanged; "replace" writes a new version of every record, with the
	// job version, parameter version and backfill ID, which latest reads
	// return while as-known-at reads before it still return the old one
	// (see outputs.Replace). Both are idempotent per backfill.
	Write string `json:"write,omitempty"`
	// KnownAt bounds fetches bitemporally: "" the corrected truth,
	// "trigger" what was stored when each trigger was stored (what the live
	// run saw; for sample rows, what was stored by the row's time), or an
	// RFC 3339 time (what was known then; replays skip events stored later).
	KnownAt string `json:"knownAt,omitempty"`
	// Params picks the parameter values: "" or "asof" the version current
	// at each trigger's event time (falls back to "current" if the registry
	// cannot answer as of a time), "current" the current version, "defaults"
	// the declared defaults (version 0).
	Params string `json:"params,omitempty"`
	// ParamsVersion, if above 0, pins every run to that parameter version
	// of the job (a re-run with the values of an approved change, or one
	// before it); Params must then be "". Default 0: Params decides, and
	// its default "asof" reproduces what the live runs used at each
	// trigger's time, which is what a backfill of the past is for.
	ParamsVersion int64 `json:"paramsVersion,omitempty"`
	// SegmentEvents is the number of events (sample rows) between two
	// heartbeats of a chunk, i.e. the most a resumed chunk redoes; file
	// sinks write one object per segment. Default: see SegmentEventsFor.
	SegmentEvents int `json:"segmentEvents,omitempty"`
}

// Defaults of Options.SegmentEvents (SegmentEventsFor).
const (
	// DefaultSegmentEvents is the segment of sample tables and of file
	// sinks. A sample chunk reads, fetches, runs and writes a segment's
	// rows together, holding them in memory, and counts them as progress
	// when the segment ends (stall detection included); a file sink writes
	// a segment as one object, spooled to a temporary file (JSON Lines) or
	// held in memory (Parquet) until then.
	DefaultSegmentEvents = 8192
	// DefaultRangeSegmentEvents is the segment of a range backfill to a
	// sink that writes records as the job makes them (the feature store,
	// the job's own outputs). There it only sets how often a chunk commits
	// its cursor, each commit a heartbeat the Temporal server persists,
	// and how much a resumed chunk redoes: under a second of a fast job's
	// work here, minutes of a job whose fetches are remote. Progress and
	// stall detection count every event as it is read. At 8192 the
	// heartbeats were about a third of the dev server's CPU in a backfill
	// (bench/README.md).
	DefaultRangeSegmentEvents = 65536
)

// SegmentEventsFor is the default Options.SegmentEvents of a backfill to
// the sink spec, of a sample table (sample) or of a range.
func SegmentEventsFor(sink string, sample bool) int {
	if sample || IsFileSink(sink) {
		return DefaultSegmentEvents
	}
	return DefaultRangeSegmentEvents
}

// Write modes of Options.Write.
const (
	WriteFill    = "fill"
	WriteReplace = "replace"
)

// MaxChunks bounds the chunks of a backfill; BackfillPlan refuses a sample
// table that needs more.
const MaxChunks = 1_000_000

// PlanInput asks BackfillPlan to check a backfill and plan a sample table.
type PlanInput struct {
	Job     string  `json:"job"`
	Options Options `json:"options"`
	// Sample, if set, is the URI of a sample table (see SampleChunk.URI);
	// ChunkRows rows go in each chunk. With ChunkRows 0 the table is cut
	// into about Chunks chunks of about DefaultChunkRows to
	// MaxSizedChunkRows rows (see sizedChunkRows; a Parquet table's last
	// round of them half as large, see tailShares), or into chunks of
	// DefaultChunkRows if Chunks is 0 too.
	Sample    string `json:"sample,omitempty"`
	ChunkRows int    `json:"chunkRows,omitempty"`
	Chunks    int    `json:"chunks,omitempty"`
}

// Plan is BackfillPlan's answer.
type Plan struct {
	// Source names the job's trigger sources for messages: the only one,
	// or all of them joined with ", ".
	Source string `json:"source"`
	// Sources are the job's trigger sources.
	Sources []string `json:"sources,omitempty"`
	// Sample is the plan of the sample table, nil for a time range.
	Sample *SamplePlan `json:"sample,omitempty"`
	// Watermark is the earliest of the trigger sources' watermarks when
	// planned: every trigger event up to it is stored. Zero when a trigger
	// source has no watermark.
	Watermark time.Time `json:"watermark,omitzero"`
	// Floor: Watermark is zero because a trigger source has partitions
	// registered at the floor (ingest has assigned them but stored nothing
	// up to any time yet): the source is behind, not unwatched.
	Floor bool `json:"floor,omitempty"`
	// Watermarks are the watermarks of each of Sources, in their order
	// (none in plans made by workers older than this field).
	Watermarks []SourceWatermark `json:"watermarks,omitempty"`
}

// SourceWatermark is a trigger source's watermark when planned.
type SourceWatermark struct {
	Source string `json:"source"`
	// Watermark: every event of Source up to it is stored. Zero when the
	// source has stored nothing known: it has partitions at the floor
	// (Floor), or it never registered or advanced one (an unwatched
	// source, e.g. one no ingest feeds).
	Watermark time.Time `json:"watermark,omitzero"`
	Floor     bool      `json:"floor,omitempty"`
}

// WaitInput asks BackfillWaitWatermark to wait until the watermark of each
// of Sources (or of Source, when Sources is empty) reaches Until.
type WaitInput struct {
	Source  string    `json:"source"`
	Sources []string  `json:"sources,omitempty"`
	Until   time.Time `json:"until"`
}

// ClearInput asks BackfillClear to empty a backfill's file sink folder.
type ClearInput struct {
	Backfill string  `json:"backfill"`
	Job      string  `json:"job"`
	Options  Options `json:"options"`
}

// FinishInput asks BackfillFinish to end a backfill's file sink.
type FinishInput struct {
	Backfill string `json:"backfill"`
	// Run: see ChunkInput.Run.
	Run     string  `json:"run,omitempty"`
	Job     string  `json:"job"`
	Options Options `json:"options"`
	// Status: "done", "failed" or "canceled"; only "done" writes _SUCCESS.
	Status string `json:"status"`
	// Input and Summary are the workflow's, as JSON, copied into the
	// manifest.
	Input   json.RawMessage `json:"input"`
	Summary json.RawMessage `json:"summary"`
	// Sample: of a sample-table backfill, the table as its plan pinned it
	// (nil for a range, or before the plan).
	Sample *SampleTable `json:"sample,omitempty"`
	// Error: why a backfill that is not done ended (Status "failed" or
	// "canceled"), cut by the workflow to 4 KiB and "…".
	Error string `json:"error,omitempty"`
}

// SampleTable is the sample table a backfill read, as its plan pinned it:
// a chunk that found another version failed (ErrTypeSampleChanged), so
// every record of the backfill comes from this version.
type SampleTable struct {
	URI string `json:"uri"`
	// Format: "csv" or "parquet".
	Format string `json:"format"`
	Rows   int    `json:"rows"`
	Size   int64  `json:"size,omitempty"`
	// Version: the S3 object's ETag, or a file's modification time and
	// size (SamplePlan.Version).
	Version string `json:"version,omitempty"`
}

// Table returns the table the plan pinned.
func (p *SamplePlan) Table() *SampleTable {
	format := p.Format
	if format == "" {
		format = "csv"
	}
	return &SampleTable{URI: p.URI, Format: format, Rows: p.Rows, Size: p.Size, Version: p.Version}
}

// SamplePlan locates the chunks of a sample table. CSV: chunk i holds
// rows [i*ChunkRows, min((i+1)*ChunkRows, Rows)) and starts at byte
// Offsets[i]. Parquet: chunk i holds the row groups [Groups[i],
// Groups[i+1]) (the last one to the end), whose column data are the bytes
// [Offsets[i], Ends[i]), and starts at row FirstRows[i]; row groups are
// never split, and are joined while a chunk stays within ChunkRows (a
// sized plan's ChunkRows is the share per chunk it aimed at before it made
// the last round's shares half as large and the others larger by as much:
// see planParquet and tailShares).
type SamplePlan struct {
	URI       string  `json:"uri"`
	Rows      int     `json:"rows"`
	ChunkRows int     `json:"chunkRows"`
	Offsets   []int64 `json:"offsets"`
	// Format: "" (CSV) or "parquet".
	Format    string  `json:"format,omitempty"`
	Ends      []int64 `json:"ends,omitempty"`
	Groups    []int   `json:"groups,omitempty"`
	FirstRows []int   `json:"firstRows,omitempty"`
	// RowGroups is the number of row groups of a Parquet table.
	RowGroups int `json:"rowGroups,omitempty"`
	// Columns of the table and the positions of the key and time columns.
	Columns int `json:"columns"`
	KeyCol  int `json:"keyCol"`
	TimeCol int `json:"timeCol"`
	// Carry names the table's other columns, in table order: each output
	// row of a training-set sink carries their values (see SampleChunk).
	Carry []string `json:"carry,omitempty"`
	// CarryNanos names the carried columns that are timestamps in
	// nanoseconds (a Parquet table's TIMESTAMP(NANOS)): a Parquet sink
	// writes them in nanoseconds too, the other carried times in
	// microseconds (outputs.ParquetOutput.SampleNanos). Empty in plans
	// made before it: their backfills write every carried time in
	// microseconds, as they began.
	CarryNanos []string `json:"carryNanos,omitempty"`
	// Latest is the latest row time.
	Latest time.Time `json:"latest,omitzero"`
	// Size is the table's size in bytes; Version pins its content: the
	// S3 ETag, or for a file its modification time and size. A chunk that
	// finds another version fails (ErrTypeSampleChanged).
	Size    int64  `json:"size,omitempty"`
	Version string `json:"version,omitempty"`
}

// Chunk returns the sample chunk i of the plan.
func (p *SamplePlan) Chunk(i int) *SampleChunk {
	first, rows := p.rowsOf(i)
	if p.Format == FormatParquet {
		groups := p.RowGroups - p.Groups[i]
		if i+1 < len(p.Groups) {
			groups = p.Groups[i+1] - p.Groups[i]
		}
		return &SampleChunk{
			URI: p.URI, Format: p.Format, Offset: p.Offsets[i], End: p.Ends[i], FirstRow: first, Rows: rows,
			FirstGroup: p.Groups[i], RowGroups: groups, Size: p.Size,
			Columns: p.Columns, KeyCol: p.KeyCol, TimeCol: p.TimeCol, Carry: p.Carry, CarryNanos: p.CarryNanos, Version: p.Version,
		}
	}
	end := p.Size
	if i+1 < len(p.Offsets) {
		end = p.Offsets[i+1]
	}
	return &SampleChunk{
		URI: p.URI, Offset: p.Offsets[i], End: end, FirstRow: first, Rows: rows,
		Columns: p.Columns, KeyCol: p.KeyCol, TimeCol: p.TimeCol, Carry: p.Carry, CarryNanos: p.CarryNanos, Version: p.Version,
	}
}

// LargestChunk returns the rows of the plan's largest chunk (0 for none).
func (p *SamplePlan) LargestChunk() int {
	n := 0
	for i := range p.Offsets {
		_, rows := p.rowsOf(i)
		n = max(n, rows)
	}
	return n
}

// rowsOf returns the first row of chunk i and its rows.
func (p *SamplePlan) rowsOf(i int) (first, rows int) {
	if p.Format == FormatParquet {
		first, rows = p.FirstRows[i], p.Rows-p.FirstRows[i]
		if i+1 < len(p.FirstRows) {
			rows = p.FirstRows[i+1] - first
		}
		return first, rows
	}
	first = i * p.ChunkRows
	return first, min(p.ChunkRows, p.Rows-first)
}

// SampleChunk is a run of rows of a sample table.
type SampleChunk struct {
	// URI of the table: a local path, file:///abs/path or s3://bucket/key.
	// A CSV file with a header naming a "key" (or "entity") column and a
	// "time" column, or a Parquet file (.parquet or .pq) with such columns:
	// key a string or integer, time a timestamp, a date or a string. CSV
	// times (and Parquet string times) are RFC 3339, "2006-01-02 15:04:05"
	// (UTC) or "2006-01-02" (UTC midnight). The other columns are carried
	// into the output rows of training-set sinks (Options.Sink file:// or
	// s3://): CSV values as strings (an empty cell as null), Parquet values
	// with their types.
	URI string `json:"uri"`
	// Format: "" (CSV) or "parquet"; a Parquet chunk is the row groups
	// [FirstGroup, FirstGroup+RowGroups) of the file of Size bytes, and
	// Offset, End the bytes of their column data.
	Format     string `json:"format,omitempty"`
	FirstGroup int    `json:"firstGroup,omitempty"`
	RowGroups  int    `json:"rowGroups,omitempty"`
	Size       int64  `json:"size,omitempty"`
	// Carry, CarryNanos: see SamplePlan.
	Carry      []string `json:"carry,omitempty"`
	CarryNanos []string `json:"carryNanos,omitempty"`
	// Offset is the byte offset of the chunk's first row, row number
	// FirstRow (0 is the first row after the header); the chunk has Rows rows,
	// which end at byte End (exclusive; 0: unknown, read to the end).
	Offset   int64 `json:"offset"`
	End      int64 `json:"end,omitempty"`
	FirstRow int   `json:"firstRow"`
	Rows     int   `json:"rows"`
	Columns  int   `json:"columns"`
	KeyCol   int   `json:"keyCol"`
	TimeCol  int   `json:"timeCol"`
	// Version is SamplePlan.Version ("" for plans made before pinning).
	Version string `json:"version,omitempty"`
}

// ChunkInput is one chunk of a backfill: a time range of the job's trigger
// source, or a run of sample rows.
type ChunkInput struct {
	// Backfill names the backfill (its workflow ID) in output file names.
	Backfill string `json:"backfill"`
	// Run identifies this backfill among those of its workflow ID (its
	// first run's ID, the same across continue-as-new): records that the
	// feature store sinks find tagged with Backfill and Run are this
	// backfill's own (a redone segment's), those of an earlier backfill of
	// the same workflow ID are not. Empty in inputs of workflow versions
	// before 2, which tag records with Backfill alone.
	Run     string  `json:"run,omitempty"`
	Job     string  `json:"job"`
	Index   int     `json:"index"`
	Options Options `json:"options"`
	// From, To: the chunk replays the trigger source's events with
	// From <= event time < To. Unset for a sample chunk.
	From time.Time `json:"from,omitzero"`
	To   time.Time `json:"to,omitzero"`
	// Sample, if set, makes this a sample chunk.
	Sample *SampleChunk `json:"sample,omitempty"`
	// StallTimeout fails the attempt (retryably, ErrTypeStalled) when it
	// consumed no event for this long. 0: never.
	StallTimeout time.Duration `json:"stallTimeout,omitempty"`
}

// ChunkResult counts what a chunk did.
type ChunkResult struct {
	Index int `json:"index"`
	// Events: trigger-source events replayed, or sample rows read.
	Events int `json:"events"`
	// Runs of the job by outcome. Outputs is the number of OK runs, whose
	// records went to the sink.
	Outputs int `json:"outputs"`
	// What the sink did with the records: written, unchanged (fill: the
	// trigger had a record) or replaced (replace: a new version). Counted
	// for the feature store and file sinks; the job's other outputs
	// (Kafka, RabbitMQ) are not counted.
	outputs.WriteCounts
	Skipped int `json:"skipped"`
	Stale   int `json:"stale"`
	Failed  int `json:"failed"`
	// Missing: sample rows whose key had no state at the row's time (not
	// errors: a training-set sink writes each as a row of nulls), and
	// WithState the rows whose key had; with Failed, these count every
	// sample row once (Events = WithState + Missing + rows that failed
	// before the run, e.g. beyond the store's horizon).
	Missing   int `json:"missing"`
	WithState int `json:"withState,omitempty"`
	// SpacedKeys: sample rows whose key begins or ends with white space,
	// which is matched as written (a row's time is trimmed, its key is
	// not); SpacedKey names the first such row of the chunk, e.g.
	// `row 12: " app-1"`.
	SpacedKeys int    `json:"spacedKeys,omitempty"`
	SpacedKey  string `json:"spacedKey,omitempty"`
	// Errors: the first few failure messages.
	Errors []string `json:"errors,omitempty"`
	// ParamVersions: the parameter versions of the records (sorted, at
	// most 100).
	ParamVersions []int64 `json:"paramVersions,omitempty"`
	// Resumed: the chunk resumed after a heartbeat of an earlier attempt,
	// at event ordinal ResumedAt.
	Resumed   bool `json:"resumed,omitempty"`
	ResumedAt int  `json:"resumedAt,omitempty"`
	// Attempt is the activity attempt that finished the chunk (1 = first).
	Attempt int32 `json:"attempt"`
}

// Cursor is a chunk's heartbeat: how far it durably got. Everything up to
// and including event ordinal Ordinal-1 has its outputs written.
type Cursor struct {
	// Ordinal counts the events (sample rows) consumed from the chunk start.
	Ordinal int `json:"ordinal"`
	// Last identifies the last consumed event of a range chunk.
	Last *EventID `json:"last,omitempty"`
	// Result holds the counts up to Ordinal.
	Result ChunkResult `json:"result"`
	// Consumed counts the events (sample rows) the attempt consumed from
	// the chunk start, committed or not: its progress, for display.
	Consumed int `json:"consumed,omitempty"`
}

// EventID is eventcenter.ID in a stable JSON form.
type EventID struct {
	Source string    `json:"source"`
	Key    string    `json:"key"`
	Time   time.Time `json:"time"`
	Log    uint64    `json:"log"`
	Offset uint64    `json:"offset"`
}

const maxErrors = 10
