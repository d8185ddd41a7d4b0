package storetest

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// model is the reference the model test compares a store with. It is
// deliberately naive: every stored event in one slice, and every read a
// brute-force filter and sort written from the words of the contract, so
// that it is obviously right rather than fast.
type model struct {
	events  []eventcenter.Event // every stored event, first copies only, normalized
	stored  map[eventID]bool    // the identities in events
	indexes map[string][]eventcenter.Index
	marks   map[string]map[int32]time.Time

	now     func() time.Time // the store's clock
	last    time.Time        // the latest stamp
	settled time.Time        // the latest KnownAt read
}

func newModel(now func() time.Time) *model {
	return &model{stored: map[eventID]bool{}, indexes: map[string][]eventcenter.Index{}, marks: map[string]map[int32]time.Time{}, now: now}
}

// present: the stamp clock's present, the clock or the latest stamp.
func (m *model) present() time.Time {
	if t := m.now(); t.After(m.last) {
		return t
	}
	return m.last
}

// stamp: "Stamps never go back, and each is after the KnownAt of every read
// that has returned".
func (m *model) stamp() time.Time {
	t := m.present()
	if !t.After(m.settled) {
		t = m.settled.Add(time.Nanosecond)
	}
	m.last = t
	return t
}

// settle: a read as known at K fixes what is known at K, or at the present
// if K is later; no later stamp is at or before it.
func (m *model) settle(k time.Time) {
	if k.IsZero() {
		return
	}
	if p := m.present(); k.After(p) {
		k = p
	}
	if k.After(m.settled) {
		m.settled = k
	}
}

// eventID is an event's identity (Source, Key, Time, Pos) as a map key:
// the time as Unix nanoseconds, so that equal instants are equal.
type eventID struct {
	source, key string
	nanos       int64
	pos         eventcenter.Position
}

func idOf(e eventcenter.Event) eventID {
	return eventID{source: e.Source, key: e.Key, nanos: e.Time.UnixNano(), pos: e.Pos}
}

// visible: "KnownAt, if not zero, ignores every event stored after it".
func visible(e eventcenter.Event, knownAt time.Time) bool {
	return knownAt.IsZero() || !e.StoredAt.After(knownAt)
}

// byTimePos orders one key's events: "by time, then position".
func byTimePos(a, b eventcenter.Event) int {
	if c := a.Time.Compare(b.Time); c != 0 {
		return c
	}
	return a.Pos.Compare(b.Pos)
}

// append: a malformed batch stores nothing; otherwise each event whose
// identity is not stored yet is stored, stamped; the first copy wins.
func (m *model) append(batch []eventcenter.Event) (time.Time, error) {
	if err := eventcenter.ValidateBatch(batch); err != nil {
		return time.Time{}, err
	}
	if len(batch) == 0 {
		return time.Time{}, nil
	}
	stamp := m.stamp()
	for _, e := range batch {
		id := idOf(e)
		if !m.stored[id] {
			m.stored[id] = true
			e.StoredAt = stamp
			m.events = append(m.events, normEvent(e))
		}
	}
	return stamp, nil
}

// asOf: "the latest event of the key with event time <= q.Time (ordered by
// time, then position)", ErrNotFound if none or if it left the key absent.
func (m *model) asOf(q eventcenter.AsOf) (eventcenter.Event, error) {
	m.settle(q.KnownAt)
	var latest *eventcenter.Event
	for i, e := range m.events {
		if e.Source == q.Source && e.Key == q.Key && !e.Time.After(q.Time) && visible(e, q.KnownAt) &&
			(latest == nil || byTimePos(e, *latest) > 0) {
			latest = &m.events[i]
		}
	}
	if latest == nil || latest.After == nil {
		return eventcenter.Event{}, eventcenter.ErrNotFound
	}
	return *latest, nil
}

