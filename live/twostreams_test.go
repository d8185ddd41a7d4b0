package live_test

import (
	"testing"

	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/live/livetest"
)

// TestTwoStreams: one job triggered by orders and repayments, one worker
// consuming both topics, the repayments' stream ahead: under FetchStrong
// every order is output joined with its repayment by at least one run
// (livetest.RunTwoStreams checks it), on an in-process broker.
func TestTwoStreams(t *testing.T) {
	livetest.RunTwoStreams(t, livetest.Fake(t), openStore(t), t0, 200)
}

// TestTwoStreamsKafka is TestTwoStreams on the harness's Kafka.
func TestTwoStreamsKafka(t *testing.T) {
	livetest.RunTwoStreams(t, testenv.KafkaBrokers(t), openStore(t), t0, 200)
}
