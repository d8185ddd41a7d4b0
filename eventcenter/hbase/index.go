package hbase

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/tsuna/gohbase/hrpc"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
)

// Index declarations live in meta, one row per (source, name):
//
//	"ix" | str(source) | name   col -> column, state -> "building" | "ready"
//
// A declaration is recorded "building" first, so that every process's
// appends start writing its rows; then the events already stored are
// indexed; then it is marked "ready", and only then do ListIndexes and
// Lookup see it.

const (
	qualColumn    = "col"
	qualState     = "state"
	stateBuilding = "building"
	stateReady    = "ready"
)

func declRow(source, name string) []byte {
	return append(codec.MarkPrefix([]byte("ix"), source), name...)
}

// declSet is what a store knows of one source's declarations.
type declSet struct {
	loaded time.Time           // when they were read (monotonic)
	all    []eventcenter.Index // building or ready: appends index them all
	ready  []eventcenter.Index // by name
}

// declsFor returns the declarations of source, read again from meta if the
// cached ones are older than half of IndexRefresh (or fresh is set).
func (s *Store) declsFor(ctx context.Context, source string, fresh bool) (*declSet, error) {
	if v, ok := s.decls.Load(source); ok && !fresh {
		if d := v.(*declSet); time.Since(d.loaded) <= s.cfg.IndexRefresh/2 {
			return d, nil
		}
	}
	d, err := s.readDecls(ctx, source)
	if err != nil {
		return nil, err
	}
	s.decls.Store(source, d)
	return d, nil
}

func (s *Store) readDecls(ctx context.Context, source string) (*declSet, error) {
	d := &declSet{loaded: time.Now()}
	prefix := codec.MarkPrefix([]byte("ix"), source)
	err := retry(ctx, func() error {
		d.all, d.ready = d.all[:0], d.ready[:0]
		return s.scan(ctx, s.tMeta, prefix, codec.PrefixEnd(prefix), []func(hrpc.Call) error{hrpc.Families(families)},
			func(r *hrpc.Result) (bool, error) {
				var ix eventcenter.Index
				var state string
				for _, c := range r.Cells {
					switch string(c.Qualifier) {
					case qualColumn:
						ix = eventcenter.Index{Source: source, Name: string(c.Row[len(prefix):]), Column: string(c.Value)}
					case qualState:
						state = string(c.Value)
					}
				}
				if ix.Column == "" {
					return true, nil
				}
				d.all = append(d.all, ix)
				if state == stateReady {
					d.ready = append(d.ready, ix)
				}
				return true, nil
			})
	})
	if err != nil {
		return nil, err
	}
	byName := func(a, b eventcenter.Index) int { return cmp.Compare(a.Name, b.Name) }
	slices.SortFunc(d.all, byName)
	slices.SortFunc(d.ready, byName)
	return d, nil
}

// readyIndex finds a ready index, reading meta again if the cache lacks it
// (another process may have declared it).
func (s *Store) readyIndex(ctx context.Context, source, name string) (eventcenter.Index, bool, error) {
	for _, fresh := range []bool{false, true} {
		d, err := s.declsFor(ctx, source, fresh)
		if err != nil {
			return eventcenter.Index{}, false, err
		}
		for _, ix := range d.ready {
			if ix.Name == name {
				return ix, true, nil
			}
		}
	}
	return eventcenter.Index{}, false, nil
}

// ListIndexes implements eventcenter.Indexes; it reads meta, so it sees
// the declarations of every process.
func (s *Store) ListIndexes(ctx context.Context, source string) ([]eventcenter.Index, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	d, err := s.declsFor(ctx, source, true)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return slices.Clone(d.ready), nil
}

// DeclareIndex implements eventcenter.Indexes. Appends go on meanwhile.
//
// Why the events of every process get indexed: the declaration is recorded
// (as building) at time W and the stored events are indexed by a scan that
// starts at W+IndexRefresh. An append writes its rows after reading the
// declarations (at L) and before finishing (at F); if it finishes after the
// scan started, F > W+IndexRefresh, so either it read them after W and
// indexed itself, or F-L > IndexRefresh and it reads them again at the end
// (see Append), after W. In this process, a barrier on ixMu replaces the
// wait.
func (s *Store) DeclareIndex(ctx context.Context, ix eventcenter.Index) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if err := ix.Validate(); err != nil {
		return err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	s.declMu.Lock()
	defer s.declMu.Unlock()
	row := declRow(ix.Source, ix.Name)
	for {
		d, err := s.declsFor(ctx, ix.Source, true)
		if err != nil {
			return s.fail(ctx, err)
		}
		if i := slices.IndexFunc(d.all, func(have eventcenter.Index) bool { return have.Name == ix.Name }); i >= 0 {
			if have := d.all[i]; have.Column != ix.Column {
				return fmt.Errorf("%w: index %q of source %q is declared on column %q, not %q",
					eventcenter.ErrInvalidQuery, ix.Name, ix.Source, have.Column, ix.Column)
			}
			if slices.Contains(d.ready, ix) {
				return nil
			}
			break // building (by a declaration that did not finish): build it again
		}
		done, err := s.checkAndPut(ctx, s.tMeta, row, qualColumn,
			map[string][]byte{qualColumn: []byte(ix.Column), qualState: []byte(stateBuilding)}, nil)
		if err != nil {
			return s.fail(ctx, err)
		}
		if done {
			if _, err := s.declsFor(ctx, ix.Source, true); err != nil {
				return s.fail(ctx, err)
			}
			break
		}
		// another process recorded it first: look again
	}
	// This process: appends that read the declarations before are done.
	s.ixMu.Lock()
	s.ixMu.Unlock() //nolint:staticcheck // an empty critical section is the barrier
	// Other processes: they see the declaration within IndexRefresh.
	select {
	case <-ctx.Done():
		return s.fail(ctx, ctx.Err())
	case <-time.After(s.cfg.IndexRefresh):
	}
	if err := s.buildIndex(ctx, ix); err != nil {
		return s.fail(ctx, fmt.Errorf("indexing %s.%s: %w", ix.Source, ix.Name, err))
	}
	if err := s.putMeta(ctx, row, map[string][]byte{qualState: []byte(stateReady)}); err != nil {
		return s.fail(ctx, err)
	}
	_, err := s.declsFor(ctx, ix.Source, true)
	return s.fail(ctx, err)
}

// buildIndex writes the index rows of every stored event of ix.Source.
func (s *Store) buildIndex(ctx context.Context, ix eventcenter.Index) error {
	const chunk = 4096
	var puts []put
	for e, err := range s.replay(ctx, []string{ix.Source}, eventcenter.AllTime, time.Time{}) {
		if err != nil {
			return err
		}
		puts = s.indexPuts(puts, &e, []eventcenter.Index{ix})
		if len(puts) >= chunk {
			if err := s.putAll(ctx, puts); err != nil {
				return err
			}
			puts = puts[:0]
		}
	}
	return s.putAll(ctx, puts)
}
