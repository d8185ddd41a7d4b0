package hbase

import (
	"context"
	"errors"
	"time"

	"github.com/tsuna/gohbase"
	"github.com/tsuna/gohbase/region"
)

// gohbase retries by itself what it knows to be transient (a region that
// moved, split or is opening; a region server that went away) until the
// call's context ends. What it gives up on and HBase may still recover from
// is retried here, with backoff, a bounded number of times.

const (
	retryAttempts   = 12
	retryFirstDelay = 20 * time.Millisecond
	retryMaxDelay   = 2 * time.Second
)

// transientClasses are HBase exceptions that a later attempt may not meet.
var transientClasses = []string{
	"NotServingRegionException", "RegionMovedException", "RegionOpeningException",
	"RegionTooBusyException", "CallQueueTooBigException", "PleaseHoldException",
	"ServerNotRunningYetException", "RegionServerStoppedException", "RegionServerAbortedException",
	"CallTimeoutException", "ConnectionClosingException", "RetryImmediatelyException",
	"TableNotEnabledException", // a table still being created by another process
}

// transient reports whether err may go away by itself.
func transient(err error) bool {
	switch err.(type) {
	case region.ServerError, region.RetryableError, region.NotServingRegionError:
		return true
	}
	if errors.Is(err, gohbase.ErrCannotFindRegion) {
		return true
	}
	for _, c := range transientClasses {
		if javaException(err, c) {
			return true
		}
	}
	return false
}

// retry runs op until it succeeds, fails for good, or ctx ends.
func retry(ctx context.Context, op func() error) error {
	delay := retryFirstDelay
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil || !transient(err) || attempt == retryAttempts {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(ctx.Err(), err)
		case <-t.C:
		}
		delay = min(2*delay, retryMaxDelay)
	}
}
