package tiered

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"
)

// Manifest lists the segments of one source: the cold tier's one source of
// truth. A segment object not listed is garbage (a tiering run that died
// before it committed, or a version replaced by a fold).
//
// Invariant: Segments are sorted by MinTime and their [MinTime, MaxTime]
// ranges are disjoint, so reading them in order is reading in time order.
type Manifest struct {
	Source  string `json:"source"`
	Version int64  `json:"version"` // +1 per commit
	// DroppedBefore is the source's cold horizon: the cold retention has
	// dropped every event with an earlier time (zero: none dropped).
	DroppedBefore time.Time `json:"dropped_before,omitzero"`
	Segments      []Segment `json:"segments"`
}

// Segment describes one immutable Parquet object of events of one source.
type Segment struct {
	Name        string     `json:"name"`
	Slice       time.Time  `json:"slice"` // the start of the time slice it belongs to
	Rows        int        `json:"rows"`
	Size        int64      `json:"size"`
	FooterLen   int64      `json:"footer_len"` // bytes of the tail a reader opens the file with
	MinTime     time.Time  `json:"min_time"`
	MaxTime     time.Time  `json:"max_time"`
	MaxStoredAt time.Time  `json:"max_stored_at"`
	MinKey      []byte     `json:"min_key"` // keys are any bytes: base64 in JSON
	MaxKey      []byte     `json:"max_key"`
	Checksum    string     `json:"sha256"` // of the events' storage encodings (see checksum)
	RowGroups   []RowGroup `json:"row_groups"`
	// IndexObject says that it has an index object (Name + ".idx": a
	// Bloom filter of its keys and the pairs of Indexes).
	IndexObject bool `json:"index_object,omitempty"`
	// Indexes are the indexes its index object covers.
	Indexes []string `json:"indexes,omitempty"`
}

// RowGroup locates one row group of a segment: its byte range (one ranged
// GET) and the keys it holds. A key's events are never split across row
// groups.
type RowGroup struct {
	Offset   int64  `json:"offset"`
	Length   int64  `json:"length"`
	Rows     int    `json:"rows"`
	FirstKey []byte `json:"first_key"`
	LastKey  []byte `json:"last_key"`
}

// group returns the index of the row group that may hold key, or -1.
func (s *Segment) group(key string) int {
	k := []byte(key)
	if bytes.Compare(k, s.MinKey) < 0 || bytes.Compare(k, s.MaxKey) > 0 {
		return -1
	}
	i, _ := slices.BinarySearchFunc(s.RowGroups, k, func(g RowGroup, k []byte) int {
		if bytes.Compare(g.LastKey, k) < 0 {
			return -1
		}
		return 1
	})
	if i < len(s.RowGroups) && bytes.Compare(s.RowGroups[i].FirstKey, k) <= 0 {
		return i
	}
	return -1
}

// Object names in the Blob.
func manifestName(source string) string  { return "manifests/" + url.PathEscape(source) + ".json" }
func sourceMarker(source string) string  { return "sources/" + url.PathEscape(source) }
func segmentPrefix(source string) string { return "segments/" + url.PathEscape(source) + "/" }

func segmentName(source string, slice time.Time, run string, i int) string {
	return fmt.Sprintf("%s%s/%s-%03d.parquet", segmentPrefix(source), slice.UTC().Format("20060102T150405Z"), run, i)
}

func readManifest(ctx context.Context, b Blob, source string) (*Manifest, error) {
	data, err := b.Get(ctx, manifestName(source))
	if errors.Is(err, ErrNoObject) {
		return &Manifest{Source: source}, nil
	}
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("tiered: manifest of %s: %w", source, err)
	}
	return &m, nil
}

func writeManifest(ctx context.Context, b Blob, m *Manifest) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return b.Put(ctx, manifestName(m.Source), data)
}

// ReadManifest returns the manifest of source in b (empty if it has none).
func ReadManifest(ctx context.Context, b Blob, source string) (*Manifest, error) {
	return readManifest(ctx, b, source)
}

// Manifest returns the source's manifest as committed now.
func (s *Store) Manifest(ctx context.Context, source string) (*Manifest, error) {
	return s.manifest(ctx, source, true)
}
