package eventcenter

import (
	"context"

	"fmt"
	"time"
)

// Validate reports whether q can be answered.
func (q AsOf) Validate() error {
	return validateRead(q.Source, q.Key, true, q.Time)
}

// Validate reports whether q can be answered.
func (q HistoryQuery) Validate() error {
	if err := validateRead(q.Source, q.Key, true, q.From); err != nil {
		return err
	}
	return validateRange(q.From, q.To)
}

// Validate reports whether q can be answered.
func (q LookupQuery) Validate() error {
	if q.Index == "" {
		return invalidQuery("missing index")
	}
	return validateRead(q.Source, "", false, q.Time)
}

// Validate reports whether q can be answered.
func (q ReplayQuery) Validate() error {
	if len(q.Sources) == 0 {
		return invalidQuery("no sources")
	}
	for _, s := range q.Sources {
		if err := ValidateSource(s); err != nil {
			return invalidQuery("source: %v", err)
		}
	}
	return validateRange(q.From, q.To)
}

// Validate reports whether ix can be declared.
func (ix Index) Validate() error {
	if err := ValidateSource(ix.Source); err != nil {
		return invalidQuery("index source: %v", err)
	}
	if ix.Name == "" || len(ix.Name) > 255 {
		return invalidQuery("index name %q: must have 1 to 255 bytes", ix.Name)
	}
	if ix.Column == "" {
		return invalidQuery("index %q: missing column", ix.Name)
	}
	return nil
}

func validateRead(source, key string, needKey bool, t time.Time) error {
	if err := ValidateSource(source); err != nil {
		return invalidQuery("source: %v", err)
	}
	if needKey && key == "" {
		return invalidQuery("missing key")
	}
	if t.IsZero() {
		return invalidQuery("missing time")
	}
	return nil
}

func validateRange(from, to time.Time) error {
	if from.IsZero() || to.IsZero() {
		return invalidQuery("range [%v, %v) is missing an end", from, to)
	}
	if to.Before(from) {
		return invalidQuery("range [%v, %v) ends before it starts", from, to)
	}
	return nil
}

// TimeRange is the half-open interval [From, To).
type TimeRange struct{ From, To time.Time }

// SplitRange cuts [from, to) into consecutive chunks of at most size, which
// together cover it exactly once: each chunk's To is the next one's From.
// It returns nil for an empty range and an error for a non-positive size.
func SplitRange(from, to time.Time, size time.Duration) ([]TimeRange, error) {
	if size <= 0 {
		return nil, fmt.Errorf("eventcenter: chunk size %v must be positive", size)
	}
	if err := validateRange(from, to); err != nil {
		return nil, err
	}
	var chunks []TimeRange
	for start := from; start.Before(to); {
		end := start.Add(size)
		if end.After(to) || end.Before(start) { // clamp, and guard overflow
			end = to
		}
		chunks = append(chunks, TimeRange{From: start, To: end})
		start = end
	}
	return chunks, nil
}

// PollWatermark implements Watermarks.WaitWatermark for backends that cannot
// be notified: it asks read every interval until the watermark reaches t.
func PollWatermark(ctx context.Context, read func(context.Context) (time.Time, error), t time.Time, interval time.Duration) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		wm, err := read(ctx)
		if err != nil && ctx.Err() == nil {
			return err
		}
		if err == nil && !wm.Before(t) {
			return nil
		}
		select {
		case <-ctx.Done():
			return WatermarkTimeout(ctx, t, wm)
		case <-tick.C:
		}
	}
}

// WatermarkTimeout builds the error of a WaitWatermark whose context ended
// while the watermark was at wm, before t.
func WatermarkTimeout(ctx context.Context, t, wm time.Time) error {
	return &watermarkTimeoutError{want: t, have: wm, cause: ctx.Err()}
}

type watermarkTimeoutError struct {
	want, have time.Time
	cause      error
}

func (e *watermarkTimeoutError) Error() string {
	return fmt.Sprintf("eventcenter: watermark wait timed out: at %v, waiting for %v: %v", e.have, e.want, e.cause)
}

func (e *watermarkTimeoutError) Is(target error) bool { return target == ErrWatermarkTimeout }
func (e *watermarkTimeoutError) Unwrap() error        { return e.cause }
