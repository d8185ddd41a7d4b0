package job

import (
	"errors"
	"fmt"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// Errors. Test with errors.Is.
var (
	// ErrNotFound: a fetched key has no state at the fetch time. It is
	// eventcenter.ErrNotFound.
	ErrNotFound = eventcenter.ErrNotFound
	// ErrFuture: a fetch asked for a time after the trigger's. Runs never
	// read past their trigger time.
	ErrFuture = errors.New("job: fetch after the trigger time")
	// ErrStale: a watermark wait of a strong consistency level timed out;
	// see *StaleError. The run's outcome is Stale and it outputs nothing
	// unless the logic handles the error itself.
	ErrStale = errors.New("job: stale: watermark wait timed out")
	// ErrParams: the parameter values could not be read or break their
	// declarations.
	ErrParams = errors.New("job: parameters")
	// ErrLogic: the logic returned an error, panicked or returned features
	// that cannot be stored.
	ErrLogic = errors.New("job: logic failed")
	// ErrOutput: an output could not be written.
	ErrOutput = errors.New("job: output failed")
	// ErrUnnamedRecord: WriteOutputs was given a record without ID (with
	// ErrOutput). The outputs absorb repeats by ID, so this is a bug of
	// the caller (Env.NoRecordIDs, the records not named after), not an
	// outage: a retry fails the same way.
	ErrUnnamedRecord = errors.New("job: a record without ID")
	// ErrFetch: the event center failed a fetch (not a not-found, not an
	// invalid fetch): an outage of the store. A run failed by it may
	// succeed when retried (see Result.Retryable).
	ErrFetch = errors.New("job: fetch failed")
	// ErrInvalidFetch: a fetch asked what cannot be answered: a malformed
	// query (an empty key, a zero time or a bad source name; it also
	// matches eventcenter.ErrInvalidQuery), an undeclared index (also
	// eventcenter.ErrUnknownIndex), a read behind the store's retention
	// horizon (also eventcenter.ErrBeyondHorizon: the horizon only moves
	// forward), a source that Env.Sources does not know, an undefined level.
	// No retry can answer it: a run failed by it fails as ErrLogic and is not
	// retried. Such a fetch fails at once, before any watermark wait (the
	// horizon check aside, which the store makes when it reads).
	ErrInvalidFetch = errors.New("job: invalid fetch")
	// ErrFallback: the source fallback of FetchStrongNoDelay cannot serve a
	// read (rate limit exhausted, row changed after the fetch time, row
	// absent); the fetch waits for the watermark instead.
	ErrFallback = errors.New("job: fallback cannot serve")
)

// StaleError says which watermark a strong level waited for in vain.
// It matches ErrStale and eventcenter.ErrWatermarkTimeout.
type StaleError struct {
	Source string        // the source waited on
	Want   time.Time     // the time its watermark had to reach
	Waited time.Duration // how long the run waited
	Err    error         // the store's error
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("job: stale: watermark of %s did not reach %v within %v: %v", e.Source, e.Want.UTC().Format(time.RFC3339Nano), e.Waited, e.Err)
}

// Is makes errors.Is(err, ErrStale) true.
func (e *StaleError) Is(target error) bool { return target == ErrStale }

// Unwrap returns the store's error.
func (e *StaleError) Unwrap() error { return e.Err }
