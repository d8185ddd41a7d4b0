package eventcenter

import (
	"context"
	"errors"
)

// BatchReader is an optional capability of a Reader: many as-of reads in
// one call. A backfill over a sample table asks the state of every row's
// key at the row's time; a backend that sorts the reads by its own key
// order answers them in one forward pass over the source's key range (one
// iterator, seeks that only move forward) instead of a random seek each.
// Backends that cannot do better leave it out: AsOfAll falls back to one
// AsOf per read.
type BatchReader interface {
	// AsOfBatch answers every read of qs as AsOf would, at the same
	// consistency (KnownAt rules and horizon included): out[i] is the
	// answer to qs[i]. A read's own failure (ErrNotFound, an invalid query,
	// a *BeyondHorizonError) is its AsOfResult.Err; the error returned is
	// the batch's (the store closed, ctx ended), and then out is
	// meaningless. qs is not modified; len(out) >= len(qs).
	AsOfBatch(ctx context.Context, qs []AsOf, out []AsOfResult) error
}

// RemoteBatchReader is a BatchReader whose single reads each cost a round
// trip to a server and whose batches cost little more than one read (the
// HBase store). A caller with many independent reads in flight, such as
// the runs of a backfill, should gather them into batches (job.RunAll
// does) rather than read one at a time; with a local store (the embedded
// one) gathering only adds waiting.
type RemoteBatchReader interface {
	BatchReader
	// GatherWidth is how many concurrent reads are worth gathering into
	// one batch: about where a larger batch no longer costs less per read.
	// 0: the reads are not remote (a store over another, e.g. a tiered
	// store over a local hot store), and gathering them is not worth it.
	GatherWidth() int
}

// AsOfResult is the answer to one read of a batch: the event, or Err.
type AsOfResult struct {
	Event Event
	Err   error
}

// AsOfAll answers qs into out (len(out) >= len(qs)) with r's AsOfBatch, or
// with one AsOf per read if r has none. See BatchReader.
func AsOfAll(ctx context.Context, r Reader, qs []AsOf, out []AsOfResult) error {
	if b, ok := r.(BatchReader); ok {
		return b.AsOfBatch(ctx, qs, out)
	}
	for i := range qs {
		e, err := r.AsOf(ctx, qs[i])
		if err != nil && !IsReadError(err) {
			return err
		}
		out[i] = AsOfResult{Event: e, Err: err}
	}
	return nil
}

// IsReadError reports whether err is one read's answer (not found, an
// invalid query, beyond the horizon) rather than the store's failure: a
// BatchReader puts the one in the read's AsOfResult and returns the other.
func IsReadError(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalidQuery) || errors.Is(err, ErrBeyondHorizon)
}