// history: "the key's events with From <= time < To, oldest first".
func (m *model) history(q eventcenter.HistoryQuery) []eventcenter.Event {
	m.settle(q.KnownAt)
	var out []eventcenter.Event
	for _, e := range m.events {
		if e.Source == q.Source && e.Key == q.Key && !e.Time.Before(q.From) && e.Time.Before(q.To) && visible(e, q.KnownAt) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, byTimePos)
	return out
}

// lookup: "ordered by key, the state (as AsOf would) of every key of
// q.Source whose state at q.Time exists and has q.Value in index q.Index".
func (m *model) lookup(q eventcenter.LookupQuery) ([]eventcenter.Event, error) {
	var ix *eventcenter.Index
	for i, have := range m.indexes[q.Source] {
		if have.Name == q.Index {
			ix = &m.indexes[q.Source][i]
		}
	}
	if ix == nil {
		return nil, eventcenter.ErrUnknownIndex
	}
	m.settle(q.KnownAt)
	var keys []string
	for _, e := range m.events {
		if e.Source == q.Source && !slices.Contains(keys, e.Key) {
			keys = append(keys, e.Key)
		}
	}
	slices.Sort(keys)
	var out []eventcenter.Event
	for _, k := range keys {
		e, err := m.asOf(eventcenter.AsOf{Source: q.Source, Key: k, Time: q.Time, KnownAt: q.KnownAt})
		if err != nil {
			continue
		}
		if v, ok := eventcenter.IndexValue(e.After[ix.Column]); ok && v == q.Value {
			out = append(out, e)
		}
	}
	return out, nil
}

// replay: "the events of q.Sources with From <= time < To, merged in the
// order of Compare, each once", without those stored after KnownAt.
// (The caller settles q.KnownAt for each replay it reads from the store.)
func (m *model) replay(q eventcenter.ReplayQuery) []eventcenter.Event {
	var out []eventcenter.Event
	for _, e := range m.events {
		if slices.Contains(q.Sources, e.Source) && !e.Time.Before(q.From) && e.Time.Before(q.To) && visible(e, q.KnownAt) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b eventcenter.Event) int { return eventcenter.Compare(&a, &b) })
	return out
}

// declare: same index again is a no-op, same name with another column an error.
func (m *model) declare(ix eventcenter.Index) error {
	for _, have := range m.indexes[ix.Source] {
		if have.Name == ix.Name {
			if have.Column != ix.Column {
				return fmt.Errorf("index %q is on %q", have.Name, have.Column)
			}
			return nil
		}
	}
	m.indexes[ix.Source] = append(m.indexes[ix.Source], ix)
	return nil
}

// listIndexes: "the declared indexes of a source, by name".
func (m *model) listIndexes(source string) []eventcenter.Index {
	out := slices.Clone(m.indexes[source])
	slices.SortFunc(out, func(a, b eventcenter.Index) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// advance: equal is a no-op, backwards is ErrWatermarkRegression.
func (m *model) advance(source string, part int32, t time.Time) error {
	if cur, ok := m.marks[source][part]; ok && t.Before(cur) {
		return eventcenter.ErrWatermarkRegression
	}
	if m.marks[source] == nil {
		m.marks[source] = map[int32]time.Time{}
	}
	m.marks[source][part] = t.UTC()
	return nil
}

// watermark: "the minimum over partitions (zero time when none has reported)".
func (m *model) watermark(source string) time.Time {
	var all []time.Time
	for _, t := range m.marks[source] {
		all = append(all, t)
	}
	if len(all) == 0 {
		return time.Time{}
	}
	return slices.MinFunc(all, func(a, b time.Time) int { return a.Compare(b) })
}

// keys returns every (source, key) the model holds, sorted.
func (m *model) keys() [][2]string {
	var out [][2]string
	for _, e := range m.events {
		k := [2]string{e.Source, e.Key}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b [2]string) int {
		return cmp.Or(strings.Compare(a[0], b[0]), strings.Compare(a[1], b[1]))
	})
	return out
}
