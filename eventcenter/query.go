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

// Chunks cuts [From, To) into consecutive chunks of at most Size, which
// together cover it exactly once: chunk i is [From + i·Size, From +
// (i+1)·Size), the last one ending at To. Backfills cut their ranges with
// it, one chunk at a time; SplitRange lists them all; the conformance
// suite checks that replaying the chunks one after the other is one
// replay. Size must be positive and From <= To, with To - From within a
// time.Duration (292 years).
type Chunks struct {
	From, To time.Time
	Size     time.Duration
}

// Len returns the number of chunks, zero for an empty range.
func (c Chunks) Len() int {
	span := c.To.Sub(c.From)
	if span <= 0 {
		return 0
	}
	n := span / c.Size
	if span%c.Size != 0 {
		n++
	}
	return int(n)
}

// At returns chunk i, 0 <= i < Len().
func (c Chunks) At(i int) TimeRange {
	start := c.From.Add(time.Duration(i) * c.Size)
	end := start.Add(c.Size)
	if end.After(c.To) {
		end = c.To
	}
	return TimeRange{From: start, To: end}
}

// SplitRange returns the chunks of [from, to) in chunks of at most size
// (see Chunks): nil for an empty range, an error for a non-positive size or
// a malformed range or one longer than a time.Duration.
func SplitRange(from, to time.Time, size time.Duration) ([]TimeRange, error) {
	if size <= 0 {
		return nil, fmt.Errorf("eventcenter: chunk size %v must be positive", size)
	}
	if err := validateRange(from, to); err != nil {
		return nil, err
	}
	if span := to.Sub(from); !from.Add(span).Equal(to) {
		return nil, invalidQuery("range [%v, %v) is longer than %v", from, to, span)
	}
	c := Chunks{From: from, To: to, Size: size}
	var out []TimeRange
	for i := range c.Len() {
		out = append(out, c.At(i))
	}
	return out, nil
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
