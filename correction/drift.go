package correction

import (
	"bytes"
	"slices"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// Kinds of drift, as the ledger and the metric label them.
const (
	KindMissing   = "missing"   // in MySQL, absent from the event center
	KindExtra     = "extra"     // in the event center, absent from MySQL
	KindDifferent = "different" // in both, some column differs
)

// Drift counts what a comparison found. Results of chunks add up (Add).
type Drift struct {
	Compared  int `json:"compared"`  // keys compared
	Missing   int `json:"missing"`   // keys MySQL has and the event center has not
	Extra     int `json:"extra"`     // keys the event center has and MySQL has not
	Different int `json:"different"` // keys both have, with a column that differs
	// Columns counts, per column, the different keys it differs in.
	Columns map[string]int `json:"columns,omitempty"`
	// Keys lists drifted keys by kind, in key order per chunk (all of them
	// in a chunk's result; a ledger keeps the first ones).
	Keys map[string][]string `json:"keys,omitempty"`
	// Corrections and Snapshots count the events written.
	Corrections int `json:"corrections"`
	Snapshots   int `json:"snapshots"`
}

// Add adds o to d, keeping at most maxKeys keys per kind (all if maxKeys < 0).
func (d *Drift) Add(o Drift, maxKeys int) {
	d.Compared += o.Compared
	d.Missing += o.Missing
	d.Extra += o.Extra
	d.Different += o.Different
	d.Corrections += o.Corrections
	d.Snapshots += o.Snapshots
	for c, n := range o.Columns {
		if d.Columns == nil {
			d.Columns = map[string]int{}
		}
		d.Columns[c] += n
	}
	for k, keys := range o.Keys {
		if d.Keys == nil {
			d.Keys = map[string][]string{}
		}
		if maxKeys >= 0 {
			keys = keys[:min(len(keys), max(0, maxKeys-len(d.Keys[k])))]
		}
		if len(keys) > 0 {
			d.Keys[k] = append(d.Keys[k], keys...)
		}
	}
}

// Drifted is the number of keys found drifted, of every kind.
func (d *Drift) Drifted() int { return d.Missing + d.Extra + d.Different }

func (d *Drift) note(kind, key string) {
	switch kind {
	case KindMissing:
		d.Missing++
	case KindExtra:
		d.Extra++
	case KindDifferent:
		d.Different++
	}
	if d.Keys == nil {
		d.Keys = map[string][]string{}
	}
	d.Keys[kind] = append(d.Keys[kind], key)
}

// diffColumns returns the columns in which the event center's row ec
// differs from MySQL's row my (a column one of them lacks counts), sorted.
func diffColumns(my, ec eventcenter.Row) []string {
	var out []string
	for c, v := range my {
		w, ok := ec[c]
		if !ok || !valueEqual(v, w) {
			out = append(out, c)
		}
	}
	for c := range ec {
		if _, ok := my[c]; !ok {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// valueEqual compares row values as the event center stores them.
func valueEqual(a, b any) bool {
	switch x := a.(type) {
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	case []byte:
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y)
	case int:
		return valueEqual(int64(x), b)
	}
	if y, ok := b.(int); ok {
		return a == any(int64(y))
	}
	return a == b
}
