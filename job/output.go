package job

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/params"
)

// Record is what a run outputs: the features of one entity as of one
// trigger, stamped with the versions that computed them. Every output of
// every mode receives the same Record for the same trigger.
type Record struct {
	// ID identifies the record: a hash of the job and the trigger's
	// identity. A retried trigger gives the same ID; outputs use it to
	// absorb repeats (message ids, ledger keys).
	ID string
	// Job, JobVersion: the job and the version of its logic.
	Job        string
	JobVersion string
	// ParamVersion: the parameter values' version.
	ParamVersion params.Version
	// Entity: the key the features describe (the trigger's key by default).
	Entity string
	// Trigger: the identity of the trigger event. Trigger.Time is the time
	// the features hold as of.
	Trigger eventcenter.ID
	// TriggerIndex is the index of the trigger's source among the job's
	// trigger sources (Job.Sources): 0 for the first, whose feature events
	// keep the trigger's position; see FeaturePos.
	TriggerIndex int
	// Features: what the logic returned.
	Features eventcenter.Row
	// Supersedes, if set, names the record version this one replaces:
	// "<record ID>@<RFC 3339 stored-at of the old version>" (a re-run of a
	// trigger whose inputs arrived late, see package parity). Stored as
	// ColSupersedes.
	Supersedes string
	// Lineage is what the run's fetches returned, for a job with Lineage
	// (nil otherwise, and for records read back from an output). It is not
	// part of the record's JSON form; the live feature store output keeps
	// it in the record's feature event (ColLineage, read with LineageOf).
	Lineage *FetchLineage
	// Sample holds, on a training-set record (a row of a sample-table
	// backfill), the row's own columns (labels, ids), each named as its
	// feature would be (outputs.SampleColumn: "_sample.<column>"); nil on
	// every other record. They are kept beside the features, not in them,
	// so that a record carries the logic's row as it returned it; the JSON
	// form writes them among the features.
	Sample []Field
}

// Field is a named value of a record, beside its features (Record.Sample).
type Field struct {
	Name  string
	Value any
}

// Columns a feature event adds to the features.
const (
	ColJobVersion    = "_job_version"
	ColParamVersion  = "_param_version"
	ColTriggerSource = "_trigger_source"
	ColTriggerKey    = "_trigger_key"
	// ColBackfill names the backfill that wrote a feature event: its
	// workflow ID, and from workflow version 2 "@" and its first run's ID
	// (activities.ChunkInput.Run); live runs leave it out.
	ColBackfill = "_backfill"
	// ColSupersedes: Record.Supersedes, on records that replace another.
	ColSupersedes = "_supersedes"
)

// ErrPosition: a trigger position that cannot carry a replacement version.
var ErrPosition = errors.New("job: trigger position cannot carry a replacement version")

// Replacement versions of feature events. The event center keeps the first
// copy of an event identity (source, key, time, position), so a new version
// of a record needs an identity of its own, and reads must prefer it:
//
//   - same entity and time as the trigger's record, so point-in-time reads
//     find it exactly where they found the old one;
//   - position {Log: 1<<63 | s<<55 | v<<32 | trigger Log, Offset: trigger
//     Offset} for version v >= 1 of the record of a trigger of the job's
//     trigger source s (see FeaturePos): it sorts after every original
//     record of that time (trigger Logs are below 1<<32), and in trigger
//     order (source, then version, then position), so the latest read of
//     an entity returns the newest version of its latest trigger;
//   - it is stored later, so an as-known-at read (AsOf.KnownAt) before the
//     replacement still returns the version that was live then.
const (
	replacedBit = 1 << 63
	sourceShift = 55
	maxSource   = 1<<8 - 1
	maxVersion  = 1<<23 - 1
	triggerLog  = 1<<32 - 1
)

// FeaturePos returns the position of the feature event of the original
// record of a trigger at position p from the job's trigger source of index
// source (Record.TriggerIndex): p itself for the first source (and so for
// every job with one trigger source), else p with the source's index in
// the bits 55 to 62 of Log. Two triggers of two sources at the same time
// and position (offsets of two Kafka topics) then give one entity two
// records, not one. Trigger Logs must fit 32 bits (partitions, binlog file
// numbers); source is 0 to 255.
func FeaturePos(p eventcenter.Position, source int) eventcenter.Position {
	if source == 0 {
		return p
	}
	return eventcenter.Position{Log: uint64(source&maxSource)<<sourceShift | p.Log, Offset: p.Offset}
}

