package job

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// DefaultLineageLimit bounds the event identities a run's lineage keeps
// when the job gives Lineage without LineageLimit.
const DefaultLineageLimit = 512

// Lineage makes the job record, with each run's Record, what each of its
// fetches returned (Record.Lineage): the kind, source, key or index value,
// asked time and the identities of the events read, at most
// DefaultLineageLimit identities per run. The live feature store output
// stores it with the record, in its feature event (ColLineage). Jobs that do not give it
// record nothing and pay nothing.
func Lineage() Option { return LineageLimit(DefaultLineageLimit) }

// LineageLimit is Lineage keeping at most n (> 0) event identities per run;
// fetches past the bound are still listed, without their identities, and
// the lineage is marked Truncated.
func LineageLimit(n int) Option {
	return func(j *Job) error {
		if n <= 0 {
			return fmt.Errorf("lineage limit %d is not positive", n)
		}
		j.lineage = n
		return nil
	}
}

// RerunLateData opts the job in to re-runs of exactly the triggers a late
// event or a correction changes (parity.Rerun), publishing replacements
// of their records (Record.Supersedes). Default off.
func RerunLateData() Option {
	return func(j *Job) error {
		j.rerun = true
		return nil
	}
}

// RerunsLateData reports whether the job opted in with RerunLateData.
func (j *Job) RerunsLateData() bool { return j.rerun }

// RecordsLineage reports whether the job records fetch lineage.
func (j *Job) RecordsLineage() bool { return j.lineage > 0 }

// FetchKind is the kind of a fetch.
type FetchKind uint8

// Fetch kinds: Context.AsOf (and Get), History, Lookup.
const (
	FetchAsOf FetchKind = iota + 1
	FetchHistory
	FetchLookup
)

var fetchKindNames = [...]string{FetchAsOf: "asof", FetchHistory: "history", FetchLookup: "lookup"}

func (k FetchKind) String() string {
	if k >= FetchAsOf && k <= FetchLookup {
		return fetchKindNames[k]
	}
	return fmt.Sprintf("fetch(%d)", uint8(k))
}

// Fetch is what one fetch of a run returned.
type Fetch struct {
	Kind   FetchKind
	Source string
	// Key is the fetched key; for a lookup, "index=value" (the value as
	// eventcenter.IndexValue gives it).
	Key string
	// At is the asked time (after At and Ago); for a history, its end.
	At time.Time
	// Events are the identities (EventHash) of the events the fetch
	// returned, in order; none for not-found. A fetch that failed is not
	// listed.
	Events []uint64
}

// FetchLineage is what a run's fetches returned, in the order asked.
type FetchLineage struct {
	Fetches []Fetch
	// Truncated: the job's limit cut some fetches' Events.
	Truncated   bool
	limit, held int
}

// EventHash is an event's compact identity: FNV-1a 64 of its ID (source,
// key, time, position). Stable across processes and versions.
func EventHash(e *eventcenter.Event) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	str := func(s string) {
		for i := 0; i < len(s); i++ {
			h = (h ^ uint64(s[i])) * prime
		}
		h = (h ^ 0xff) * prime // separator: ("ab","c") != ("a","bc")
	}
	num := func(n uint64) {
		for i := range 8 {
			h = (h ^ (n >> (8 * i) & 0xff)) * prime
		}
	}
	str(e.Source)
	str(e.Key)
	num(uint64(e.Time.UnixNano()))
	num(e.Pos.Log)
	num(e.Pos.Offset)
	return h
}

// add appends a fetch of evs, keeping at most the limit's identities.
func (l *FetchLineage) add(kind FetchKind, source, key string, at time.Time, evs ...eventcenter.Event) {
	f := Fetch{Kind: kind, Source: source, Key: key, At: at}
	if n := min(len(evs), l.limit-l.held); n > 0 {
		f.Events = make([]uint64, n)
		for i := range n {
			f.Events[i] = EventHash(&evs[i])
		}
		l.held += n
	}
	if len(f.Events) < len(evs) {
		l.Truncated = true
	}
	l.Fetches = append(l.Fetches, f)
}

