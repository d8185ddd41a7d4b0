// Package app is tidemark's command line as a library. A team writes its
// jobs in its own Go module and builds its own binary with them, as
// Temporal users build their own workers:
//
//	func main() {
//		app.Main(app.Jobs(credit.New, fraud.New), app.Indexes(credit.Indexes()...))
//	}
//
// The binary gets every command — dev, live, worker, backfill, ingest, cdc,
// forward, hbase, config — for exactly the jobs it was given (cmd/tidemark
// is that, with the example job; examples/custom is a second module doing
// the same).
//
// Every command reaches the services through one app/config.Config: an
// optional YAML file (--config), TIDEMARK_* variables and flags, each
// overriding the one before. Exit codes: 0 for success and help, 1 when a
// command fails, 2 for a usage error (an unknown command or flag, a bad
// flag value, an unexpected argument); the error is printed once, on
// stderr.
//
// Compatibility for one release: single-dash long flags (-job) are read
// as --job, `backfill worker` runs `worker`, and `worker --job` (the old
// live worker) runs `live`; each prints a deprecation line on stderr.
package app
