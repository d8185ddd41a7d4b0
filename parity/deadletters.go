package parity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/live"
	"github.com/tidemark-dev/tidemark/source"
)

// DeadLetters tells which triggers a job's live worker gave up on. The
// live worker outputs nothing for a run that failed or ended stale: it
// sends a live.DeadLetter instead, and that is the only trace of why the
// live record is missing. (A re-evaluation cannot tell: by the time
// parity runs, the watermark a stale run waited for has long passed.)
type DeadLetters interface {
	// GaveUp returns the dead letters of the job named job whose trigger
	// time is in [from, to). A trigger given up on more than once (a
	// redelivery) may appear more than once; the last one counts.
	GaveUp(ctx context.Context, job string, from, to time.Time) ([]live.DeadLetter, error)
}

// KafkaDeadLetters reads a job's dead-letter topic, every partition from
// its first kept record to its end when asked: dead letters past the
// topic's retention are gone, and their triggers are then judged by
// re-evaluation alone. Each call reads the whole topic (dead-letter topics
// are small; a Compare calls it once). The topic must be written without
// transactions, as the live worker writes it (a partition ending in a
// control record would never be read to its end).
type KafkaDeadLetters struct {
	Brokers []string
	// Topic, if set, is the dead-letter topic, whatever the job; otherwise
	// live.DeadLetterTopic(Prefix, job), the live worker's default naming.
	Topic  string
	Prefix string
	// Opts are added to the client's options (TLS, SASL, …).
	Opts []kgo.Opt
}

// GaveUp implements DeadLetters. A missing topic has no dead letters.
func (k KafkaDeadLetters) GaveUp(ctx context.Context, job string, from, to time.Time) ([]live.DeadLetter, error) {
	topic := k.Topic
	if topic == "" {
		topic = live.DeadLetterTopic(k.Prefix, job)
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(k.Brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, k.Opts...)...)
	if err != nil {
		return nil, fmt.Errorf("parity: dead letters of %s: %w", job, err)
	}
	defer cl.Close()
	ends, err := source.EndOffsets(ctx, cl, topic)
	if err != nil {
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			return nil, nil
		}
		return nil, fmt.Errorf("parity: dead letters of %s: %w", job, err)
	}
	starts, err := source.StartOffsets(ctx, cl, topic)
	if err != nil {
		return nil, fmt.Errorf("parity: dead letters of %s: %w", job, err)
	}
	left := map[int32]int64{} // partition → the end offset still to reach
	for p, end := range ends[topic] {
		if end > starts[topic][p] { // else empty, or every record past retention
			left[p] = end
		}
	}
	var out []live.DeadLetter
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for _, fe := range fs.Errors() {
			return nil, fmt.Errorf("parity: read %s/%d: %w", fe.Topic, fe.Partition, fe.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := left[r.Partition]; ok && r.Offset+1 >= end {
				delete(left, r.Partition)
			}
			var dl live.DeadLetter
			if json.Unmarshal(r.Value, &dl) != nil || dl.Job != job || dl.Trigger.Time.Before(from) || !dl.Trigger.Time.Before(to) {
				return
			}
			out = append(out, dl)
		})
	}
	return out, nil
}

// deadLetterKey is a trigger's identity as a map key (time.Time is not
// comparable across locations).
type deadLetterKey struct {
	source, key string
	nanos       int64
	pos         eventcenter.Position
}

func idKey(id eventcenter.ID) deadLetterKey {
	return deadLetterKey{id.Source, id.Key, id.Time.UnixNano(), id.Pos}
}

// gaveUp indexes dead letters by their trigger, the last one winning.
func gaveUp(dls []live.DeadLetter) map[deadLetterKey]live.DeadLetter {
	m := make(map[deadLetterKey]live.DeadLetter, len(dls))
	for _, dl := range dls {
		t := dl.Trigger
		m[deadLetterKey{t.Source, t.Key, t.Time.UnixNano(), eventcenter.Position{Log: t.Pos[0], Offset: t.Pos[1]}}] = dl
	}
	return m
}
