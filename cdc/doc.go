// Package cdc captures the row changes of MySQL and MariaDB tables from the
// binlog and publishes each as one Kafka record in the wire format.
//
// A [CDC] registers as a replica (go-mysql's BinlogSyncer; flavor mysql or
// mariadb), reads the binlog (binlog_format=ROW, binlog_row_image=FULL are
// checked at start) and, for every row of a table some mysql source of the
// registry matches, produces one event:
//
//   - Source: the source's name with {db}/{table} filled in;
//   - Key: the primary key (or the source's mysql.key columns) made text by
//     source.RowKey — composite keys too;
//   - Time: the commit time of the change's transaction (see Commit time),
//     the same for every change of a transaction;
//   - Pos: Log = the binlog file's sequence number, Offset = the rows
//     event's start position << 16 | the row's index in it. Reading the same
//     binlog again gives the same Source, Key, Time and Pos, so the event
//     center stores a replayed change once;
//   - Op insert, update (Before and After) or delete (Before). An update
//     that changes the key is a delete of the old key and an insert of the
//     new one;
//   - values typed as listed at [ValueFromText] (DECIMAL exact, times as
//     instants with DATETIME read in Config.Zone, JSON as text, binary as
//     bytes, NULL as nil).
//
// The record key is the event key, so every change of a row lands in one
// partition, in binlog order (idempotent producer, acks from all replicas).
//
// # Commit time
//
// The event center orders a key's changes by time, then position, so the
// time must follow the order in which transactions committed, which is
// binlog order. A rows event's own timestamp does not: it is the second its
// statement started, so a statement that waited on a row lock (or ran in a
// long transaction) gets an earlier time than the change it waited for,
// and an as-of read at a time before the commit would see the change.
//
// So the CDC keeps a transaction's changes until its end event (XID,
// COMMIT, or the DDL that ends it) and stamps all of them with the
// transaction's commit time, taken from the binlog:
//
//   - MariaDB (checked on 10.11): the end event's timestamp, in whole seconds.
//     MariaDB stamps every event with the start of the statement that wrote
//     it, so this is the second the committing statement started (the
//     COMMIT, or an autocommit statement itself), which is at or before
//     the real commit. Its GTID event carries no other time.
//   - MySQL 8.0.1 and later: the immediate_commit_timestamp of the
//     transaction's GTID event (also written without GTIDs, as an
//     anonymous GTID event): the commit on this server, in microseconds.
//     Older MySQL: as MariaDB. (The tests run MariaDB only; this path is
//     read from go-mysql's GTIDEvent as MySQL documents it.)
//
// A commit time earlier than the previous transaction's (a second-resolution
// stamp of a statement that started before the previous commit) is raised
// to it: times never decrease along the binlog, and changes with the same
// time keep binlog order through their positions. The time stamped on the
// transaction at the checkpoint is saved with it, so a restart stamps
// every replayed change as before (the same identities).
//
// Under MariaDB, reads are therefore exact only to the second and to the
// committing statement: a change committed at 12:00:01.8 is stamped
// 12:00:01, so an as-of read at 12:00:01.5 sees it; and an autocommit
// statement that ran for seconds is stamped with its start, unless a
// transaction that committed meanwhile raised it (checked with MariaDB
// 10.11: an UPDATE that waited 2.2 s on a row lock has GTID and XID events
// stamped with its start, and is raised to the commit of the transaction
// it waited for).
//
// A transaction's changes are held in memory up to Config.TxnMemory
// (default 64 MiB, estimated); a bigger transaction spills the rest to a
// file in Dir (removed at its end, and at start after a crash) and is
// produced from it when its end is read. Nothing of a transaction is
// produced before its end, and the checkpoint never passes a transaction
// whose changes are not all acknowledged; a crash while a huge transaction
// is produced re-reads it from the checkpoint.
//
// # Checkpoint and restart
//
// Kafka acknowledges records out of order across partitions; the CDC keeps
// the transactions in flight in binlog order and its frontier is the end of
// the last transaction that, with every one before it, is read to its end
// (XID, COMMIT or DDL) and acknowledged. The frontier (file, position, and
// GTID set when the server has GTIDs) is written to Dir/checkpoint.json
// every CheckpointInterval (write to a temporary file, fsync, rename, fsync
// the folder) and at a clean exit. A restart — after a crash or kill -9 —
// resumes at the checkpoint (by GTID set unless NoGTID): nothing after it
// was acknowledged-and-forgotten, so nothing is lost; what was sent after
// it is sent again with the same identities, which the event center
// absorbs. A lost MySQL connection is resumed the same way, in process.
// A Kafka record that franz-go gives up on stops the CDC (Run returns the
// error): the checkpoint never passes it.
//
// Without a checkpoint the CDC starts at Config.Start (default: the
// server's current position) and writes that checkpoint before reading.
// It does not snapshot existing rows: the nightly correction does.
//
// # Schemas and DDL
//
// The binlog (without binlog_row_metadata=FULL) carries column types but not
// names, so the CDC reads a table's columns and primary key from
// information_schema when it first meets the table and again after every DDL
// statement in the binlog, and records each version, with the binlog
// coordinate it starts at, in Dir/schemas.jsonl. A DDL thus changes the
// schema from its position on, without stopping; a restart replays older
// binlog with the schemas recorded for it. Every rows event is checked
// against its schema (column count and type family): should the CDC read
// the rows before a DDL only after a second DDL changed the table again (it
// lagged behind two schema changes), the check fails and the CDC stops with
// an error naming the table rather than mislabel columns. Columns added by a
// DDL appear in a row's images from the row's next change on (ALTER TABLE
// writes no row events); TRUNCATE writes none either. Both are repaired by
// the nightly correction.
//
// # Progress
//
// Every ProgressInterval the CDC publishes a source.Progress for each source
// it captures: every change with a commit time up to T is acknowledged,
// where T is the newest commit time the frontier passed (or, when the server
// sent a heartbeat with nothing more to read, the heartbeat's arrival time)
// minus Lateness (default 2s: under MariaDB, the longest statement that
// commits a transaction, since its stamp is that statement's start).
// Ingest turns these claims into watermarks.
//
// The claim holds for every captured table, changed or not, so it is
// published for the source of every captured table that exists (listed
// from information_schema at start, after every DDL read and every minute),
// not only for the sources a change was read of: while MySQL is idle, the
// server's heartbeats (one a second) move every source's watermark on
// (within about Lateness + 2s of the clock), including sources whose
// tables were last written before the CDC started or with sql_log_bin=0,
// which leaves no binlog event. A reader waiting for a time after the last
// write (the nightly correction waits for its chunk's snapshot time) is so
// never left waiting for a write that may never come.
package cdc