// ReplacementPos returns the feature event position of version v (>= 1)
// of the record whose original is at p (a FeaturePos). It fails with
// ErrPosition if the trigger's Log does not fit 32 bits or v is out of
// range.
func ReplacementPos(p eventcenter.Position, v uint32) (eventcenter.Position, error) {
	if p.Log&^(maxSource<<sourceShift) > triggerLog || v == 0 || v > maxVersion {
		return eventcenter.Position{}, fmt.Errorf("%w: log %d, version %d", ErrPosition, p.Log, v)
	}
	return eventcenter.Position{Log: replacedBit | uint64(v)<<32 | p.Log, Offset: p.Offset}, nil
}

// OriginalPos inverts FeaturePos and ReplacementPos: the trigger position
// of a feature event's position, the record's version (0 for the
// original) and the index of its trigger's source.
func OriginalPos(p eventcenter.Position) (trigger eventcenter.Position, version uint32, source int) {
	if p.Log&replacedBit != 0 {
		version = uint32(p.Log>>32) & maxVersion
	}
	if p.Log&(replacedBit|maxSource<<sourceShift) == 0 {
		return p, 0, 0 // an original of the first source: any Log
	}
	source = int(p.Log>>sourceShift) & maxSource
	return eventcenter.Position{Log: p.Log & triggerLog, Offset: p.Offset}, version, source
}

// FeatureSource is the default event center source of a job's features.
func FeatureSource(job string) string { return "feature." + job }

// Event returns the record as an event of the feature source: key the
// entity, time and position the trigger's, After row the features plus
// the columns ColJobVersion, ColParamVersion, ColTriggerSource and
// ColTriggerKey. Appending it twice stores it once, so it is the feature
// store's idempotent form.
func (r *Record) Event(source string) eventcenter.Event {
	row := make(eventcenter.Row, len(r.Features)+4)
	for k, v := range r.Features {
		row[k] = v
	}
	row[ColJobVersion] = r.JobVersion
	row[ColParamVersion] = int64(r.ParamVersion)
	row[ColTriggerSource] = r.Trigger.Source
	row[ColTriggerKey] = r.Trigger.Key
	if r.Supersedes != "" {
		row[ColSupersedes] = r.Supersedes
	}
	return eventcenter.Event{Source: source, Key: r.Entity, Time: r.Trigger.Time, Pos: FeaturePos(r.Trigger.Pos, r.TriggerIndex), Op: eventcenter.OpUpdate, After: row}
}

// RecordFromEvent reads back a record from a feature event (see Event),
// the original or a replacement version (see ReplacementPos).
func RecordFromEvent(job string, e *eventcenter.Event) Record {
	r := Record{Job: job, Entity: e.Key, Features: eventcenter.Row{}}
	for k, v := range e.After {
		switch k {
		case ColJobVersion:
			r.JobVersion, _ = v.(string)
		case ColParamVersion:
			n, _ := v.(int64)
			r.ParamVersion = params.Version(n)
		case ColTriggerSource:
			r.Trigger.Source, _ = v.(string)
		case ColTriggerKey:
			r.Trigger.Key, _ = v.(string)
		case ColSupersedes:
			r.Supersedes, _ = v.(string)
		case ColBackfill, ColLineage:
		default:
			r.Features[k] = v
		}
	}
	r.Trigger.Time = e.Time
	r.Trigger.Pos, _, r.TriggerIndex = OriginalPos(e.Pos)
	r.ID = recordID(job, r.Trigger)
	return r
}

// RecordID returns the ID of the record of job on trigger t (Record.ID).
func RecordID(job string, t eventcenter.ID) string { return recordID(job, t) }

