package params

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// Memory is a registry in memory, for tests and single-process tools. It
// keeps every version, so it answers [PointInTime] too.
type Memory struct {
	now func() time.Time

	mu       sync.Mutex
	versions map[string][]memVersion
	decls    map[string][]Decl
}

type memVersion struct {
	at     time.Time
	values Values
	change string
}

var (
	_ Registry      = (*Memory)(nil)
	_ Declarer      = (*Memory)(nil)
	_ PointInTime   = (*Memory)(nil)
	_ CompareAndSet = (*Memory)(nil)
	_ Versions      = (*Memory)(nil)
)

// NewMemory returns an empty registry. now stamps versions; nil means time.Now.
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{now: now, versions: map[string][]memVersion{}, decls: map[string][]Decl{}}
}

// Current implements Registry.
func (m *Memory) Current(_ context.Context, job string) (Version, Values, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	vs := m.versions[job]
	if len(vs) == 0 {
		return 0, Values{}, nil
	}
	return Version(len(vs)), maps.Clone(vs[len(vs)-1].values), nil
}

// Version implements Versions.
func (m *Memory) Version(_ context.Context, job string, v Version) (Values, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	vs := m.versions[job]
	switch {
	case v == 0:
		return Values{}, nil
	case v < 0 || int(v) > len(vs):
		return nil, fmt.Errorf("%w: %s has no version %d", ErrNoVersion, job, v)
	}
	return maps.Clone(vs[v-1].values), nil
}

// AsOf implements PointInTime.
func (m *Memory) AsOf(_ context.Context, job string, t time.Time) (Version, Values, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	vs := m.versions[job]
	n, _ := slices.BinarySearchFunc(vs, t, func(v memVersion, t time.Time) int {
		if v.at.After(t) {
			return 1
		}
		return -1
	})
	if n == 0 {
		return 0, Values{}, nil
	}
	return Version(n), maps.Clone(vs[n-1].values), nil
}

// Set implements Registry.
func (m *Memory) Set(_ context.Context, job string, changes Values, _ string) (Version, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.set(job, nil, changes, "")
}

// SetIf implements CompareAndSet.
func (m *Memory) SetIf(_ context.Context, job string, base Version, changes Values, _, change string) (Version, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.set(job, &base, changes, change)
}

func (m *Memory) set(job string, base *Version, changes Values, change string) (Version, error) {
	if decls, ok := m.decls[job]; ok {
		var err error
		if changes, err = Check(decls, changes); err != nil {
			return 0, err
		}
	}
	vs := m.versions[job]
	if cur := Version(len(vs)); base != nil && cur != *base {
		if change != "" && cur == *base+1 && vs[cur-1].change == change {
			return cur, nil
		}
		return 0, fmt.Errorf("%w: %s is at version %d, the change is based on version %d", ErrConflict, job, cur, *base)
	}
	next := Values{}
	at := m.now()
	if len(vs) > 0 {
		next = maps.Clone(vs[len(vs)-1].values)
		if last := vs[len(vs)-1].at; !at.After(last) {
			at = last.Add(time.Nanosecond)
		}
	}
	apply(next, changes)
	m.versions[job] = append(vs, memVersion{at: at, values: next, change: change})
	return Version(len(vs) + 1), nil
}

func apply(dst, changes Values) {
	for k, v := range changes {
		if v == nil {
			delete(dst, k)
		} else {
			dst[k] = v
		}
	}
}

// Declare implements Declarer.
func (m *Memory) Declare(_ context.Context, job string, decls []Decl) error {
	decls = slices.Clone(decls)
	if err := ValidateDecls(decls); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.decls[job] = decls
	return nil
}

// Declarations implements Declarer.
func (m *Memory) Declarations(_ context.Context, job string) ([]Decl, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.decls[job]), nil
}
