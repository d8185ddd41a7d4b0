package tiered_test

import (
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/eventcenter/storetest"
	"github.com/tidemark-dev/tidemark/eventcenter/tiered"
	"github.com/tidemark-dev/tidemark/eventcenter/tiered/tieredtest"
)

func openEmbedded(t testing.TB, now func() time.Time) tiered.Hot {
	t.Helper()
	s, err := embedded.Open(embedded.Config{InMemory: true, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStore: the conformance suite over embedded + a folder. (HBase + S3:
// eventcenter/hbase's TestTiered.)
func TestStore(t *testing.T) {
	tieredtest.Run(t, openEmbedded, func(t testing.TB) tiered.Blob { return tiered.Dir(t.TempDir()) },
		storetest.Options{ModelOps: 2000, ModelSeeds: 2})
}
