package params

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// Sources of the event center registry.
const (
	// Source holds one event per version: key the job name, event time the
	// moment the version was set, position {0, version}, After row the
	// overrides plus the columns "_version", "_by" and, for a version made
	// by SetIf, "_change".
	Source = "tidemark.params"
	// DeclSource holds the declarations: key the job name, After row
	// {"decls": JSON array of Decl}.
	DeclSource = "tidemark.params.decl"
)

// EventCenter is a registry whose versions are events of [Source] in the
// event center, so that the values current at any past moment can be read
// back ([PointInTime]).
//
// Values are stored as row columns; Duration values as int64 nanoseconds
// (Resolve turns them back into durations).
type EventCenter struct {
	store Store
	now   func() time.Time
	mu    sync.Mutex // serializes Set and Declare
}

// Store is what the registry needs of the event center.
type Store interface {
	eventcenter.Appender
	eventcenter.Reader
}

var (
	_ Registry      = (*EventCenter)(nil)
	_ Declarer      = (*EventCenter)(nil)
	_ PointInTime   = (*EventCenter)(nil)
	_ CompareAndSet = (*EventCenter)(nil)
	_ Versions      = (*EventCenter)(nil)
)

// NewEventCenter returns a registry on store. now stamps versions; nil
// means time.Now.
func NewEventCenter(store Store, now func() time.Time) *EventCenter {
	if now == nil {
		now = time.Now
	}
	return &EventCenter{store: store, now: now}
}

// latest is after every version: Current reads the last one stored, even
// one stamped by a clock ahead of ours.
var latest = eventcenter.MaxTime

// Current implements Registry: the last version stored.
func (r *EventCenter) Current(ctx context.Context, job string) (Version, Values, error) {
	s, err := r.read(ctx, job, latest)
	return s.version, s.values, err
}

// AsOf implements PointInTime.
func (r *EventCenter) AsOf(ctx context.Context, job string, t time.Time) (Version, Values, error) {
	s, err := r.read(ctx, job, t)
	return s.version, s.values, err
}

// stored is one version as read back.
type stored struct {
	version Version
	values  Values
	at      time.Time
	change  string // the "_change" column: the change that made it
}

func (r *EventCenter) read(ctx context.Context, job string, t time.Time) (stored, error) {
	e, err := r.store.AsOf(ctx, eventcenter.AsOf{Source: Source, Key: job, Time: t})
	if errors.Is(err, eventcenter.ErrNotFound) {
		return stored{values: Values{}}, nil
	}
	if err != nil {
		return stored{}, fmt.Errorf("params: reading %s: %w", job, err)
	}
	vals := make(Values, len(e.After))
	for k, v := range e.After {
		if k == "" || k[0] != '_' {
			vals[k] = v
		}
	}
	ver, _ := e.After["_version"].(int64)
	change, _ := e.After["_change"].(string)
	return stored{Version(ver), vals, e.Time, change}, nil
}

// Version implements Versions.
func (r *EventCenter) Version(ctx context.Context, job string, v Version) (Values, error) {
	if v == 0 {
		return Values{}, nil
	}
	evs, err := r.store.History(ctx, eventcenter.HistoryQuery{Source: Source, Key: job, From: eventcenter.AllTime.From, To: eventcenter.AllTime.To})
	if err != nil {
		return nil, fmt.Errorf("params: reading %s: %w", job, err)
	}
	for _, e := range evs {
		if n, _ := e.After["_version"].(int64); Version(n) == v {
			vals := make(Values, len(e.After))
			for k, x := range e.After {
				if k == "" || k[0] != '_' {
					vals[k] = x
				}
			}
			return vals, nil
		}
	}
	return nil, fmt.Errorf("%w: %s has no version %d", ErrNoVersion, job, v)
}

// Set implements Registry.
func (r *EventCenter) Set(ctx context.Context, job string, changes Values, by string) (Version, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.set(ctx, job, nil, changes, by, "")
}

// SetIf implements CompareAndSet.
func (r *EventCenter) SetIf(ctx context.Context, job string, base Version, changes Values, by, change string) (Version, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.set(ctx, job, &base, changes, by, change)
}

