// Command tidemark is tidemark's binary with the example job: the whole
// CLI of package app (`tidemark dev`, `live`, `worker`, `backfill`, …) for
// examples/credit. A team builds its own binary the same way, with its own
// jobs (see examples/custom).
package main

import (
	"github.com/tidemark-dev/tidemark/app"
	"github.com/tidemark-dev/tidemark/examples/credit"
)

func main() {
	app.Main(app.Jobs(credit.New), app.Indexes(credit.Indexes()...))
}
