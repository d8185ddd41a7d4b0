package cdc

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/wire"
)

// spillPattern names the files of spilled transactions in Config.Dir.
const spillPattern = "txn-*.spill"

// txnBuffer holds the events of the transaction being read, in binlog
// order, until its end gives them their commit time. Up to limit bytes
// (estimated) stay in memory; the events after that are spilled to a file
// in dir (wire.Binary, not synced: a crash re-reads the transaction from
// the checkpoint) and read back at the end. Not safe for concurrent use.
type txnBuffer struct {
	dir   string
	limit int

	mem   []pendingEvent
	size  int           // estimated bytes of mem
	spill *os.File      // nil until the transaction outgrows limit
	w     *bufio.Writer // writes spill
	enc   []byte
}

type pendingEvent struct {
	topic string
	ev    eventcenter.Event
}

// add keeps an event for the end of the transaction.
func (b *txnBuffer) add(topic string, ev eventcenter.Event) error {
	if b.spill == nil {
		if n := approxSize(&ev); b.size+n <= b.limit || len(b.mem) == 0 {
			b.mem = append(b.mem, pendingEvent{topic, ev})
			b.size += n
			return nil
		}
		f, err := os.CreateTemp(b.dir, spillPattern)
		if err != nil {
			return fmt.Errorf("cdc: spill a transaction of more than %d bytes: %w", b.limit, err)
		}
		b.spill, b.w = f, bufio.NewWriterSize(f, 1<<20)
	}
	var err error
	if b.enc, err = wire.Binary.Append(b.enc[:0], &ev); err != nil {
		return errFatal{fmt.Errorf("cdc: encode %s %s: %w", ev.Source, ev.Key, err)}
	}
	var hdr [2 * binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hdr[:], uint64(len(topic)))
	n += binary.PutUvarint(hdr[n:], uint64(len(b.enc)))
	if _, err := b.w.Write(hdr[:n]); err != nil {
		return fmt.Errorf("cdc: spill: %w", err)
	}
	if _, err := b.w.WriteString(topic); err != nil {
		return fmt.Errorf("cdc: spill: %w", err)
	}
	if _, err := b.w.Write(b.enc); err != nil {
		return fmt.Errorf("cdc: spill: %w", err)
	}
	return nil
}

// drain calls fn with every event kept, in the order added, then empties
// the buffer (also when fn fails).
func (b *txnBuffer) drain(fn func(topic string, ev *eventcenter.Event) error) error {
	defer b.reset()
	for i := range b.mem {
		if err := fn(b.mem[i].topic, &b.mem[i].ev); err != nil {
			return err
		}
	}
	if b.spill == nil {
		return nil
	}
	if err := b.w.Flush(); err != nil {
		return fmt.Errorf("cdc: spill: %w", err)
	}
	if _, err := b.spill.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("cdc: spill: %w", err)
	}
	r := bufio.NewReaderSize(b.spill, 1<<20)
	var topic, rec []byte
	for {
		tn, err := binary.ReadUvarint(r)
		if errors.Is(err, io.EOF) {
			return nil
		}
		rn, err2 := binary.ReadUvarint(r)
		if err = errors.Join(err, err2); err != nil {
			return fmt.Errorf("cdc: read spilled transaction: %w", err)
		}
		topic, rec = grow(topic, tn), grow(rec, rn)
		if _, err := io.ReadFull(r, topic); err != nil {
			return fmt.Errorf("cdc: read spilled transaction: %w", err)
		}
		if _, err := io.ReadFull(r, rec); err != nil {
			return fmt.Errorf("cdc: read spilled transaction: %w", err)
		}
		var ev eventcenter.Event
		if err := wire.Binary.Decode(rec, &ev); err != nil {
			return errFatal{fmt.Errorf("cdc: decode spilled event: %w", err)}
		}
		if err := fn(string(topic), &ev); err != nil {
			return err
		}
	}
}

func grow(b []byte, n uint64) []byte {
	if uint64(cap(b)) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// reset forgets the events kept (a transaction ended, or the stream
// restarted from the checkpoint) and removes the spill file.
func (b *txnBuffer) reset() {
	clear(b.mem)
	b.mem, b.size = b.mem[:0], 0
	if b.spill != nil {
		b.spill.Close()
		os.Remove(b.spill.Name())
		b.spill, b.w = nil, nil
	}
}

// removeSpills deletes the spill files a crashed run left in dir.
func removeSpills(dir string) error {
	names, err := filepath.Glob(filepath.Join(dir, spillPattern))
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := os.Remove(n); err != nil {
			return err
		}
	}
	return nil
}

// approxSize estimates the memory an event holds: its strings and byte
// slices, plus a fixed cost per event and per column.
func approxSize(e *eventcenter.Event) int {
	n := 200 + len(e.Source) + len(e.Key)
	for _, r := range [2]eventcenter.Row{e.Before, e.After} {
		for col, v := range r {
			n += 64 + len(col)
			switch v := v.(type) {
			case string:
				n += len(v)
			case []byte:
				n += len(v)
			case eventcenter.Decimal:
				n += len(v)
			}
		}
	}
	return n
}
