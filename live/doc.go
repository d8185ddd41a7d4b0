// Package live runs a job live: a Worker consumes the Kafka topics of all
// the job's trigger sources in one consumer group and runs the job on each
// event, through the same core (job.EvaluateAll, job.WriteOutputs) as
// backfills and calls. A record becomes an event by the rules of its
// topic's sources (the registry's, as ingest does); events of sources that
// do not trigger the job (another source sharing a topic) are left to
// ingest. A batch may mix trigger sources: it is handled as one.
//
// Per polled batch, in order:
//
//  1. decode each record (package wire; malformed records are counted,
//     logged and skipped);
//  2. store the batch's trigger-source events in the event center (one
//     idempotent Append; ingest may have stored them already). Only then is
//     an event handed to the job (see job's "Consistency" for what this
//     gives each level). An event the store refuses as invalid is a dead
//     letter;
//  3. evaluate the job on each event (in parallel; records keep the
//     batch's order). Runs that failed on an outage of the event center
//     (job.ErrFetch) are evaluated again with backoff; a run that failed on
//     its logic, its parameters or an invalid fetch, or ended stale, is a
//     dead letter;
//  4. write the OK runs' records to the outputs (through the ledger, so a
//     retried batch is not delivered twice), retrying outages with backoff;
//     a record an output refuses as invalid is a dead letter, and the
//     others are still written;
//  5. write the dead letters (live.DeadLetter: the job, its version, the
//     trigger's identity and Kafka record, the error) to the dead-letter
//     topic: the partition moves on past them;
//  6. mark the offsets for commit (committed every second in the
//     background, and when partitions are revoked or the worker stops).
//
// Failed, stale and skipped runs output nothing. Outages are retried at
// most Config.MaxAttempts times per step; then Run returns the error with
// the batch uncommitted, and a restart redelivers it. A crash anywhere
// before 6 redelivers the batch, which steps 2 and 4 absorb (a dead letter
// may then be written twice). Parameter values are read from the registry
// at every run. With a source registry (Config.Sources), a fetch of a
// source that is neither registered nor a job's feature source fails at
// once as an invalid fetch (job.Env.Sources).
package live
