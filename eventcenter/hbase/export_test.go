package hbase

import (
	"context"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// Cell is one cell that an Append writes.
type Cell struct {
	Table, Row []byte
	Qualifier  string
	Value      []byte
}

// AppendCells returns the cells that Append of events stamped stored would
// write, every one of them: for the benchmark that writes the same cells
// with bare gohbase puts.
func (s *Store) AppendCells(ctx context.Context, events []eventcenter.Event, stored time.Time) ([]Cell, error) {
	sets, err := s.loadDecls(ctx, events)
	if err != nil {
		return nil, err
	}
	puts, _ := s.appendPuts(events, storedQualifier(stored, s.seq.Add(1)), stored, sets)
	var cells []Cell
	for i := range puts {
		for p := &puts[i]; p != nil; p = p.then {
			cells = append(cells, Cell{p.table, p.row, p.qual, p.value})
		}
	}
	return cells, nil
}

// AppendTimeOnly stores events as an Append that failed between its two
// tables does: their time cells are written, their events cells are not.
func (s *Store) AppendTimeOnly(ctx context.Context, events []eventcenter.Event) error {
	sets, err := s.loadDecls(ctx, events)
	if err != nil {
		return err
	}
	stored, publish := s.stamps.Stamp()
	defer publish()
	puts, _ := s.appendPuts(events, storedQualifier(stored, s.seq.Add(1)), stored, sets)
	for i := range puts {
		puts[i].then = nil
	}
	return s.putAll(ctx, puts)
}

// UseBatchScanners makes AsOfBatch read every run with a scanner, never
// in one RPC, so that tests cover that path alone.
func (s *Store) UseBatchScanners() { s.batchScanners = true }
