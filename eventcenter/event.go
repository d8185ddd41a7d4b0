package eventcenter

import (
	"fmt"
	"math"
	"time"
)

// Op is the kind of change an event records.
type Op uint8

// Operations. The numbering is part of the storage format: never renumber.
const (
	OpInsert     Op = 1 // a new row
	OpUpdate     Op = 2 // a changed row; Before holds the old image where known
	OpDelete     Op = 3 // the row is gone; After must be nil
	OpSnapshot   Op = 4 // the full row as read by a snapshot (e.g. nightly dump)
	OpCorrection Op = 5 // the row as the source says it truly is; After nil means absent
	OpMessage    Op = 6 // a message (Kafka, RabbitMQ, API call) keyed by its id
)

var opNames = [...]string{
	OpInsert: "insert", OpUpdate: "update", OpDelete: "delete",
	OpSnapshot: "snapshot", OpCorrection: "correction", OpMessage: "message",
}

// String returns the lower-case name of the operation.
func (o Op) String() string {
	if o.Valid() {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Valid reports whether o is one of the defined operations.
func (o Op) Valid() bool { return o >= OpInsert && o <= OpMessage }

// ParseOp returns the operation named s (as printed by [Op.String]).
func ParseOp(s string) (Op, error) {
	for i, n := range opNames {
		if n != "" && n == s {
			return Op(i), nil
		}
	}
	return 0, fmt.Errorf("eventcenter: unknown operation %q", s)
}

// Position orders the events of one source totally, beyond their event time
// (MySQL commit times have one-second resolution, so many changes of one row
// share a time). Positions compare by Log, then Offset.
//
// Sources fill it from what they have: a MySQL binlog sets Log to the binlog
// file's sequence number and Offset to (event position << 16 | row index in
// the event); a Kafka source sets Log to the partition and Offset to the
// offset; the API forwarder uses the Kafka position its request got.
type Position struct {
	Log    uint64
	Offset uint64
}

// Compare returns -1, 0 or +1 as p sorts before, equal to or after q.
func (p Position) Compare(q Position) int {
	switch {
	case p.Log < q.Log:
		return -1
	case p.Log > q.Log:
		return 1
	case p.Offset < q.Offset:
		return -1
	case p.Offset > q.Offset:
		return 1
	}
	return 0
}

func (p Position) String() string { return fmt.Sprintf("%d:%d", p.Log, p.Offset) }

// Event is one change of one entity of one source.
//
// Its identity is (Source, Key, Time, Pos): a store keeps at most one event
// per identity, the first one appended (see [Appender]).
type Event struct {
	// Source names the stream the change came from, e.g. "mysql.loan.orders".
	// Required; printable ASCII without spaces, at most 255 bytes.
	Source string
	// Key is the entity key within the source: the primary key of a row
	// (composite keys encoded by the source), a message id. Required; any
	// bytes, at most 4096.
	Key string
	// Time is the event time: when the change happened at the source (the
	// commit time for MySQL). Required; from MinTime to MaxTime.
	Time time.Time
	// Pos orders events of the source that share a Time.
	Pos Position
	// Op is the kind of change. Required.
	Op Op
	// After is the row after the change; nil when the key is absent after it
	// (always for OpDelete). A valid Row (see [Row.Validate]: finite floats,
	// values and the row within [SizeLimits]).
	After Row
	// Before is the row before the change, where the source knows it. A
	// valid Row, like After.
	Before Row
	// StoredAt is when the event center first stored the event. Set by the
	// store on append (any value given is ignored) and returned by reads.
	StoredAt time.Time
}

// ID identifies an event: two events with equal IDs are the same change.
type ID struct {
	Source string
	Key    string
	Time   time.Time
	Pos    Position
}

// ID returns the identity of e.
func (e *Event) ID() ID { return ID{Source: e.Source, Key: e.Key, Time: e.Time, Pos: e.Pos} }

// Compare orders events by time, then position, then source, then key: the
// order of replay scans.
func Compare(a, b *Event) int {
	if c := a.Time.Compare(b.Time); c != 0 {
		return c
	}
	if c := a.Pos.Compare(b.Pos); c != 0 {
		return c
	}
	if a.Source != b.Source {
		if a.Source < b.Source {
			return -1
		}
		return 1
	}
	switch {
	case a.Key < b.Key:
		return -1
	case a.Key > b.Key:
		return 1
	}
	return 0
}

// Limits of what an event may hold.
const (
	MaxSourceLen = 255
	MaxKeyLen    = 4096
)

// The bounds of event times, inclusive: the instants whose Unix nanoseconds
// fit an int64 (years 1678 to 2262), but for the first and the last one.
// Those two are left to stand for every instant before and after the range
// (eventcenter/codec maps query bounds outside it onto them), so that no
// event shares its key bits with a query bound such as the year 9999. This
// is the one definition: the event model, the codecs and the backends use
// these.
var (
	MinTime = time.Unix(0, math.MinInt64+1).UTC()
	MaxTime = time.Unix(0, math.MaxInt64-1).UTC()
)

// AllTime is the range [MinTime, MaxTime+1ns): it holds every event.
var AllTime = TimeRange{From: MinTime, To: MaxTime.Add(time.Nanosecond)}

// InTimeRange reports whether t can be an event time (or a time column).
func InTimeRange(t time.Time) bool { return !t.Before(MinTime) && !t.After(MaxTime) }

// Validate reports the first thing wrong with e as an *InvalidEventError.
// A row that Row.Validate refuses (a value of the wrong type, NaN or ±Inf, a
// value or row beyond the size limits) is reported under field "after" or
// "before", its reason naming the column.
func (e *Event) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &InvalidEventError{Source: e.Source, Key: e.Key, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if err := ValidateSource(e.Source); err != nil {
		return bad("source", "%v", err)
	}
	switch {
	case e.Key == "":
		return bad("key", "missing")
	case len(e.Key) > MaxKeyLen:
		return bad("key", "%d bytes, more than %d", len(e.Key), MaxKeyLen)
	case e.Time.IsZero():
		return bad("time", "missing")
	case !InTimeRange(e.Time):
		return bad("time", "%v is outside [%v, %v]", e.Time, MinTime, MaxTime)
	case !e.Op.Valid():
		return bad("op", "%v is not an operation", e.Op)
	case e.Op == OpDelete && e.After != nil:
		return bad("after", "a delete has no after row")
	}
	if err := e.After.Validate(); err != nil {
		return bad("after", "%v", err)
	}
	if err := e.Before.Validate(); err != nil {
		return bad("before", "%v", err)
	}
	return nil
}

// ValidateSource reports whether name can name a source.
func ValidateSource(name string) error {
	if name == "" {
		return fmt.Errorf("missing")
	}
	if len(name) > MaxSourceLen {
		return fmt.Errorf("%d bytes, more than %d", len(name), MaxSourceLen)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("%q: byte %d is not printable ASCII", name, i)
		}
	}
	return nil
}
