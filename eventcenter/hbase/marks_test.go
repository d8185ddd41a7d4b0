package hbase_test

import (
	"testing"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/storetest"
)

// TestWatermarksTwoStores: two stores on one namespace, as two processes:
// what one registers and advances, the other sees, and registrations
// racing with advances never move a watermark back.
func TestWatermarksTwoStores(t *testing.T) {
	cfg := testConfig(t)
	storetest.WatermarksAcrossStores(t, func(t testing.TB) eventcenter.Store { return open(t, cfg) }, true)
}
