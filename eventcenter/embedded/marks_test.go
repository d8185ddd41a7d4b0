package embedded_test

import (
	"testing"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/eventcenter/storetest"
)

// TestWatermarksReopen: registrations and watermarks survive a restart,
// which registers again without moving any back.
func TestWatermarksReopen(t *testing.T) {
	dir := t.TempDir()
	storetest.WatermarksAcrossStores(t, func(t testing.TB) eventcenter.Store {
		return open(t, embedded.Config{Dir: dir})
	}, false)
}