// Hashes returns the set of event identities the lineage holds.
func (l *FetchLineage) Hashes() map[uint64]bool {
	s := map[uint64]bool{}
	for _, f := range l.Fetches {
		for _, h := range f.Events {
			s[h] = true
		}
	}
	return s
}

// ColLineage is the column of a live feature event that holds the run's
// fetch lineage (MarshalBinary), for jobs with Lineage. RecordFromEvent
// leaves it out; LineageOf reads it.
const ColLineage = "_lineage"

// LineageOf returns the fetch lineage stored with a feature event, or nil
// if it has none.
func LineageOf(e *eventcenter.Event) (*FetchLineage, error) {
	b, ok := e.After[ColLineage].([]byte)
	if !ok {
		return nil, nil
	}
	var l FetchLineage
	if err := l.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("job: lineage of %s %s@%v: %w", e.Source, e.Key, e.Time, err)
	}
	return &l, nil
}

// MarshalBinary encodes the lineage compactly: a flag byte (truncated),
// the number of fetches, and per fetch its kind, source, key, asked time
// (Unix nanoseconds) and event identities (8 bytes each), with varint
// lengths.
func (l *FetchLineage) MarshalBinary() []byte {
	b := make([]byte, 0, 16+len(l.Fetches)*24+l.held*8)
	flag := byte(0)
	if l.Truncated {
		flag = 1
	}
	b = append(b, flag)
	b = binary.AppendUvarint(b, uint64(len(l.Fetches)))
	for _, f := range l.Fetches {
		b = append(b, byte(f.Kind))
		b = binary.AppendUvarint(b, uint64(len(f.Source)))
		b = append(b, f.Source...)
		b = binary.AppendUvarint(b, uint64(len(f.Key)))
		b = append(b, f.Key...)
		b = binary.AppendVarint(b, f.At.UnixNano())
		b = binary.AppendUvarint(b, uint64(len(f.Events)))
		for _, h := range f.Events {
			b = binary.LittleEndian.AppendUint64(b, h)
		}
	}
	return b
}

var errLineage = errors.New("malformed lineage")

// UnmarshalBinary decodes what MarshalBinary wrote.
func (l *FetchLineage) UnmarshalBinary(b []byte) error {
	*l = FetchLineage{}
	uv := func() uint64 {
		n, k := binary.Uvarint(b)
		if k <= 0 {
			b = nil
			return 0
		}
		b = b[k:]
		return n
	}
	str := func() (string, bool) {
		n := uv()
		if uint64(len(b)) < n {
			return "", false
		}
		s := string(b[:n])
		b = b[n:]
		return s, true
	}
	if len(b) < 1 || b[0] > 1 {
		return errLineage
	}
	l.Truncated = b[0] == 1
	b = b[1:]
	n := uv()
	if n > uint64(len(b)) {
		return errLineage
	}
	l.Fetches = make([]Fetch, 0, n)
	for range n {
		if len(b) < 1 {
			return errLineage
		}
		f := Fetch{Kind: FetchKind(b[0])}
		b = b[1:]
		var ok1, ok2 bool
		f.Source, ok1 = str()
		f.Key, ok2 = str()
		at, k := binary.Varint(b)
		if !ok1 || !ok2 || k <= 0 {
			return errLineage
		}
		b = b[k:]
		f.At = time.Unix(0, at).UTC()
		m := uv()
		if m > uint64(len(b))/8 {
			return errLineage
		}
		if m > 0 {
			f.Events = make([]uint64, m)
			for i := range f.Events {
				f.Events[i] = binary.LittleEndian.Uint64(b)
				b = b[8:]
			}
		}
		l.held += int(m)
		l.Fetches = append(l.Fetches, f)
	}
	if len(b) != 0 {
		return errLineage
	}
	return nil
}
