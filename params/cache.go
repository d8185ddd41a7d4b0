package params

import (
	"context"
	"maps"
	"sync"
	"time"
)

// Cache is a Registry that keeps each job's current version in memory, for
// a live worker that reads it at every run. Current answers from memory
// while the copy is younger than MaxAge, and re-reads the registry after
// (the poll fallback); Refresh re-reads at once (a push notification of a
// new version). Set goes to the registry and refreshes the job.
// Safe for concurrent use.
type Cache struct {
	r      Registry
	maxAge time.Duration
	// OnChange, if set, is called when Current's re-read (the poll) finds
	// a version other than the copy's. It must not block for long.
	onChange func(job string, v Version)

	mu   sync.Mutex
	jobs map[string]cached
}

type cached struct {
	version Version
	values  Values
	read    time.Time
}

var _ Registry = (*Cache)(nil)

// NewCache returns a cache of r whose copies live maxAge (0: re-read at
// every Current). onChange (may be nil) hears of versions found by the
// poll, not by Refresh.
func NewCache(r Registry, maxAge time.Duration, onChange func(job string, v Version)) *Cache {
	return &Cache{r: r, maxAge: maxAge, onChange: onChange, jobs: map[string]cached{}}
}

// Current implements Registry.
func (c *Cache) Current(ctx context.Context, job string) (Version, Values, error) {
	c.mu.Lock()
	e, ok := c.jobs[job]
	c.mu.Unlock()
	if ok && time.Since(e.read) < c.maxAge {
		return e.version, maps.Clone(e.values), nil
	}
	v, vals, changed, err := c.refresh(ctx, job)
	if err == nil && changed && ok && c.onChange != nil {
		c.onChange(job, v)
	}
	return v, vals, err
}

// Refresh re-reads job's current version and reports whether it differs
// from the copy (true also for a job not cached yet).
func (c *Cache) Refresh(ctx context.Context, job string) (Version, bool, error) {
	v, _, changed, err := c.refresh(ctx, job)
	return v, changed, err
}

func (c *Cache) refresh(ctx context.Context, job string) (Version, Values, bool, error) {
	read := time.Now()
	v, vals, err := c.r.Current(ctx, job)
	if err != nil {
		return 0, nil, false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.jobs[job]
	if ok && old.version > v {
		// A slower read of an older version lost the race: keep the newer.
		return old.version, maps.Clone(old.values), false, nil
	}
	c.jobs[job] = cached{version: v, values: vals, read: read}
	return v, maps.Clone(vals), !ok || old.version != v, nil
}

// Set implements Registry.
func (c *Cache) Set(ctx context.Context, job string, changes Values, by string) (Version, error) {
	v, err := c.r.Set(ctx, job, changes, by)
	if err == nil {
		_, _, err = c.Refresh(ctx, job)
	}
	return v, err
}
