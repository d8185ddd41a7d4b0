package eventcenter

import (
	"context"
	"iter"
	"time"
)

// Store is an event center backend. Every method is safe for concurrent use.
// Backends prove they keep this contract by passing eventcenter/storetest.
type Store interface {
	Appender
	Reader
	Replayer
	Indexes
	Watermarks
	// Close releases the store. Calls after Close return ErrClosed; a call
	// in flight when Close runs either completes or returns ErrClosed (a
	// replay being iterated ends with ErrClosed, a WaitWatermark wakes with
	// it). After Close returns, no call touches the store's resources.
	Close() error
}

// Appender stores events.
type Appender interface {
	// Append stores a batch of events durably: when it returns nil, every
	// event survives a crash of the process.
	//
	// It is idempotent per event identity (Event.ID): an event whose identity
	// is already stored is ignored, keeping the first copy and its StoredAt,
	// so re-ingesting a Kafka range changes nothing. Duplicates inside one
	// batch are absorbed the same way (the first wins).
	//
	// The batch is validated first: if any event is malformed, Append returns
	// an *InvalidEventError naming it and stores nothing. A batch is written
	// atomically where the backend can (the embedded store); otherwise a
	// failed Append may have stored a part of it, which a retry completes.
	//
	// StoredAt is stamped by the store; the value in events is ignored and
	// the slice is not modified. Stamps never go back, and each is after the
	// instant every known-at read that has returned was read at (see Reader).
	Append(ctx context.Context, events []Event) error
}

// AsOf asks for the state of one key at one moment.
type AsOf struct {
	Source string
	Key    string
	// Time: the state after every event with event time <= Time.
	Time time.Time
	// KnownAt, if not zero, ignores every event stored after it: the state
	// as the event center knew it at KnownAt ("what did we know then").
	// Such reads are repeatable; see Reader.
	KnownAt time.Time
}

// HistoryQuery asks for the changes of one key in [From, To).
type HistoryQuery struct {
	Source   string
	Key      string
	From, To time.Time
	KnownAt  time.Time // as in AsOf
}

// LookupQuery asks for every key of Source whose state at Time has Value in
// the declared index Index.
type LookupQuery struct {
	Source  string
	Index   string
	Value   string // as produced by IndexValue
	Time    time.Time
	KnownAt time.Time // as in AsOf
}

// Reader answers point-in-time reads. Reads never see an event with event
// time after the asked time, nor (with KnownAt) one stored after KnownAt.
//
// Reads as known at K are repeatable: once a read with KnownAt K has
// returned, no append can become visible with a StoredAt at or before K, so
// the same read gives the same answer forever (retention aside: see
// Retention). A store cannot fix what it has not stamped yet, so a KnownAt
// later than the store's known-at horizon is read at that horizon instead:
// for the embedded store the present of its stamp clock (appends in flight
// are waited for), for HBase the present minus Config.KnownAtLag (the
// longest another process's append may take to become visible, clock skew
// included). A backfill that must reproduce what was known uses a KnownAt
// in the past, behind that horizon.
//
// A store that keeps only a recent window (Retention) fails, with a
// *BeyondHorizonError, every read whose answer may depend on what it may
// have dropped, instead of answering short.
type Reader interface {
	// AsOf returns the latest event of the key with event time <= q.Time
	// (ordered by time, then position) whose After row is the key's state.
	// It returns ErrNotFound if there is none or if that event left the key
	// absent (a delete, a correction without a row).
	AsOf(ctx context.Context, q AsOf) (Event, error)
	// History returns the key's events with From <= time < To, oldest first
	// (by time, then position). No events is not an error.
	History(ctx context.Context, q HistoryQuery) ([]Event, error)
	// Lookup returns, ordered by key, the state (as AsOf would) of every key
	// of q.Source whose state at q.Time exists and has q.Value in index
	// q.Index. It returns ErrUnknownIndex if the index is not declared.
	Lookup(ctx context.Context, q LookupQuery) ([]Event, error)
}

// ReplayQuery asks for the events of several sources in [From, To).
type ReplayQuery struct {
	Sources  []string
	From, To time.Time
	KnownAt  time.Time // if not zero, skip events stored after it
}

// Replayer scans events in time order.
type Replayer interface {
	// Replay yields the events of q.Sources with From <= time < To, merged
	// in the order of Compare (time, position, source, key), each once.
	// It streams: memory does not grow with the range. Iteration stops at
	// the first error, which is yielded with a zero Event. Events appended
	// during a replay may or may not be seen.
	Replay(ctx context.Context, q ReplayQuery) iter.Seq2[Event, error]
}

