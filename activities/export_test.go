package activities

// SetSampleWindowRows sets the rows a sample runner reads ahead at least
// (sampleWindowRows) until restore is called.
func SetSampleWindowRows(n int) (restore func()) {
	old := sampleWindowRows
	sampleWindowRows = n
	return func() { sampleWindowRows = old }
}
