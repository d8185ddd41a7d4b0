package job

// WithoutRounds turns evaluation in rounds off, so that a test reaches the
// gathered path alone, and returns what turns it back on.
func WithoutRounds() (restore func()) {
	roundsOn = false
	return func() { roundsOn = true }
}
