package activities

import (
	"sync"
	"testing"
)

// TestCorrectionSharesItsCorrector: every activity of a worker's
// Correction uses one Corrector, whose index of a source (a replay of the
// whole source) serves all of a run's chunks on that worker. A Corrector
// per activity rebuilt the index for every chunk.
func TestCorrectionSharesItsCorrector(t *testing.T) {
	a := &Correction{}
	first := a.corrector()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if c := a.corrector(); c != first {
				t.Error("a second Corrector was made")
			}
		})
	}
	wg.Wait()
}