// RawEvent is an event whose rows are still in the event center's row
// encoding (codec.AppendRow's: columns in name order, so equal rows are
// equal bytes): for readers that copy or compare rows without reading them.
// After and Before are nil where the event has no such row.
type RawEvent struct {
	Source, Key   string
	Time          time.Time
	Pos           Position
	Op            Op
	StoredAt      time.Time
	After, Before []byte
}

// RawReplayer is a store that replays one source with its rows encoded,
// skipping the decoding of every value that Replay pays. codec.ReplayRaw
// gives the same stream from any Replayer.
type RawReplayer interface {
	// ReplayRaw yields the events of source with from <= time < to (and
	// stored at or before knownAt, if not zero) in Replay's order. A
	// RawEvent's After and Before are valid until the next step of the
	// iteration: a caller keeping them copies them.
	ReplayRaw(ctx context.Context, source string, from, to, knownAt time.Time) iter.Seq2[RawEvent, error]
}

// StateScanner is a store that lists a source's states as of a time in its
// own key order, in parts read in parallel: one row per key instead of a
// replay of the source's history in time order (a correction's index of a
// whole table).
type StateScanner interface {
	// ScanStates yields, for every key of source whose codec.Salt modulo
	// parts is part (0 <= part < parts <= 256), the event AsOf finds at
	// time at, as known now — deletes too, with After nil — in no
	// particular order, each key once. A RawEvent's After and Before are
	// valid until the next step of the iteration. Iteration stops at the
	// first error, yielded with a zero RawEvent.
	ScanStates(ctx context.Context, source string, at time.Time, part, parts int) iter.Seq2[RawEvent, error]
}

// Index declares a secondary index: the value of column Column of a source's
// rows, under a name unique within the source (by convention the column
// name), e.g. {Source: "mysql.loan.orders", Name: "user_id", Column: "user_id"}.
type Index struct {
	Source string
	Name   string
	Column string
}

// Indexes declares secondary indexes.
type Indexes interface {
	// DeclareIndex makes q.Name usable in Lookup for q.Source, covering the
	// events already stored (it indexes them before returning) and every
	// later one. Declaring the same index again is a no-op; declaring an
	// existing name with another column is an error. Declarations persist.
	DeclareIndex(ctx context.Context, ix Index) error
	// ListIndexes returns the declared indexes of a source, by name.
	ListIndexes(ctx context.Context, source string) ([]Index, error)
}

// Watermarks tracks, per source and partition, the event time up to which
// every event is durably stored. Callers (ingest) advance a partition's
// watermark only after Append returned for everything up to it; the store
// makes the advance durable no earlier than those events.
//
// A source's partitions are the ones registered (RegisterPartitions) or
// advanced, and the set only grows. A partition registered but never
// advanced is at the floor, the zero time. A source's watermark is the
// minimum over its partitions: the zero time while any of them is at the
// floor, or when it has none. So it never passes an event of a registered
// partition that is not stored yet, as long as writers register every
// partition a source's events may arrive in (ingest: every partition of the
// source's topic) before they advance any of them.
//
// A partition's watermark never moves backwards. A source's watermark moves
// backwards only when a partition is registered for the first time while
// the others are past the floor (a topic that gained partitions): it is then
// the zero time until the new partition advances. Registering again,
// restarting the store or its writers, and further writers (a second ingest
// instance) never move it backwards. Registrations and advances persist, and
// are safe for concurrent use by several processes sharing the store.
type Watermarks interface {
	// RegisterPartitions adds partitions to the source's set, at the floor.
	// It is idempotent: a partition already registered or advanced keeps its
	// watermark. When it returns nil, the registration is durable.
	RegisterPartitions(ctx context.Context, source string, partitions []int32) error
	// AdvanceWatermark moves the watermark of (source, partition) to t,
	// registering the partition if it is not. Moving it to its current
	// value is a no-op; moving it backwards returns ErrWatermarkRegression
	// and changes nothing.
	AdvanceWatermark(ctx context.Context, source string, partition int32, t time.Time) error
	// Watermark returns the source's watermark: the minimum over its
	// partitions, the zero time while one is at the floor.
	Watermark(ctx context.Context, source string) (time.Time, error)
	// PartitionWatermarks returns the watermark of each of the source's
	// partitions; a partition at the floor has the zero time.
	PartitionWatermarks(ctx context.Context, source string) (map[int32]time.Time, error)
	// WaitWatermark blocks until the source's watermark is at least t (a
	// source at the floor has reached no time). If ctx ends first it
	// returns an error matching both ErrWatermarkTimeout and the context's
	// error.
	WaitWatermark(ctx context.Context, source string, t time.Time) error
}
