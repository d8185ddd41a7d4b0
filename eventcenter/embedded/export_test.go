package embedded

// SetMinBatchPart sets the fewest reads AsOfBatch answers on a goroutine
// of their own, until the returned undo.
func SetMinBatchPart(n int) (undo func()) {
	was := minBatchPart
	minBatchPart = n
	return func() { minBatchPart = was }
}
