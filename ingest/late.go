package ingest

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// Late events.
//
// An event whose time is at or behind its source's watermark when ingest
// stores it is late: a job that waited for that watermark (a strong
// consistency level) may have run without it. The event center keeps a
// source's current watermark only, so ingest notes, with each late event,
// the watermark it was behind: a note event of LateSource(source) with the
// late event's key, time and position (the same identity, in another
// source) and the row {"watermark": <time>}. The notes of a batch are
// appended before its events, in an Append of their own, so that no crash
// leaves a late event without its note, on any store (one that stores a
// batch in parts too): a crash in between leaves notes whose events the
// batch, consumed again, stores. A note's event may be missing for good
// only if the store refuses the event (its dead letter says so). A late
// event has no note only where ingest could not tell it late (its source's
// watermark or its key unreadable) or the store refused the note, each
// logged: `tidemark parity impact --lateness` finds those by their
// lateness alone.
//
// The watermark is the source's as read just before the batch's Append: a
// lower bound of the one the event was stored under, equal to it unless
// another writer advanced it meanwhile (a partition of another ingest
// instance; this instance advances its own only after the Append). So a
// note never claims an event late that was not. An event already stored
// (a batch consumed again after a crash) is not noted again. The cost:
// one watermark read per source per batch; per late event, one read of
// its key (is it stored already?) and one note; per batch with late
// events, one more Append.

// LateSource is the source of ingest's notes of src's late events.
func LateSource(src string) string { return "late." + src }

// Late is a late event as ingest noted it.
type Late struct {
	Event eventcenter.ID `json:"event"`
	// Watermark is the source's watermark the event was behind when
	// stored.
	Watermark time.Time `json:"watermark"`
}

// Behind is how far the event's time was behind the watermark.
func (l Late) Behind() time.Duration { return l.Watermark.Sub(l.Event.Time) }

// ColLateWatermark is the note's column holding the watermark.
const ColLateWatermark = "watermark"

// Note returns the note event of a late event e, behind watermark wm.
func Note(e *eventcenter.Event, wm time.Time) eventcenter.Event {
	return eventcenter.Event{Source: LateSource(e.Source), Key: e.Key, Time: e.Time, Pos: e.Pos, Op: eventcenter.OpMessage,
		After: eventcenter.Row{ColLateWatermark: wm.UTC()}}
}

// LateOf returns the note of the event id, and false if ingest noted none
// (it was not behind its source's watermark when stored, or not stored by
// ingest, or stored before ingest kept notes).
func LateOf(ctx context.Context, st eventcenter.Reader, id eventcenter.ID) (Late, bool, error) {
	evs, err := st.History(ctx, eventcenter.HistoryQuery{Source: LateSource(id.Source), Key: id.Key, From: id.Time, To: id.Time.Add(time.Nanosecond)})
	if err != nil {
		return Late{}, false, fmt.Errorf("ingest: late note of %s %s: %w", id.Source, id.Key, err)
	}
	for _, n := range evs {
		if n.Pos != id.Pos {
			continue
		}
		wm, ok := n.After[ColLateWatermark].(time.Time)
		if !ok {
			return Late{}, false, fmt.Errorf("ingest: late note of %s %s@%v: no %s time", id.Source, id.Key, id.Time, ColLateWatermark)
		}
		return Late{Event: id, Watermark: wm}, true, nil
	}
	return Late{}, false, nil
}

// lateKey is an event's identity as a map key.
type lateKey struct {
	source, key string
	nanos       int64
	pos         eventcenter.Position
}

func keyOf(e *eventcenter.Event) lateKey {
	return lateKey{e.Source, e.Key, e.Time.UnixNano(), e.Pos}
}

// findLate returns the events of a batch about to be appended that are
// late: at or behind their source's watermark (read once per source), and
// not stored already. A batch consumed again after a crash holds events
// stored before the crash, which the watermark may have passed since:
// they were not late then, or were noted then. What cannot be read (a
// watermark, an event) is not noted: the notes must not hold back the
// store's path.
func (in *Ingester) findLate(ctx context.Context, events []eventcenter.Event) map[lateKey]time.Time {
	wms := map[string]time.Time{}
	var late map[lateKey]time.Time
	for i := range events {
		e := &events[i]
		wm, ok := wms[e.Source]
		if !ok {
			var err error
			if wm, err = in.cfg.Store.Watermark(ctx, e.Source); err != nil {
				in.log.Warn("ingest: read the watermark for late events", "source", e.Source, "err", err)
			}
			wms[e.Source] = wm
		}
		if wm.IsZero() || e.Time.After(wm) {
			continue
		}
		had, err := in.cfg.Store.History(ctx, eventcenter.HistoryQuery{Source: e.Source, Key: e.Key, From: e.Time, To: e.Time.Add(time.Nanosecond)})
		if err != nil {
			in.log.Warn("ingest: read a late event's key", "source", e.Source, "key", e.Key, "err", err)
			continue
		}
		if slices.ContainsFunc(had, func(h eventcenter.Event) bool { return h.Pos == e.Pos }) {
			continue
		}
		if late == nil {
			late = map[lateKey]time.Time{}
		}
		late[keyOf(e)] = wm
	}
	return late
}

// lateNotes returns the notes of the events of late, and those events.
func lateNotes(events []eventcenter.Event, late map[lateKey]time.Time) (notes []eventcenter.Event, noted []Late) {
	if len(late) == 0 {
		return nil, nil
	}
	seen := make(map[lateKey]bool, len(late)) // an event twice in a batch is noted once
	for i := range events {
		e := &events[i]
		k := keyOf(e)
		if wm, ok := late[k]; ok && !seen[k] {
			seen[k] = true
			notes = append(notes, Note(e, wm))
			noted = append(noted, Late{Event: e.ID(), Watermark: wm})
		}
	}
	return notes, noted
}