func recordID(job string, t eventcenter.ID) string {
	// The digest of each string with its length (4 bytes, little endian),
	// then the time and position (8 bytes each, little endian); its first
	// 16 bytes in hex.
	var stack [160]byte
	b := stack[:0]
	for _, s := range [...]string{job, t.Source, t.Key} {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	for _, n := range [...]uint64{uint64(t.Time.UnixNano()), t.Pos.Log, t.Pos.Offset} {
		b = binary.LittleEndian.AppendUint64(b, n)
	}
	sum := sha256.Sum256(b)
	var id [32]byte
	hex.Encode(id[:], sum[:16])
	return string(id[:])
}

// recordJSON is the documented JSON form of a Record (RabbitMQ, Kafka, files).
type recordJSON struct {
	ID           string          `json:"id"`
	Job          string          `json:"job"`
	JobVersion   string          `json:"job_version"`
	ParamVersion params.Version  `json:"param_version"`
	Entity       string          `json:"entity"`
	Time         string          `json:"time"`
	Trigger      triggerJSON     `json:"trigger"`
	Features     eventcenter.Row `json:"features"`
}

type triggerJSON struct {
	Source string    `json:"source"`
	Key    string    `json:"key"`
	Time   string    `json:"time"`
	Pos    [2]uint64 `json:"pos"`
	Index  int       `json:"index,omitempty"` // Record.TriggerIndex
}

// MarshalJSON writes the record as
//
//	{"id":"…","job":"credit","job_version":"1","param_version":3,"entity":"app-7",
//	 "time":"2026-11-26T08:00:00Z",
//	 "trigger":{"source":"mysql.loan.applications","key":"app-7","time":"…","pos":[3,1234]},
//	 "features":{"open_orders":2,"ratio":0.31,"amount":"1200.50"}}
//
// Feature values in their natural JSON form: decimals and strings as
// strings, times as RFC 3339, bytes as base64. The trigger's "index"
// (Record.TriggerIndex) is there for a trigger of a job's second or later
// trigger source.
//
// A training-set record's Sample fields are among the features, under
// their names; the features of a record without any are {}.
func (r Record) MarshalJSON() ([]byte, error) {
	t := r.Trigger.Time.UTC().Format(time.RFC3339Nano)
	features := r.Features
	if features == nil || len(r.Sample) > 0 {
		features = make(eventcenter.Row, len(r.Features)+len(r.Sample))
		maps.Copy(features, r.Features)
		for _, f := range r.Sample {
			features[f.Name] = f.Value
		}
	}
	return json.Marshal(recordJSON{
		ID: r.ID, Job: r.Job, JobVersion: r.JobVersion, ParamVersion: r.ParamVersion, Entity: r.Entity, Time: t,
		Trigger:  triggerJSON{Source: r.Trigger.Source, Key: r.Trigger.Key, Time: t, Pos: [2]uint64{r.Trigger.Pos.Log, r.Trigger.Pos.Offset}, Index: r.TriggerIndex},
		Features: features,
	})
}

// UnmarshalJSON reads the form MarshalJSON writes. Feature values come back
// as JSON gives them (float64 numbers, strings); a training-set record's
// Sample fields come back among its features.
func (r *Record) UnmarshalJSON(b []byte) error {
	var d recordJSON
	if err := json.Unmarshal(b, &d); err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339Nano, d.Trigger.Time)
	if err != nil {
		return fmt.Errorf("job: record trigger time: %w", err)
	}
	*r = Record{
		ID: d.ID, Job: d.Job, JobVersion: d.JobVersion, ParamVersion: d.ParamVersion, Entity: d.Entity,
		Trigger:      eventcenter.ID{Source: d.Trigger.Source, Key: d.Trigger.Key, Time: t, Pos: eventcenter.Position{Log: d.Trigger.Pos[0], Offset: d.Trigger.Pos[1]}},
		TriggerIndex: d.Trigger.Index,
		Features:     d.Features,
	}
	return nil
}

// Output delivers records somewhere: the feature store, a Kafka topic, a
// RabbitMQ exchange, files. Implementations are safe for concurrent use.
type Output interface {
	// Name identifies the output, stably across restarts (it keys the
	// ledger), e.g. "rabbitmq:credit.features".
	Name() string
	// Write delivers the records, in order. On error the caller retries
	// the whole batch later, so Write may see a record again: idempotent
	// outputs absorb it, others rely on the Ledger and the record ID.
	Write(ctx context.Context, recs []Record) error
}

