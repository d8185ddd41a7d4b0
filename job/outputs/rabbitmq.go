package outputs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tidemark-dev/tidemark/job"
)

// RabbitMQConfig configures a RabbitMQ output.
type RabbitMQConfig struct {
	// URL of the broker, e.g. amqp://guest:guest@127.0.0.1:5672/. Required.
	URL string
	// Exchange to publish to. Required ("" the default exchange is not
	// allowed: results go to an exchange subscribers bind to).
	Exchange string
	// Kind, if set, declares the exchange (durable) with this kind
	// ("topic", "fanout", "direct") before the first publish. Default ""
	// (the exchange must exist).
	Kind string
	// RoutingKey returns a record's routing key. Default: the job name.
	RoutingKey func(r *job.Record) string
}

// RabbitMQOutput publishes each record as one persistent JSON message and
// waits for the broker's publisher confirms. It redials after a broken
// connection.
type RabbitMQOutput struct {
	cfg RabbitMQConfig

	mu   sync.Mutex
	conn *amqp.Connection
	ch   *amqp.Channel
}

var _ job.Output = (*RabbitMQOutput)(nil)

// RabbitMQ returns an output publishing to cfg.Exchange. It dials lazily
// (at the first Write); Close closes the connection.
func RabbitMQ(cfg RabbitMQConfig) (*RabbitMQOutput, error) {
	if cfg.URL == "" || cfg.Exchange == "" {
		return nil, errors.New("outputs: RabbitMQConfig needs URL and Exchange")
	}
	if cfg.RoutingKey == nil {
		cfg.RoutingKey = func(r *job.Record) string { return r.Job }
	}
	return &RabbitMQOutput{cfg: cfg}, nil
}

// Name implements job.Output.
func (o *RabbitMQOutput) Name() string { return "rabbitmq:" + o.cfg.Exchange }

// ConfirmChannel opens a confirm-mode channel on *conn, dialling url first
// (10 s dial timeout, 10 s heartbeats) when *conn is nil or closed. The
// caller serializes calls for one conn.
func ConfirmChannel(url string, conn **amqp.Connection) (*amqp.Channel, error) {
	if *conn == nil || (*conn).IsClosed() {
		c, err := amqp.DialConfig(url, amqp.Config{Heartbeat: 10 * time.Second, Dial: amqp.DefaultDial(10 * time.Second)})
		if err != nil {
			return nil, fmt.Errorf("rabbitmq dial: %w", err)
		}
		*conn = c
	}
	ch, err := (*conn).Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		ch.Close()
		return nil, err
	}
	return ch, nil
}

// channel returns an open confirm-mode channel; the caller holds mu.
func (o *RabbitMQOutput) channel() (*amqp.Channel, error) {
	if o.ch != nil && !o.ch.IsClosed() {
		return o.ch, nil
	}
	ch, err := ConfirmChannel(o.cfg.URL, &o.conn)
	if err != nil {
		return nil, fmt.Errorf("outputs: %w", err)
	}
	if o.cfg.Kind != "" {
		if err := ch.ExchangeDeclare(o.cfg.Exchange, o.cfg.Kind, true, false, false, false, nil); err != nil {
			return nil, fmt.Errorf("outputs: declaring exchange %s: %w", o.cfg.Exchange, err)
		}
	}
	o.ch = ch
	return ch, nil
}

// Write implements job.Output: it publishes every record, then waits for
// every confirm. A nack or a broken channel fails the batch (the caller
// retries it; subscribers drop repeated message ids).
func (o *RabbitMQOutput) Write(ctx context.Context, recs []job.Record) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	ch, err := o.channel()
	if err != nil {
		return err
	}
	confirms := make([]*amqp.DeferredConfirmation, 0, len(recs))
	for i := range recs {
		r := &recs[i]
		body, err := json.Marshal(r)
		if err != nil {
			return err
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, o.cfg.Exchange, o.cfg.RoutingKey(r), false, false, amqp.Publishing{
			ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: r.ID, Timestamp: r.Trigger.Time,
			Type: r.Job, Body: body,
			Headers: amqp.Table{HeaderJob: r.Job, HeaderJobVersion: r.JobVersion, HeaderParamVersion: int64(r.ParamVersion)},
		})
		if err != nil {
			o.ch = nil
			return fmt.Errorf("outputs: rabbitmq publish: %w", err)
		}
		confirms = append(confirms, dc)
	}
	for _, dc := range confirms {
		ok, err := dc.WaitContext(ctx)
		if err != nil {
			return fmt.Errorf("outputs: rabbitmq confirm: %w", err)
		}
		if !ok {
			return errors.New("outputs: rabbitmq: the broker nacked a message")
		}
	}
	return nil
}

// Close closes the connection.
func (o *RabbitMQOutput) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.conn == nil {
		return nil
	}
	err := o.conn.Close()
	o.conn, o.ch = nil, nil
	return err
}
