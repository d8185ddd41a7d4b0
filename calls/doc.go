// Package calls turns an asynchronous job into a request: a call is a
// trigger event like any other, so it runs through the live worker, is
// stored in the event center, and can be replayed by a backfill.
//
// The path of a call (POST /v1/calls/{job}, package api):
//
//  1. the API's Caller makes the call event: source Source(job)
//     ("call.<job>"), key the call's key, time now, op message, the
//     request body as its row (plus ColReplyTo when the caller asked for a
//     reply); produces it to Topic(job), then stores it with its Kafka
//     position (call sources are http sources of the registry);
//  2. the job's live worker (the job is triggered by Source(job)) stores
//     the trigger (already there: one event), runs the job, and writes its
//     outputs, among them an Output: the result event (ResultSource(job),
//     keyed like the call), the reply to reply_to, and a message on the
//     results topic keyed by the call id;
//  3. every API instance reads the whole results topic (no consumer group,
//     from its start time) and hands a result to the requests waiting for
//     its call id; a request whose timeout passes answers 202, and
//     GET /v1/calls/{id} reads the result event from the event center.
//
// A call id is "<job>.<key>". With an Idempotency-Key, the key is a hash of
// the job and the idempotency key (the API prefixes the caller's principal
// id: keys are each caller's own), so a retry names the same call: if the
// call is stored, the retry stores and produces nothing and waits for (or
// returns) its result. The job runs once per call, except in one window:
// two retries reaching two API instances before either stored the call
// both produce it (the worker then runs it twice; the record, its ID and
// the feature store are the same, and the ledger keeps replies to one).
//
// Replay: a backfill of a callable job over a time range replays its call
// events, and, with the same parameter version, gives the records the
// calls got (TestCallsReplay in package api).
//
// A call the job's worker gives up on (its run failed or went stale, the
// record was refused: a dead letter) fails: every Caller reads the
// workers' dead-letter topics too, stores the failure (FailureSource,
// keyed like the call) and answers the waiting request and later polls
// with it (422 call-failed).
//
// Limits: the results topic is read whole by every API instance, which is fine up to
// some thousands of calls a second per instance — beyond, per-instance
// reply topics (the call event naming its instance's topic) would cut
// each instance's reading to its own calls. The job's live worker must
// know the call source as an http source (live.Config.Sources): without a
// registry it would store the call under its encoded position, a second
// event beside the API's.
//
// The Output belongs to the live run: a backfill replaying calls writes to
// a sink (files, the feature store), not to the callers again.
package calls
