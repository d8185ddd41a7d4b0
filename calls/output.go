package calls

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/job/outputs"
)

// OutputConfig configures an Output. Store and Client are required.
type OutputConfig struct {
	// Store receives the result events and holds the calls (their reply_to).
	Store interface {
		eventcenter.Appender
		eventcenter.Reader
	}
	// Client produces to the results topic and to kafka:// replies. The
	// caller owns it.
	Client *kgo.Client
	// ResultsTopic must be the one the API reads. Default DefaultResultsTopic.
	ResultsTopic string
	// AMQPURL is the RabbitMQ broker of amqp:// replies. Default "": a call
	// asking for one is answered in the store and on the results topic
	// only, and the reply is logged as undeliverable (see Write).
	AMQPURL string
	// Logger logs undeliverable replies. Default slog.Default().
	Logger *slog.Logger
}

// Output is the output of a callable job that answers its calls: for each
// record of a call (trigger of Source(job)), in order,
//
//  1. the result event (ResultSource(job), key the call's) is appended to
//     the event center, where GET /v1/calls/{id} finds it;
//  2. the record's JSON is published to the call's reply_to, if it has one;
//  3. the record's JSON is produced to the results topic (key the call id,
//     header "tidemark-call" the same), where the API instance holding the
//     call's request learns of it.
//
// Records of other triggers are ignored. Output is not idempotent: run it
// through the worker's ledger (the live worker does), so that a retried
// batch publishes each reply once; the record ID lets subscribers drop the
// repeat of a crash between publish and mark.
type Output struct {
	cfg OutputConfig

	mu     sync.Mutex
	conn   *amqp.Connection
	ch     *amqp.Channel
	closed chan *amqp.Error // ch's close notification
}

var _ job.Output = (*Output)(nil)

// HeaderCall is the results topic's header carrying the call id.
const HeaderCall = "tidemark-call"

// NewOutput returns an Output. Close it to close its RabbitMQ connection.
func NewOutput(cfg OutputConfig) (*Output, error) {
	if cfg.Store == nil || cfg.Client == nil {
		return nil, errors.New("calls: OutputConfig needs Store and Client")
	}
	if cfg.ResultsTopic == "" {
		cfg.ResultsTopic = DefaultResultsTopic
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Output{cfg: cfg}, nil
}

// Name implements job.Output.
func (o *Output) Name() string { return "calls:" + o.cfg.ResultsTopic }

// Write implements job.Output. A reply the call itself makes undeliverable
// (an amqp:// reply_to without Config.AMQPURL or naming a missing
// exchange, a kafka:// reply_to naming a missing or forbidden topic) is
// logged and skipped: the call is answered in the store and on the results
// topic. (Failing the batch would stop the job's worker: the worker retries
// an output's error, then stops, and the redelivered call fails again.) An
// outage of RabbitMQ or Kafka fails the batch.
func (o *Output) Write(ctx context.Context, recs []job.Record) error {
	var evs []eventcenter.Event
	var triggers []eventcenter.ID
	var results []*kgo.Record
	for i := range recs {
		r := &recs[i]
		if r.Trigger.Source != Source(r.Job) {
			continue
		}
		evs = append(evs, resultEvent(r))
		triggers = append(triggers, r.Trigger)
		body, err := json.Marshal(r)
		if err != nil {
			return err
		}
		id := ID(r.Job, r.Trigger.Key)
		results = append(results, &kgo.Record{Topic: o.cfg.ResultsTopic, Key: []byte(id), Value: body,
			Headers: []kgo.RecordHeader{{Key: HeaderCall, Value: []byte(id)}}})
	}
	if len(evs) == 0 {
		return nil
	}
	if err := o.cfg.Store.Append(ctx, evs); err != nil {
		return fmt.Errorf("calls: storing results: %w", err)
	}
	for i := range results {
		t := &triggers[i]
		call, err := o.cfg.Store.AsOf(ctx, eventcenter.AsOf{Source: t.Source, Key: t.Key, Time: t.Time})
		if err != nil {
			return fmt.Errorf("calls: reading call %s: %w", t.Key, err)
		}
		rt, _ := call.After[ColReplyTo].(string)
		if rt == "" {
			continue
		}
		if err := o.reply(ctx, rt, results[i]); err != nil {
			return err
		}
	}
	return o.cfg.Client.ProduceSync(ctx, results...).FirstErr()
}

func (o *Output) reply(ctx context.Context, to string, res *kgo.Record) error {
	rt, err := ParseReplyTo(to)
	if err != nil {
		return err // the API checked it: a call stored by something else
	}
	if rt.Scheme == "kafka" {
		m := *res
		m.Topic = rt.Topic
		err := o.cfg.Client.ProduceSync(ctx, &m).FirstErr()
		if errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.InvalidTopicException) {
			o.cfg.Logger.Warn("calls: reply_to names a topic that cannot take it: no reply", "reply_to", to, "call", string(res.Key), "err", err)
			return nil
		}
		return err
	}
	var r job.Record
	if err := json.Unmarshal(res.Value, &r); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	ch, err := o.channel()
	if errors.Is(err, errNoAMQP) {
		o.cfg.Logger.Warn("calls: no reply", "reply_to", to, "call", string(res.Key), "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, rt.Exchange, rt.RoutingKey, false, false, amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: r.ID, CorrelationId: string(res.Key),
		Timestamp: r.Trigger.Time, Type: r.Job, Body: res.Value,
	})
	if err != nil {
		o.ch = nil
		return fmt.Errorf("calls: reply to %s: %w", to, err)
	}
	ok, err := dc.WaitContext(ctx)
	if err != nil {
		return fmt.Errorf("calls: reply to %s: %w", to, err)
	}
	if !ok {
		// The channel announces why it closed before it fails its
		// confirmations: a missing exchange is the caller's mistake, not
		// an outage to retry (retrying would stall the job's worker on
		// this call for good). The result is stored and announced anyway.
		select {
		case e := <-o.closed:
			if e != nil && e.Code == amqp.NotFound {
				o.ch = nil
				o.cfg.Logger.Warn("calls: reply_to names a missing exchange: no reply", "reply_to", to, "call", string(res.Key), "err", e)
				return nil
			}
		default:
		}
		return fmt.Errorf("calls: reply to %s: the broker nacked it", to)
	}
	return nil
}

var errNoAMQP = errors.New("calls: an amqp:// reply_to, and no RabbitMQ URL configured")

// channel returns an open confirm-mode channel; the caller holds mu.
func (o *Output) channel() (*amqp.Channel, error) {
	if o.ch != nil && !o.ch.IsClosed() {
		return o.ch, nil
	}
	if o.cfg.AMQPURL == "" {
		return nil, errNoAMQP
	}
	ch, err := outputs.ConfirmChannel(o.cfg.AMQPURL, &o.conn)
	if err != nil {
		return nil, fmt.Errorf("calls: %w", err)
	}
	o.ch, o.closed = ch, ch.NotifyClose(make(chan *amqp.Error, 1))
	return ch, nil
}

// Close closes the RabbitMQ connection, if any.
func (o *Output) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.conn == nil {
		return nil
	}
	err := o.conn.Close()
	o.conn, o.ch = nil, nil
	return err
}
