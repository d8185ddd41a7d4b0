package cdc

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tidemark-dev/tidemark/internal/durable"
)

// Coord is a binlog coordinate: a file's sequence number and a byte
// position in it. Coordinates order the binlog.
type Coord struct {
	File uint64 `json:"file"`
	Pos  uint64 `json:"pos"`
}

// Compare orders coordinates.
func (c Coord) Compare(d Coord) int {
	switch {
	case c.File < d.File:
		return -1
	case c.File > d.File:
		return 1
	case c.Pos < d.Pos:
		return -1
	case c.Pos > d.Pos:
		return 1
	}
	return 0
}

// fileSeq returns the sequence number of a binlog file name (binlog.000012 → 12).
func fileSeq(name string) (uint64, error) {
	i := strings.LastIndexByte(name, '.')
	n, err := strconv.ParseUint(name[i+1:], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cdc: binlog file %q has no sequence number", name)
	}
	return n, nil
}

// Checkpoint is where a restarted CDC resumes: the end of the last
// transaction every record of which (and of every transaction before it)
// Kafka acknowledged.
type Checkpoint struct {
	File string `json:"file"` // binlog file name
	Pos  uint32 `json:"pos"`  // position after the transaction
	GTID string `json:"gtid,omitempty"`
	// Commit is the commit time stamped on the transaction that ends here;
	// the transactions after it are stamped no earlier.
	Commit time.Time `json:"commit,omitzero"`
	// Claim is the progress time already claimed for every source (see
	// source.Progress); a restart continues from it.
	Claim time.Time `json:"claim,omitzero"`
	// Sources are the concrete source names captured so far, so progress
	// is reported for them from the start of a restart.
	Sources []string  `json:"sources,omitempty"`
	Saved   time.Time `json:"saved"`
}

const (
	checkpointFile = "checkpoint.json"
	historyFile    = "schemas.jsonl"
)

// loadCheckpoint reads dir's checkpoint; ok is false if there is none yet.
func loadCheckpoint(dir string) (cp Checkpoint, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, checkpointFile))
	if errors.Is(err, fs.ErrNotExist) {
		return cp, false, nil
	}
	if err != nil {
		return cp, false, err
	}
	if err := json.Unmarshal(b, &cp); err != nil {
		return cp, false, fmt.Errorf("cdc: checkpoint %s: %w", filepath.Join(dir, checkpointFile), err)
	}
	return cp, true, nil
}

// saveCheckpoint replaces dir's checkpoint atomically and durably: write a
// temporary file, fsync it, rename it over the old one, fsync the folder.
func saveCheckpoint(dir string, cp Checkpoint) error {
	b, err := json.MarshalIndent(cp, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, checkpointFile), append(b, '\n'))
}

func writeFileAtomic(name string, b []byte) error {
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return durable.Rename(tmp, name)
}

// schemaVersion is one line of the schema history: the schema of a table
// from a binlog coordinate on.
type schemaVersion struct {
	At    Coord  `json:"at"`
	Table *Table `json:"schema"`
}

// history is the schema history of the captured tables, kept in dir so a
// restart replays old binlog with the schemas of that time, not today's.
type history struct {
	f        *os.File
	versions map[string][]schemaVersion // "db.table" → sorted by At
}

func openHistory(dir string) (*history, error) {
	name := filepath.Join(dir, historyFile)
	h := &history{versions: map[string][]schemaVersion{}}
	if f, err := os.Open(name); err == nil {
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			var v schemaVersion
			if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
				// A torn last line from a crash: the version will be
				// recorded again when needed.
				continue
			}
			h.add(v)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("cdc: %s: %w", name, err)
		}
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	h.f = f
	return h, nil
}

func (h *history) add(v schemaVersion) {
	k := v.Table.Database + "." + v.Table.Name
	vs := h.versions[k]
	i, found := slices.BinarySearchFunc(vs, v.At, func(a schemaVersion, c Coord) int { return a.At.Compare(c) })
	if found {
		vs[i] = v
	} else {
		vs = slices.Insert(vs, i, v)
	}
	h.versions[k] = vs
}

// at returns the version of db.table in effect at c: the last recorded at
// or before c, else the earliest (a table's first recorded schema also
// describes the binlog before it, up to the first DDL).
func (h *history) at(db, table string, c Coord) (schemaVersion, bool) {
	vs := h.versions[db+"."+table]
	if len(vs) == 0 {
		return schemaVersion{}, false
	}
	i, found := slices.BinarySearchFunc(vs, c, func(a schemaVersion, c Coord) int { return a.At.Compare(c) })
	if found {
		return vs[i], true
	}
	if i == 0 {
		return vs[0], true
	}
	return vs[i-1], true
}

// record appends a version durably.
func (h *history) record(v schemaVersion) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := h.f.Write(append(b, '\n')); err != nil {
		return err
	}
	if err := h.f.Sync(); err != nil {
		return err
	}
	h.add(v)
	return nil
}

func (h *history) close() error { return h.f.Close() }
