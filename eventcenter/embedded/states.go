package embedded

import (
	"bytes"
	"context"
	"fmt"
	"iter"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
)

// ScanStates implements eventcenter.StateScanner: a forward scan of the
// source's events rows, salt by salt. A key's rows are newest first, so its
// first row at or before `at` is its state, and the rest of its rows are
// skipped (by a seek past them when there are many).
func (s *Store) ScanStates(ctx context.Context, source string, at time.Time, part, parts int) iter.Seq2[eventcenter.RawEvent, error] {
	if parts < 1 || parts > 256 || part < 0 || part >= parts || at.IsZero() {
		return failed[eventcenter.RawEvent](fmt.Errorf("%w: ScanStates part %d of %d at %v: want 0 <= part < parts <= 256 and a time",
			eventcenter.ErrInvalidQuery, part, parts, at))
	}
	// The states rest on the whole history up to at: a store keeping a
	// window refuses, as a replay from the beginning would.
	if err := s.admitReplay(ctx, &eventcenter.ReplayQuery{Sources: []string{source}, From: eventcenter.AllTime.From, To: eventcenter.AllTime.To}); err != nil {
		return failed[eventcenter.RawEvent](err)
	}
	return func(yield func(eventcenter.RawEvent, error) bool) {
		for salt := part; salt < 256; salt += parts {
			if !s.scanSalt(ctx, byte(salt), source, at, yield) {
				return
			}
		}
	}
}

// skipRows is how many older rows of a key a scan steps over before it
// seeks past the key instead.
const skipRows = 8

// scanSalt yields the states of source's keys with one salt, reporting
// whether the iteration goes on.
func (s *Store) scanSalt(ctx context.Context, salt byte, source string, at time.Time, yield func(eventcenter.RawEvent, error) bool) bool {
	lower := codec.SaltPrefix([]byte{tabEvents}, salt, source)
	if err := s.enter(ctx); err != nil {
		return yield(eventcenter.RawEvent{}, err) && false
	}
	c, err := s.openCursor(&pebble.IterOptions{LowerBound: lower, UpperBound: codec.PrefixEnd(lower)})
	s.leave()
	if err != nil {
		return yield(eventcenter.RawEvent{}, err) && false
	}
	defer s.closeCursor(c)

	var (
		n       int    // states found
		done    []byte // the last key whose state was found
		skipped int    // rows of done stepped over
		buf     []byte // the yielded event's rows, reused by the next step
		e       eventcenter.RawEvent
	)
	// step moves the cursor and, if its row is a key's state, fills e; all
	// under the cursor's lock, since Close may release the row's blocks.
	step := func(first bool) (found, more bool, err error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		switch {
		case c.closed:
			return false, false, eventcenter.ErrClosed
		case first:
			more = c.it.First()
		case skipped >= skipRows:
			more, skipped = c.it.SeekGE(codec.PrefixEnd(codec.KeyPrefix([]byte{tabEvents}, source, string(done)))), 0
		default:
			more = c.it.Next()
		}
		if !more {
			return false, false, c.it.Error()
		}
		key, t, pos, err := codec.ParseEventSuffix(c.it.Key()[len(lower):])
		switch {
		case err != nil:
			return false, false, err
		case n > 0 && bytes.Equal(key, done):
			skipped++
			return false, true, nil
		case t.After(at):
			return false, true, nil
		}
		n, done, skipped = n+1, append(done[:0], key...), 0
		buf = append(buf[:0], c.it.Value()...)
		e = eventcenter.RawEvent{Source: source, Key: string(key), Time: t, Pos: pos}
		e.Op, e.StoredAt, e.After, e.Before, err = codec.SplitBody(buf)
		return err == nil, err == nil, err
	}
	for i := 0; ; i++ {
		if i%1024 == 1023 && ctx.Err() != nil {
			return yield(eventcenter.RawEvent{}, ctx.Err()) && false
		}
		found, more, err := step(i == 0)
		switch {
		case err != nil:
			return yield(eventcenter.RawEvent{}, err) && false
		case !more:
			return true
		case found && !yield(e, nil):
			return false
		}
	}
}
