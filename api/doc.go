// Package api is tidemark's one HTTP API server (`tidemark api`, also
// mounted by the dev stack). Its OpenAPI 3 description is served at
// GET /v1/openapi.json (the file openapi.json beside this one, checked in
// the tests against every answer the server gives them):
//
//	GET  /v1/jobs, /v1/jobs/{job}        the catalog (package cataloghttp)
//	GET  /v1/features/{job}/{entity}     a record: latest, ?at=T, &known_at=K
//	POST /v1/features/{job}:batch        up to Config.MaxBatch records at once
//	POST /v1/features/{job}:select       entities by predicate (package serving)
//	POST /v1/calls/{job}                 call a job (package calls): 200 record or 202 {id, poll}
//	GET  /v1/calls/{id}                  poll a call: 200, 202, 404, 410
//
// Lookups are the event center's as-of reads of the job's feature source
// (serving.Lookup), so they answer exactly what a fetch of that source
// would. The job must be in the catalog (404 unknown-job with the known
// names otherwise).
//
// Errors are application/problem+json (RFC 9457, type
// "urn:tidemark:problem:<slug>"), 4xx for what the caller can fix — with
// the specifics as members: "position" (byte offset) of a bad predicate,
// "known" jobs, "max" of an exceeded limit, "parameter" at fault. The
// catalog's routes keep their own JSON errors.
//
// Identity: reads are open; calls and polls need a bearer token, which
// Config.Auth (an auth.Authenticator) maps to a principal that must be
// able to read the job (auth.RoleReader). The server takes the
// authenticator as a dependency; the token store lives elsewhere.
//
// Serving has four modes; the first three are served here, the fourth by
// the jobs' outputs:
//
//  1. feature store: lookups and selections of what jobs precomputed;
//  2. call, poll: POST /v1/calls/{job} waits up to its timeout for the
//     job's record; a slower job answers 202 and is polled;
//  3. call, message reply: the same with reply_to, the record published to
//     RabbitMQ or Kafka, correlated by the call id;
//  4. direct messages: jobs publish every record to RabbitMQ or Kafka
//     (outputs.RabbitMQ, outputs.Kafka) for systems that subscribe.
package api
