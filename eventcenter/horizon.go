package eventcenter

import (
	"fmt"
	"time"
)

// Retention is implemented by stores that keep only a recent window of what
// they store (HBase's hot tier, an embedded store with a retention).
//
// Horizon returns the retention horizon at now: what was stored before it
// may be gone; zero when the store keeps everything. Every read whose answer
// may depend on what was stored before the horizon fails with a
// *BeyondHorizonError instead of answering short. Since an event is stored
// after it happens, whatever may be gone has an event time before the
// horizon, so with H the horizon at the read:
//
//   - AsOf fails if its KnownAt is before H, or if the latest event of the
//     key at q.Time (a state or a delete) is missing or older than H: an
//     event between it and H may be gone. An AsOf at a Time before H always
//     fails.
//   - History and Replay fail if From or KnownAt is before H.
//   - Lookup fails if Time or KnownAt is before H. (Keys whose every index
//     entry is gone cannot be told from keys that never had the value; a
//     Lookup at a later Time misses them. A store behind the cold tier,
//     eventcenter/tiered, keeps no such horizon: it reads what left hot
//     from its segments.)
type Retention interface {
	Horizon(now time.Time) time.Time
}

// BeyondHorizonError says that a read needs what may have left the store.
// It matches ErrBeyondHorizon under errors.Is.
type BeyondHorizonError struct {
	Horizon time.Time // the retention horizon at the read
	Read    string    // what was asked, e.g. `as-of mysql.shop.orders/"o1" at 2026-01-05T09:00:00Z`
	Reason  string    // why it reaches behind the horizon
}

func (e *BeyondHorizonError) Error() string {
	return fmt.Sprintf("eventcenter: %s reaches behind the retention horizon %s: %s",
		e.Read, e.Horizon.UTC().Format(time.RFC3339Nano), e.Reason)
}

// Is makes errors.Is(err, ErrBeyondHorizon) true.
func (e *BeyondHorizonError) Is(target error) bool { return target == ErrBeyondHorizon }

// beyond returns the error of a read (described by read, called only
// then: reads are checked on their hot path) reaching behind h.
func beyond(h time.Time, read func() string, reason string) error {
	return &BeyondHorizonError{Horizon: h, Read: read(), Reason: reason}
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// CheckHorizon reports whether q can be answered at horizon h (zero: no
// horizon) before it is read: an error if its Time or KnownAt is before h.
func (q AsOf) CheckHorizon(h time.Time) error {
	return q.CheckFound(h, MaxTime)
}

// CheckFound reports whether the answer of q is complete at horizon h, given
// the event time of the latest event of the key at q.Time (zero if there is
// none): see [Retention].
func (q AsOf) CheckFound(h, latest time.Time) error {
	read := func() string { return fmt.Sprintf("as-of %s/%q at %s", q.Source, q.Key, stamp(q.Time)) }
	switch {
	case h.IsZero():
		return nil
	case !q.KnownAt.IsZero() && q.KnownAt.Before(h):
		return beyond(h, read, "known at "+stamp(q.KnownAt))
	case q.Time.Before(h):
		return beyond(h, read, "the state at a time before the horizon")
	case latest.IsZero():
		return beyond(h, read, "no event of the key since the horizon; an older one may be gone")
	case latest.Before(h):
		return beyond(h, read, "the latest event found, at "+stamp(latest)+", is older than the horizon; a later one may be gone")
	}
	return nil
}

// CheckHorizon reports whether q can be answered at horizon h (zero: none).
func (q HistoryQuery) CheckHorizon(h time.Time) error {
	return checkRange(h, func() string { return fmt.Sprintf("history of %s/%q from %s", q.Source, q.Key, stamp(q.From)) }, q.From, q.KnownAt)
}

// CheckHorizon reports whether q can be answered at horizon h (zero: none).
func (q ReplayQuery) CheckHorizon(h time.Time) error {
	return checkRange(h, func() string { return fmt.Sprintf("replay of %v from %s", q.Sources, stamp(q.From)) }, q.From, q.KnownAt)
}

// CheckHorizon reports whether q can be answered at horizon h (zero: none).
func (q LookupQuery) CheckHorizon(h time.Time) error {
	return checkRange(h, func() string {
		return fmt.Sprintf("lookup %s.%s = %q at %s", q.Source, q.Index, q.Value, stamp(q.Time))
	}, q.Time, q.KnownAt)
}

func checkRange(h time.Time, read func() string, from, knownAt time.Time) error {
	switch {
	case h.IsZero():
		return nil
	case !knownAt.IsZero() && knownAt.Before(h):
		return beyond(h, read, "known at "+stamp(knownAt))
	case from.Before(h):
		return beyond(h, read, "it starts before the horizon")
	}
	return nil
}