// Idempotent is implemented by outputs whose Write stores a record given
// twice once (the feature store, file sinks); they skip the ledger.
type Idempotent interface {
	Idempotent()
}

// Ledger remembers which records an output has delivered.
type Ledger interface {
	// Pending returns the records of recs not yet marked for output.
	Pending(ctx context.Context, output string, recs []Record) ([]Record, error)
	// Mark records that output delivered recs.
	Mark(ctx context.Context, output string, recs []Record) error
}

// WriteOutputs writes recs to every output, in order. Outputs that are not
// Idempotent go through ledger (if not nil): records already marked are
// skipped, and delivered ones are marked. A retried batch therefore reaches
// each output once, except for a crash between an output's Write and its
// Mark (the record ID lets subscribers drop that repeat). A batch with a
// record without ID (Env.NoRecordIDs unnamed) is refused whole.
func WriteOutputs(ctx context.Context, outs []Output, ledger Ledger, recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	for i := range recs {
		if recs[i].ID == "" { // outputs absorb repeats by ID (see Env.NoRecordIDs)
			return fmt.Errorf("%w: %w: record %d of %d (trigger %s %s) has no ID", ErrOutput, ErrUnnamedRecord, i+1, len(recs), recs[i].Trigger.Source, recs[i].Trigger.Key)
		}
	}
	var errs []error
	for _, o := range outs {
		if err := writeOne(ctx, o, ledger, recs); err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: %w", ErrOutput, o.Name(), err))
		}
	}
	return errors.Join(errs...)
}

func writeOne(ctx context.Context, o Output, ledger Ledger, recs []Record) error {
	if _, ok := o.(Idempotent); ok || ledger == nil {
		return o.Write(ctx, recs)
	}
	todo, err := ledger.Pending(ctx, o.Name(), recs)
	if err != nil || len(todo) == 0 {
		return err
	}
	if err := o.Write(ctx, todo); err != nil {
		return err
	}
	return ledger.Mark(ctx, o.Name(), todo)
}

// LedgerSource is the event center source of EventLedger's marks.
const LedgerSource = "tidemark.outputs"

// EventLedger is a Ledger kept in the event center: one event of
// LedgerSource per delivered record and output (key "output/record ID",
// event time when it was marked, position the trigger's).
//
// On a store that keeps a recent window (eventcenter.Retention), a mark
// lives as long as the window: a record redelivered after its mark left
// the store is delivered again (the record ID lets subscribers drop it).
type EventLedger struct {
	Store interface {
		eventcenter.Appender
		eventcenter.Reader
	}
	// Now stamps the marks. Default time.Now; give the store's clock.
	Now func() time.Time
}

var _ Ledger = EventLedger{}

func ledgerKey(output string, r *Record) string { return output + "/" + r.ID }

// Pending implements Ledger. A mark the store can no longer vouch for
// (eventcenter.ErrBeyondHorizon: none since the retention horizon) is taken
// as absent.
func (l EventLedger) Pending(ctx context.Context, output string, recs []Record) ([]Record, error) {
	var todo []Record
	for i := range recs {
		_, err := l.Store.AsOf(ctx, eventcenter.AsOf{Source: LedgerSource, Key: ledgerKey(output, &recs[i]), Time: eventcenter.MaxTime})
		switch {
		case errors.Is(err, eventcenter.ErrNotFound), errors.Is(err, eventcenter.ErrBeyondHorizon):
			todo = append(todo, recs[i])
		case err != nil:
			return nil, fmt.Errorf("job: ledger: %w", err)
		}
	}
	return todo, nil
}

// Mark implements Ledger.
func (l EventLedger) Mark(ctx context.Context, output string, recs []Record) error {
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	at := now()
	evs := make([]eventcenter.Event, len(recs))
	for i := range recs {
		r := &recs[i]
		evs[i] = eventcenter.Event{
			Source: LedgerSource, Key: ledgerKey(output, r), Time: at, Pos: r.Trigger.Pos,
			Op: eventcenter.OpMessage, After: eventcenter.Row{"job_version": r.JobVersion},
		}
	}
	if err := l.Store.Append(ctx, evs); err != nil {
		return fmt.Errorf("job: ledger: %w", err)
	}
	return nil
}
