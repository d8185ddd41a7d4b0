// Package hbase is the event center's production backend: the tables of
// eventcenter/codec laid onto HBase through gohbase, keeping the contract
// of eventcenter.Store (proved by eventcenter/storetest against a real
// HBase).
//
// # Layout
//
// One namespace (Config.Namespace, default "tidemark") holds five tables,
// each with one column family "d". Row keys are exactly the codec's:
//
//	events  codec.EventKey   salt | source | key | ^time | ^pos   qualifier: stamp      value: body
//	time    codec.TimeKey    bucket | source | time | pos | key   qualifier: stamp      value: body
//	index   codec.IndexKey   salt' | source | index | value | key | time | pos          value: empty
//	marks   codec.MarkKey    source | partition                   qualifier "m"         value: watermark
//	meta    "layout", "ix"|source|name                            bucket count, retention, index declarations
//
// Why these keys:
//
//   - events: all changes of one key are adjacent, newest first, so an
//     as-of read is one seek and one row: a scan from codec.AsOfSeek to the
//     end of the key's rows, asking for one row and the scanner's close in
//     the same RPC. The salt (a byte of a hash of source and key) spreads a
//     hot source over every region of the table, pre-split on that byte
//     (Config.Regions, default 16), while one key's rows stay in one region:
//     writes spread, as-of reads stay a single short scan. History is a scan
//     of the same rows.
//   - time: the replay order of one source, spread over Config.Buckets
//     (default 16) buckets by the same hash, and pre-split on the bucket
//     byte, so that the appends of a hot source, whose event times are all
//     "now", do not land on one region. Its cells are those of events, the
//     same qualifiers and bodies, as the embedded store's time table carries
//     the bodies: a replay is a stream of scans and no get per event. It
//     scans every bucket of every source concurrently, each in a goroutine
//     that reads ReplayWindow rows per RPC and holds up to two such batches
//     ready ahead of the merge (eventcenter.MergeReplay). The bucket count
//     is part of the layout: it is recorded in meta when the namespace is
//     created and Open refuses another.
//   - index: one row per event whose After row has a value in a declared
//     index; a lookup scans the value's rows and checks each candidate key
//     with an as-of read, so a key that left the value is not returned.
//   - marks: one row per (source, partition), moved by check-and-put on its
//     current value, so concurrent processes never move it backwards.
//
// # First copy wins, without reading before writing
//
// Each append stamps its StoredAt once (never earlier than the previous
// stamp of the store) and writes every event body into a cell whose
// qualifier is that stamp (8 order-preserving bytes of its nanoseconds) then
// a per-store sequence number. A re-appended event adds a cell to the same
// row instead of replacing one; since a row's cells sort by qualifier, the
// first cell is the first copy, and every read of events asks for just
// that one (HBase's per-family store limit of 1). "As known at S" is a server-side
// column-range filter on the qualifier (stamps up to S): a row none of whose
// copies was stored by S is skipped by the region server, and the first
// copy it returns is the first one stored. StoredAt round-trips to the
// nanosecond, unlike a cell timestamp (milliseconds).
//
// The alternative, check-and-put per event, is atomic but one RPC per
// event that the client cannot batch; blind puts are batched per region
// server (FlushInterval, RPCQueueSize). Duplicates come only from
// re-ingest, so the extra cells are rare; each costs a body in each table.
// Appends of one instant keep their order only within one process: across
// processes, "first" is as good as their clocks.
//
// # Two tables, one first copy
//
// The events and time cells of an event are written by one Append but not
// atomically: a process may die, or HBase fail, between them. The rule that
// keeps AsOf and Replay agreeing on the first copy, without a read before
// the write:
//
//   - An Append writes each event's time cell first and its events cell
//     only once that has succeeded, with the same qualifier (its stamp) and
//     the same body. A put retried within the Append rewrites the same
//     bytes. So the copies in events are always a subset of those in time,
//     and a row of either table holds each copy at most once.
//   - Replay reads each time row's first two cells, of all copies. One
//     cell, stored by KnownAt: that is the event, whose events cell holds
//     the same copy (or is not written yet: see below). Its first cell
//     stored after KnownAt: the event was not known then, in either table.
//     Two cells, the first stored by KnownAt: a re-appended event, whose
//     first complete copy only events can tell; Replay reads that row of
//     events at KnownAt, as AsOf does (a get, batched with the others of
//     its RPC's rows). Re-appends come from re-ingesting a range, so these
//     gets are rare; a replay over a range ingested twice pays them all.
//
// What is left: after an Append that failed between the two tables, and
// before a retry completes it, Replay yields the events whose time cells it
// wrote and AsOf does not find them (the contract lets a failed Append be
// partly stored). The retry appends a second copy, and from then on Replay
// and AsOf agree on it, at every KnownAt: the failed copy, which no events
// cell holds, is no first copy. So a replay as known at an instant between
// the two stamps yields the event before the retry and not after it; what
// AsOf answers never changes. (Writing events first would leave, after
// such a retry, an events row whose first copy is older than its time
// row's, a disagreement that no read could see without a get per event.)
//
// # Batched as-of reads
//
// One AsOf is one scan RPC, and the region server's cost per scan bounds
// how many a backfill can make. AsOfBatch (eventcenter.BatchReader) answers
// many reads with a few scans: it sorts the reads by seek key, cuts them
// into runs within the events table's pre-split regions, and reads each
// run, concurrently (Config.BatchParallel), with a scan whose
// MultiRowRangeFilter passes only the runs' key ranges, each from a read's
// seek key to the end of its key's rows, so the region server seeks from
// one range to the next. A run is first read in one RPC that opens the
// scanner, returns the rows and closes it; a run whose rows go on (into
// another region, or past what one RPC returns) continues from its first
// unsettled read, with a scanner that follows the rows. Each read takes
// the first row of its range whose first copy was stored by its KnownAt;
// the scan's own known-at filter is the latest KnownAt of the batch (none
// if a read has none), so reads as known at different instants share it.
// A key's older rows after its answer answer nothing: after a few the scan
// is reopened at the next read's seek key. The store is an
// eventcenter.RemoteBatchReader: job.RunAll and job.EvaluateAll read the
// reads of a batch of runs in such batches (runs evaluated in rounds, each
// round's reads one batch; see job/rounds.go), and RunAll evaluates one
// batch of runs while the reads of the next are in flight.
//
// # As known at
//
// A read as known at K must not change once it has returned (see
// eventcenter.Reader), but an append is stamped before its puts land. This
// process's appends are tracked (eventcenter.Stamps): a read at K waits for
// those stamped by K, and later stamps fall after K. Other processes'
// appends cannot be waited for, so K is clamped to the known-at horizon,
// now minus Config.KnownAtLag (default 2m): every Append ends within
// Config.MaxAppend (default 1m) of its stamp or fails, and the lag covers
// that plus the skew between the writers' clocks. An RPC that the region
// server applies after the client gave up on it is outside this bound.
// Config.SoleWriter drops the lag for a namespace with one writer.
//
// Appends are batches of concurrent puts, each retried with backoff on
// transient failures (region moves and restarts are retried by gohbase
// itself until the context ends). A failed Append may have stored part of
// its batch; a retry completes it. An index row whose events row is missing
// is skipped by Lookup; a time row, see "Two tables, one first copy".
//
// # Retention
//
// The hot tier keeps Config.Retention (default forever, see
// DefaultRetention; a window such as 32 days is set explicitly): the TTL of the
// events, time and index families, counted from when HBase wrote a cell
// (cell timestamps are the region server's clock, not StoredAt, so events
// brought back from the cold tier stay a full retention). The retention is
// recorded in meta; Open with another value alters the families and records
// it; Forever keeps everything. Horizon reports the instant before which
// data may have left the hot tier: every read whose answer may depend on
// what was stored before it fails with eventcenter.ErrBeyondHorizon instead
// of answering short (see eventcenter.Retention), until the cold tier
// serves those reads. Marks and meta never expire.
//
// # Schema and start-up
//
// Open creates what is missing of the namespace and the tables (idempotent,
// safe when several processes start at once) and fails within
// Config.DialTimeout, naming the ZooKeeper quorum, when HBase is down: it
// first dials the quorum itself, since gohbase retries a dead one forever.
// The tidemark hbase command does the same from the command line.
//
// The layout has a version, recorded in meta (now 2: the time table carries
// the bodies). Open refuses a namespace of another version with a sentence
// saying what to do; one made by an earlier tidemark (version 1, time rows
// without bodies) fails with ErrOldLayout: it is not migrated in place.
// Drop it (tidemark hbase drop) and create it again (tidemark hbase init),
// or open another namespace, and re-ingest its events from their topics.
//
// # Index declarations across processes
//
// A declaration is recorded "building" in meta, this process's appends are
// fenced, the store waits Config.IndexRefresh (how stale other processes'
// view of the declarations may be), indexes the stored events, and records
// "ready"; see DeclareIndex for why no event of any process is missed.
package hbase