// set stores a new version; with base, only if the job is at *base. r.mu
// is held.
func (r *EventCenter) set(ctx context.Context, job string, base *Version, changes Values, by, change string) (Version, error) {
	decls, err := r.Declarations(ctx, job)
	if err != nil {
		return 0, err
	}
	if decls != nil {
		if changes, err = Check(decls, changes); err != nil {
			return 0, err
		}
	}
	now := r.now()
	cur, err := r.read(ctx, job, latest)
	if err != nil {
		return 0, err
	}
	ver := cur.version
	if base != nil && ver != *base {
		if change != "" && ver == *base+1 && cur.change == change {
			return ver, nil // a retry: this change made the current version
		}
		return 0, fmt.Errorf("%w: %s is at version %d, the change is based on version %d", ErrConflict, job, ver, *base)
	}
	if !now.After(cur.at) {
		now = cur.at.Add(time.Nanosecond)
	}
	vals := cur.values
	apply(vals, changes)
	row := eventcenter.Row{"_version": int64(ver + 1), "_by": by}
	if change != "" {
		row["_change"] = change
	}
	for k, v := range vals {
		if err := validName(k); err != nil {
			return 0, fmt.Errorf("%w: parameter %q: %v", ErrInvalid, k, err)
		}
		if d, ok := v.(time.Duration); ok {
			v = int64(d)
		}
		row[k] = v
	}
	if err := row.Validate(); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	op := eventcenter.OpUpdate
	if ver == 0 {
		op = eventcenter.OpInsert
	}
	ev := eventcenter.Event{Source: Source, Key: job, Time: now, Pos: eventcenter.Position{Offset: uint64(ver + 1)}, Op: op, After: row}
	if err := r.store.Append(ctx, []eventcenter.Event{ev}); err != nil {
		return 0, fmt.Errorf("params: storing %s version %d: %w", job, ver+1, err)
	}
	return ver + 1, nil
}

// Declare implements Declarer. The declarations are an event of
// [DeclSource]; a declaration equal to the stored one stores nothing.
func (r *EventCenter) Declare(ctx context.Context, job string, decls []Decl) error {
	enc, err := encodeDecls(decls)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	cur, err := r.store.AsOf(ctx, eventcenter.AsOf{Source: DeclSource, Key: job, Time: latest})
	switch {
	case err == nil:
		if s, _ := cur.After["decls"].(string); s == enc {
			return nil
		}
		if !now.After(cur.Time) {
			now = cur.Time.Add(time.Nanosecond)
		}
	case !errors.Is(err, eventcenter.ErrNotFound):
		return fmt.Errorf("params: reading declarations of %s: %w", job, err)
	}
	ev := eventcenter.Event{Source: DeclSource, Key: job, Time: now, Op: eventcenter.OpUpdate, After: eventcenter.Row{"decls": enc}}
	return r.store.Append(ctx, []eventcenter.Event{ev})
}

// Declarations implements Declarer.
func (r *EventCenter) Declarations(ctx context.Context, job string) ([]Decl, error) {
	e, err := r.store.AsOf(ctx, eventcenter.AsOf{Source: DeclSource, Key: job, Time: latest})
	if errors.Is(err, eventcenter.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("params: reading declarations of %s: %w", job, err)
	}
	s, _ := e.After["decls"].(string)
	return decodeDecls(s)
}

// encodeDecls validates decls and writes them as JSON, durations as text
// so that no precision is lost.
func encodeDecls(decls []Decl) (string, error) {
	out := make([]Decl, len(decls))
	copy(out, decls)
	if err := ValidateDecls(out); err != nil {
		return "", err
	}
	for i := range out {
		if out[i].Type != Duration {
			continue
		}
		for _, p := range []*any{&out[i].Default, &out[i].Min, &out[i].Max} {
			if d, ok := (*p).(time.Duration); ok {
				*p = d.String()
			}
		}
	}
	b, err := json.Marshal(out)
	return string(b), err
}

func decodeDecls(s string) ([]Decl, error) {
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var decls []Decl
	if err := dec.Decode(&decls); err != nil {
		return nil, fmt.Errorf("params: stored declarations: %w", err)
	}
	if err := ValidateDecls(decls); err != nil {
		return nil, fmt.Errorf("params: stored declarations: %w", err)
	}
	return decls, nil
}
