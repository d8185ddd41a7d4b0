// Package correction compares MySQL tables with the event center and
// writes what it finds wrong back as correction events, so that the event
// center converges on MySQL while every read as known before the
// correction keeps its answer.
//
// # How a chunk is read: a consistent snapshot pinned to a binlog position
//
// A table is read in primary-key chunks ([Plan] cuts it by reading its key
// columns once; composite keys compare as tuples; [PlanPage] cuts a big
// table a page of chunks at a time, each page one statement that starts
// at the key where the last one ended, so the pages tile the key space
// however the table changes between them). Each chunk is read in its
// own short transaction on one connection:
//
//	START TRANSACTION WITH CONSISTENT SNAPSHOT;
//	SHOW STATUS LIKE 'binlog_snapshot_%';   -- the binlog file and position of that snapshot
//	SELECT UTC_TIMESTAMP(6);
//	SELECT … WHERE key in the chunk's range ORDER BY key;
//	COMMIT;
//
// MariaDB (10.0 and later) reports in Binlog_snapshot_file/position the
// binlog coordinate that the InnoDB snapshot is exactly consistent with:
// every transaction before it is visible, none after it. No lock is taken
// (no FLUSH TABLES WITH READ LOCK) and no transaction stays open longer
// than one chunk's SELECT. This is why it was chosen over DBLog's
// watermark windows (Andreakis & Papapanagiotou, 2020): DBLog needs a
// writable watermark table on the source and must take the keys changed
// inside the window from the log, which, for a comparison, means those keys
// are left uncompared; a consistent snapshot compares every key of the
// chunk at one exact point. The cost: it needs MariaDB's status variables
// (MySQL has no equivalent without a global lock; on MySQL the chunk read
// fails with [ErrNoSnapshotPosition]), and InnoDB tables.
//
// # The chunk's point in the event center
//
// The CDC positions every change by its binlog coordinate
// (Position{Log: file sequence, Offset: event position<<16 | row}), and the
// snapshot's coordinate maps into the same order:
// Position{Log: file sequence, Offset: snapshot position<<16}, which sorts
// after every change committed before the snapshot and before every later
// one. Event times follow binlog order (the CDC never lets commit times go
// back), so a key's state at the chunk's point is its last event positioned
// before it. The chunk waits until the source's watermark passes the
// snapshot's server time (every change before the point has a commit time
// at or before it), then reads each key's history and takes that event.
//
// Reading every key's history costs a seek per key, so each source is
// first indexed once (see index.go), before a range chunk reads MySQL: its
// states as of its watermark, listed in parallel parts where the store can
// (eventcenter.StateScanner) or replayed, give per key a hash of its
// state. A chunk replays only the events after that watermark up to its
// point; a key none of them touches whose MySQL row hashes like its
// indexed state is in sync without a read, and every other key takes the
// exact path above. The index holds every key of the source in memory
// (50–65 bytes a key, and the key) and is kept for an hour per
// Corrector, so the chunks of one run on one worker share it.
//
// A correction is written at the chunk's point: Pos the point, Time the
// snapshot's server time, lowered, for a key that changed after the point
// with an earlier commit stamp (a statement that started before the
// snapshot and committed after it), to that change's time, so that the
// key's events stay in binlog order. Its StoredAt is now: reads as known
// before it are unchanged; reads as known after see MySQL's row.
//
// # What is compared, and what is written
//
// For every key of the chunk: MySQL's row (typed with the CDC's mapping,
// [cdc.ValueFromText]) against the event center's state at the point.
//
//   - missing: MySQL has the row, the event center has no state (events
//     lost before the CDC started, binlogs purged while it was down,
//     writes with sql_log_bin=0): a correction carrying the row.
//   - different: both have it, some column differs (a column absent from
//     the event center's row counts, as after an ALTER TABLE … ADD COLUMN):
//     a correction carrying MySQL's row, Before the event center's.
//   - extra: the event center has a state, MySQL has no row: a correction
//     without After (Before the event center's row).
//
// Extra keys cannot be found by a chunk, which reads what MySQL has: a
// run's last step ([Corrector.Extras]) lists the keys the event center
// knows (the source's index and the events since) and the keys MySQL has
// now (one scan of the key columns), and checks the difference in key
// chunks, each read in its own consistent snapshot like a range chunk (a
// key written meanwhile is simply found in MySQL).
//
// # Archive
//
// With [Options.Archive], every chunk's rows are also written as one
// Parquet object, snapshots/<source>/<date>/<time>/chunk-<index>.parquet,
// in a folder of the run's own (see [ArchiveName]), typed from the columns (DECIMAL and BIGINT UNSIGNED as
// text, times as UTC timestamps, a zero date as null), readable by DuckDB
// or Spark as they are. The ledger entry lists the objects.
//
// # The drift ledger
//
// A run ([Corrector.Run], or the Temporal workflow Correction) records one
// [Entry] per source as an event of the source [LedgerSource]
// ("tidemark.drift"): rows compared, missing, extra and different, per
// column counts, the first keys of each kind, the archive objects, or why
// the source was skipped. [Metrics] export the last run's counts as
// tidemark_drift_rows{source,kind}.
//
// Optionally ([Options.Snapshots]) every compared key that is in sync also
// gets a snapshot event (OpSnapshot, MySQL's row) at the point, so a later
// reader need not look further back than the last slice. Its cost: one
// event per row per run, the size of the table, in the store and in every
// replay of the source; it is skipped where the key's latest event before
// the point is already a snapshot or a correction, so a run over an
// unchanged table writes nothing.
//
// # Idempotence
//
// A correction's identity is (source, key, time, point). Running again
// compares again: what the first run corrected is in sync, so a second run
// over an unchanged table writes no event.
//
// A chunk retried after a crash takes a new snapshot. Keys its dead attempt
// corrected are in sync: a correction stored since the run started
// ([Chunk.Since]) is counted as found and written by this run, without a
// new event. Keys the dead attempt left half-written (HBase stores a batch
// cell by cell: a replay may see an event a history read does not) are
// found again and, if unchanged since the dead attempt's point
// ([Chunk.Resume], which the Temporal activity keeps in its heartbeat),
// corrected at that point with that attempt's identity, so the store
// completes the event instead of holding a second one. The events and the
// ledger of a run with a killed worker equal a clean run's (checked by
// workers.TestCorrectionSurvivesWorkerCrash).
//
// # Bad input
//
// A table without a primary key (and without mysql.key in its source), a
// table that is gone, and a column whose type the CDC does not map are
// errors naming the source and the reason ([ErrNoKey], [ErrNoTable],
// [ErrUnmappedType]); the caller goes on with the other sources.
package correction
