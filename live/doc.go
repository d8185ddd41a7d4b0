// Package live runs a job live: a Worker consumes the trigger source's
// Kafka topic in a consumer group and runs the job on each event, through
// the same core (job.EvaluateAll, job.WriteOutputs) as backfills and calls.
//
// Per polled batch, in order:
//
//  1. decode each record (package wire; malformed records are counted,
//     logged and skipped);
//  2. store the batch's trigger-source events in the event center (one
//     idempotent Append; ingest may have stored them already). Only then is
//     an event handed to the job: of two related events processed
//     concurrently by any workers, the one processed second finds the other
//     (see ARCHITECTURE.md, "Fetch instead of join");
//  3. evaluate the job on each event (in parallel; records keep the
//     batch's order); runs that failed on the event center are retried with
//     backoff, runs failed by their logic or stale are reported and not
//     retried;
//  4. write the records to the outputs (through the ledger, so a retried
//     batch is not delivered twice), retrying with backoff;
//  5. mark the offsets for commit (committed every second in the
//     background, and when partitions are revoked or the worker stops).
//
// A crash anywhere before 5 redelivers the batch, which steps 2 and 4
// absorb. Parameter values are read from the registry at every run.
package live
