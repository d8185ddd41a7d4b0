package app

import (
	"strings"
	"testing"
)

// TestTopicFlags: cdc, forward and ingest take the progress topic and live
// the dead-letter prefix from the flag, the variable or the config file,
// into the one config key that is validated before anything connects.
func TestTopicFlags(t *testing.T) {
	for _, cmd := range []string{"cdc", "forward", "ingest"} {
		code, _, stderr := run(t, cmd, "--progress-topic", "staging progress")
		if code != ExitUsage || !strings.Contains(stderr, `topics.progress: topic "staging progress"`) {
			t.Errorf("%s --progress-topic: exit %d: %s", cmd, code, stderr)
		}
	}
	code, _, stderr := run(t, "live", "--job", "credit-features", "--deadletter", "staging dead")
	if code != ExitUsage || !strings.Contains(stderr, `topics.deadLetter: topic "staging dead"`) {
		t.Errorf("live --deadletter: exit %d: %s", code, stderr)
	}

	t.Setenv("TIDEMARK_PROGRESS_TOPIC", "from env")
	code, _, stderr = run(t, "ingest")
	if code != ExitUsage || !strings.Contains(stderr, `topics.progress: topic "from env"`) {
		t.Errorf("ingest with $TIDEMARK_PROGRESS_TOPIC: exit %d: %s", code, stderr)
	}
	file := t.TempDir() + "/tidemark.yaml"
	writeFile(t, file, "topics: {progress: from file}\n")
	t.Setenv("TIDEMARK_PROGRESS_TOPIC", "")
	code, _, stderr = run(t, "forward", "--config", file)
	if code != ExitUsage || !strings.Contains(stderr, `topics.progress: topic "from file"`) {
		t.Errorf("forward --config with topics.progress: exit %d: %s", code, stderr)
	}
}
