package eventcenter

import (
	"errors"
	"fmt"
)

// Sentinel errors. Test with errors.Is.
var (
	// ErrNotFound: the key has no state at the asked time (never written,
	// deleted, or only known later).
	ErrNotFound = errors.New("eventcenter: not found")
	// ErrInvalidEvent: an appended event is malformed; see *InvalidEventError.
	ErrInvalidEvent = errors.New("eventcenter: invalid event")
	// ErrUnknownIndex: a lookup names an index that is not declared.
	ErrUnknownIndex = errors.New("eventcenter: unknown index")
	// ErrWatermarkRegression: a watermark was asked to move backwards.
	ErrWatermarkRegression = errors.New("eventcenter: watermark moves backwards")
	// ErrWatermarkTimeout: a wait ended before the watermark reached its time.
	ErrWatermarkTimeout = errors.New("eventcenter: watermark wait timed out")
	// ErrInvalidQuery: a read's arguments are malformed (empty source, from after to…).
	ErrInvalidQuery = errors.New("eventcenter: invalid query")
	// ErrBeyondHorizon: a read needs what may have left a store that keeps
	// only a recent window; see *BeyondHorizonError and [Retention].
	ErrBeyondHorizon = errors.New("eventcenter: beyond the retention horizon")
	// ErrClosed: the store is closed.
	ErrClosed = errors.New("eventcenter: store closed")
)

// InvalidEventError says which event of a batch is malformed and why.
// It matches ErrInvalidEvent under errors.Is.
type InvalidEventError struct {
	Index  int // position in the appended batch
	Source string
	Key    string
	Field  string // "source", "key", "time", "op", "after", "before"
	Reason string
}

func (e *InvalidEventError) Error() string {
	return fmt.Sprintf("eventcenter: invalid event #%d (source %q, key %q): %s: %s", e.Index, e.Source, e.Key, e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidEvent) true.
func (e *InvalidEventError) Is(target error) bool { return target == ErrInvalidEvent }

// ValidateBatch validates every event of a batch, returning the first error
// with its index set. Backends call it before writing anything, so a batch
// with one bad event writes nothing.
func ValidateBatch(events []Event) error {
	for i := range events {
		if err := events[i].Validate(); err != nil {
			var ie *InvalidEventError
			if errors.As(err, &ie) {
				ie.Index = i
			}
			return err
		}
	}
	return nil
}

func invalidQuery(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidQuery, fmt.Sprintf(format, args...))
}
