// Package ingest stores every source's Kafka records in the event center and
// keeps the sources' watermarks.
//
// An [Ingester] is one member of a Kafka consumer group (franz-go) over every
// topic of the source registry. Per polled batch it
//
//  1. turns each record into an event: wire records are decoded with
//     wire.Decode (the "tidemark-codec" header picks the codec) and must name
//     a source registered for the topic and carry the record key as their
//     key; records of kafka sources in json or raw format become message
//     events (see source.KafkaOptions);
//  2. appends the events in one eventcenter Append, retrying until it
//     succeeds (Append is idempotent, so a retry or a replay after a crash
//     stores nothing twice), with a note of each event at or behind its
//     source's watermark holding that watermark ([LateSource]);
//  3. produces the records that cannot be events to the dead-letter topic
//     and waits for Kafka's acknowledgement;
//  4. advances watermarks (below);
//  5. commits the batch's offsets.
//
// A crash anywhere re-consumes from the last commit. Rebalances wait for the
// batch in hand (BlockRebalanceOnPoll), so a partition is never stored by two
// members at once.
//
// # Positions
//
// Events of mysql and rabbitmq sources keep the position their producer gave
// them (binlog position; see package cdc and forward). Events of http and
// kafka sources get their record's Kafka position: Log = partition, Offset =
// offset, so a replay of the topic produces the same identities.
//
// # Dead letters
//
// A record that cannot be stored (malformed value, unregistered source or
// topic, record key different from the event key, or refused by the store)
// is produced to Config.DeadLetterTopic (default "tidemark.deadletter") with
// its key, value and headers unchanged, plus the headers
// tidemark-dlq-reason ("<reason>: <detail>", reason one of the Reason
// constants), tidemark-dlq-topic, tidemark-dlq-partition, tidemark-dlq-offset
// and tidemark-dlq-timestamp. It never blocks its partition: the offsets
// after it are committed once it is acknowledged by Kafka. It is never
// dropped silently: it is logged, counted, and in the dead-letter topic
// before its offset is committed (at least once: a crash between the two
// produces it again).
//
// # Watermarks
//
// A watermark W of (source, partition) claims: every event of the source
// that will ever be in that Kafka partition with event time <= W is stored.
// Ingest moves it forward only, only for partitions it owns, and only after
// the Append of the records it covers returned.
//
// The event center's source watermark is the minimum over the source's
// registered partitions, and a registered partition that never advanced
// holds it at the floor (the zero time). Before it advances any partition
// of a source, ingest registers every partition of the source's topic
// (eventcenter.Watermarks.RegisterPartitions): at start and on each
// assignment it lists the topics' partitions, and a listing that finds a
// partition added registers it too. So a partition no instance has stored
// yet (at start-up, owned by a lagging or stopped instance of the group, or
// just added) holds the source back instead of being left out of the
// minimum. Registration is idempotent and never moves a watermark back, so
// a restart or a second instance does not move the source's watermark
// backwards; a partition added to the topic does, to the floor, until it
// advances.
//
// Event times within a partition are not monotonic (the CDC stamps commit
// times, non-decreasing along one binlog, but several producers interleave,
// and foreign producers stamp records as they like), and an idle partition
// proves nothing by itself. So W comes from what can prove it:
//
// Sources written by our producers (kinds mysql, rabbitmq, http): progress
// reports. A producer publishes, about once a second, a source.Progress on
// the deployment's progress topic (Config.ProgressTopic, default
// "tidemark.progress"): "every event of source S with time <= T that I
// write is in topic X below offsets Ends[p]". Once ingest has stored every
// offset below Ends[p] of an owned partition p, W(S, p) may become T. With
// several producers of one source (several forwarders), W is the minimum
// of what each producer heard from in the last ProducerTimeout allows; a
// producer silent longer no longer holds the source back (what a dead
// producer had in flight may then be passed: it crashed before Kafka
// acknowledged it).
// Idle partitions and idle sources move with the reports, because the
// producer claims T even when it writes nothing; when a producer is down,
// nothing moves, which is right: its source may have unpublished changes.
//
// Sources written by other systems (kind kafka): event time is the record
// timestamp, which the producer sets when it sends. With L the source's
// Lateness (default 2s):
//   - W(p) >= (newest event time stored from p) − L;
//   - an idle partition: when a listing of p's high watermark sent at time
//     t0 finds everything below it stored, W(p) >= t0 − L, because a record
//     not yet in p at t0 was stamped no earlier than t0 − L. This is the
//     idle rule: a caught-up partition follows the clock, so it never holds
//     the source back, and a lagging one holds it back exactly while it
//     lags. Offsets are listed every MarkInterval (default 1s).
//
// Dead-lettered records are not waited for: they will never be stored.
//
// # Metrics
//
// See [Metrics]: consumed records, stored events, dead letters by reason,
// lag in records per partition, watermark delay per source.
package ingest
