// Command custom is a team's own tidemark binary: its module holds its
// jobs, and these few lines give it the whole tidemark CLI for them (dev,
// live, worker, backfill, ingest, …), as a Temporal user builds a worker.
//
//	go build -o custom . && ./custom backfill start --job api-scores --from 2026-11-25 --to 2026-11-26
package main

import (
	"github.com/tidemark-dev/tidemark/app"

	"example.com/custom/scores"
)

func main() {
	app.Main(app.Jobs(scores.New))
}
