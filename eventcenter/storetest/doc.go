// Package storetest is the conformance suite of eventcenter.Store: every
// backend runs it, so the embedded store and HBase keep one contract.
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t testing.TB, now func() time.Time) eventcenter.Store {
//			s, err := embedded.Open(embedded.Config{InMemory: true, Now: now})
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// The suite has two parts. Hand-written cases check each promise of the
// contract (store.go's doc comments) on small, readable data: as-of, history,
// idempotency, as-known-at (repeatable under a slow concurrent append), row
// types, the first and last instants, indexes, replay and its chunks,
// watermarks, malformed input, Close (and calls in flight at Close), and,
// with Options.Retention, the retention horizon. The model test then drives the store
// and a deliberately naive reference model (a slice of every stored event,
// each read answered by brute-force filter and sort, written from the
// contract's words) with thousands of random operations, and compares every
// read.
//
// StoredAt stamps come from the suite's [Clock], handed to the [Factory]: it
// moves only when the suite says so, which makes as-known-at reads
// deterministic.
//
// A failing model run prints its seed and operation number; replay it with
//
//	STORETEST_SEED=<seed> go test -run 'TestStore/.*/Model' ./eventcenter/embedded
//
// STORETEST_OPS scales the operations of each model run (default 10,000;
// 2,000 with -short) and STORETEST_SEEDS the number of seeds (default 2: the
// fixed seed 1 and a random one, run in parallel); RunWith's Options set the
// same for a slower backend.
package storetest
