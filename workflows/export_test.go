package workflows

// Unpatched makes Backfill behave as if written without its GetVersion
// patch until the returned function is called.
func Unpatched() (restore func()) {
	unpatched = true
	return func() { unpatched = false }
}

// Cut is cut, for its test.
var Cut = cut
