package calls

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/source"
)

// Source is the event center source of the calls of the job named job:
// "call.<job>". A job is callable when it is triggered by it
// (job.Trigger(calls.Source(name))). Register it as an http source (kind
// http, topic Topic(job)) in the registry of the job's live worker and of
// ingest: a call event's position is its Kafka record's, as for every
// http source, so that the worker, ingest and the API store one event.
func Source(job string) string { return "call." + job }

// ResultSource holds the results of the calls of job: "call-result.<job>",
// one event per answered call, keyed like the call.
func ResultSource(job string) string { return "call-result." + job }

// FailureSource holds the failures of the calls of job:
// "call-failed.<job>", one event per call its live worker gave up on
// (stored by the API's Caller from the dead letter), keyed like the call.
func FailureSource(job string) string { return "call-failed." + job }

// Topic is the Kafka topic of the calls of job (the live worker's default
// topic of Source(job)).
func Topic(job string) string { return source.TopicName(Source(job)) }

// DefaultResultsTopic is the topic results are announced on, for the API
// instances waiting for them.
const DefaultResultsTopic = "tidemark.call-results"

// ColReplyTo is the column of a call's trigger row naming where its result
// is published besides the results topic (see ParseReplyTo). The job's
// logic sees it like any trigger column; it should not read it.
const ColReplyTo = "_reply_to"

// colEntity is the column of a result event holding the record's entity
// (the event's key is the call's).
const colEntity = "_entity"

// Errors.
var (
	// ErrBadID: a call id that no call can have.
	ErrBadID = errors.New("calls: malformed call id")
	// ErrReplyTo: a reply_to that is not amqp://exchange/routing-key or
	// kafka://topic.
	ErrReplyTo = errors.New("calls: bad reply_to")
	// ErrIdempotencyMismatch: an idempotency key given again with another
	// row or reply_to than its call's.
	ErrIdempotencyMismatch = errors.New("calls: the idempotency key names a call with another body or reply_to")
	// ErrRefused: the job's trigger filters refuse the call.
	ErrRefused = errors.New("calls: the job's trigger filters refuse the call")
	// ErrUnavailable: Kafka did not take the call; nothing was stored.
	ErrUnavailable = errors.New("calls: Kafka did not acknowledge the call")
)

// ID is a call's id: "<job>.<key>", key the call event's key (32 hex
// digits, never a '.').
func ID(job, key string) string { return job + "." + key }

// ParseID splits a call id into its job and key.
func ParseID(id string) (job, key string, err error) {
	i := strings.LastIndexByte(id, '.')
	if i <= 0 || i == len(id)-1 {
		return "", "", fmt.Errorf("%w: %q", ErrBadID, id)
	}
	key = id[i+1:]
	if len(key) != 33 || (key[0] != 'k' && key[0] != 'r') {
		return "", "", fmt.Errorf("%w: %q", ErrBadID, id)
	}
	if _, err := hex.DecodeString(key[1:]); err != nil {
		return "", "", fmt.Errorf("%w: %q", ErrBadID, id)
	}
	return id[:i], key, nil
}

// idempotentKey is the call key of an idempotency key: the same for every
// retry of a call of one job.
func idempotentKey(job, idem string) string {
	h := sha256.Sum256([]byte(job + "\x00" + idem))
	return "k" + hex.EncodeToString(h[:16])
}

// randomKey is the key of a call without idempotency key.
func randomKey(now time.Time) string {
	var b [8]byte
	rand.Read(b[:])
	return fmt.Sprintf("r%016x%s", uint64(now.UnixNano()), hex.EncodeToString(b[:]))
}

// ReplyTo is where a call's result is published besides the results topic.
type ReplyTo struct {
	// Scheme is "amqp" (RabbitMQ: Exchange and RoutingKey) or "kafka"
	// (Topic).
	Scheme     string
	Exchange   string
	RoutingKey string
	Topic      string
}

// ParseReplyTo reads "amqp://exchange/routing-key" (the exchange must
// exist; "" the default exchange: "amqp:///queue" publishes to the queue
// named queue) or "kafka://topic".
func ParseReplyTo(s string) (ReplyTo, error) {
	u, err := url.Parse(s)
	if err != nil {
		return ReplyTo{}, fmt.Errorf("%w: %v", ErrReplyTo, err)
	}
	switch u.Scheme {
	case "amqp":
		rk := strings.TrimPrefix(u.Path, "/")
		if rk == "" || strings.Contains(rk, "/") || u.RawQuery != "" || u.User != nil {
			return ReplyTo{}, fmt.Errorf("%w: %q: want amqp://exchange/routing-key", ErrReplyTo, s)
		}
		return ReplyTo{Scheme: "amqp", Exchange: u.Host, RoutingKey: rk}, nil
	case "kafka":
		if u.Path != "" || u.RawQuery != "" || u.User != nil {
			return ReplyTo{}, fmt.Errorf("%w: %q: want kafka://topic", ErrReplyTo, s)
		}
		if err := source.ValidateTopic(u.Host); err != nil {
			return ReplyTo{}, fmt.Errorf("%w: %q: %v", ErrReplyTo, s, err)
		}
		return ReplyTo{Scheme: "kafka", Topic: u.Host}, nil
	}
	return ReplyTo{}, fmt.Errorf("%w: %q: want amqp://exchange/routing-key or kafka://topic", ErrReplyTo, s)
}

// resultEvent is the result event of record r of a call keyed key.
func resultEvent(r *job.Record) eventcenter.Event {
	e := r.Event(ResultSource(r.Job))
	e.Key = r.Trigger.Key
	e.Op = eventcenter.OpMessage
	e.After[colEntity] = r.Entity
	return e
}

// recordOf reads back the record of a result event.
func recordOf(jobName string, e *eventcenter.Event) job.Record {
	r := job.RecordFromEvent(jobName, e)
	r.Entity, _ = r.Features[colEntity].(string)
	delete(r.Features, colEntity)
	return r
}
