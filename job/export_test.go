package job

// WithoutRounds turns evaluation in rounds off, so that a test reaches the
// gathered path alone, and returns what turns it back on.
func WithoutRounds() (restore func()) {
	roundsOn = false
	return func() { roundsOn = true }
}

// Over returns p over store as the gathered path builds it (over): every
// fetch is given a copy.
func (p *Prefetch) Over(store Store) *Prefetch { return p.over(store) }
