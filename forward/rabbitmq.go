package forward

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/source"
)

// RabbitMQ configures ConsumeRabbitMQ.
type RabbitMQ struct {
	// URL of the broker, amqp://user:pass@host:port/vhost. Required.
	URL string
	// Prefetch bounds the messages in flight per queue. Default 512.
	Prefetch int
}

// ConsumeRabbitMQ forwards the queue of every rabbitmq source until ctx
// ends, reconnecting after failures. A message becomes a message event of
// its source:
//
//   - Key: the message's message-id property (a publisher that sets it,
//     with a timestamp, gets exactly one event per message even when
//     RabbitMQ redelivers it); without one, an id the forwarder makes;
//   - Time: the timestamp property if set (one-second resolution), else
//     the arrival time;
//   - After: the body as a JSON object (source.RowFromJSON) when it is one
//     and the content type is empty or JSON; else {"body": bytes}.
//
// The message is acknowledged to RabbitMQ only after Kafka acknowledged
// its record; if Kafka fails it is requeued. A crash in between makes
// RabbitMQ redeliver it: at least once, exactly once in the event center
// when the publisher sets message-id and timestamp.
func (f *Forwarder) ConsumeRabbitMQ(ctx context.Context, cfg RabbitMQ) error {
	if cfg.URL == "" {
		return errors.New("forward: RabbitMQ.URL is required")
	}
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = 512
	}
	var wg sync.WaitGroup
	for _, s := range f.cfg.Sources.ByKind(source.KindRabbitMQ) {
		q := &queueState{src: s, cfg: cfg}
		f.mu.Lock()
		f.queues[s.Name] = q
		f.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for attempt := 0; ctx.Err() == nil; attempt++ {
				err := f.consumeQueue(ctx, q)
				if ctx.Err() != nil {
					return
				}
				f.log.Warn("forward: rabbitmq consumer stopped, reconnecting", "source", s.Name, "queue", s.RabbitMQ.Queue, "err", err)
				t := time.NewTimer(time.Duration(min(attempt+1, 10)) * time.Second)
				select {
				case <-ctx.Done():
				case <-t.C:
				}
				t.Stop()
			}
		}()
	}
	wg.Wait()
	return nil
}

// queueState is what the progress reporter knows of one queue.
type queueState struct {
	src *source.Source
	cfg RabbitMQ

	mu       sync.Mutex
	ch       *amqp.Channel // for passive declares; nil while disconnected
	lastSeen time.Time     // last delivery
}

// empty reports whether the queue had no ready message, and the consumer
// no delivery for two seconds.
func (q *queueState) empty(context.Context) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ch == nil || time.Since(q.lastSeen) < 2*time.Second {
		return false
	}
	st, err := q.ch.QueueDeclarePassive(q.src.RabbitMQ.Queue, true, false, false, false, nil)
	return err == nil && st.Messages == 0
}

func (f *Forwarder) consumeQueue(ctx context.Context, q *queueState) error {
	s := q.src
	conn, err := amqp.Dial(q.cfg.URL)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := ch.Qos(q.cfg.Prefetch, 0, false); err != nil {
		return err
	}
	side, err := conn.Channel()
	if err != nil {
		return err
	}
	tag := "tidemark-forward-" + f.cfg.ProducerID
	deliveries, err := ch.Consume(s.RabbitMQ.Queue, tag, false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %s: %w", s.RabbitMQ.Queue, err)
	}
	q.mu.Lock()
	q.ch, q.lastSeen = side, time.Now()
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		q.ch = nil
		q.mu.Unlock()
	}()
	var pending sync.WaitGroup
	defer func() { // acks need the channel open; what stays unacked is redelivered
		done := make(chan struct{})
		go func() { pending.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			f.log.Warn("forward: rabbitmq messages still waiting for Kafka at exit; RabbitMQ redelivers them", "source", s.Name)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			ch.Cancel(tag, false)
			return nil
		case d, ok := <-deliveries:
			if !ok {
				return errors.New("the channel closed")
			}
			q.mu.Lock()
			q.lastSeen = time.Now()
			q.mu.Unlock()
			pending.Add(1)
			f.forwardDelivery(s, d, pending.Done)
		}
	}
}

func (f *Forwarder) forwardDelivery(s *source.Source, d amqp.Delivery, finished func()) {
	key := d.MessageId
	if key == "" || len(key) > eventcenter.MaxKeyLen {
		key = newID()
	}
	t, done := f.stamp(s.Name, d.Timestamp.UTC())
	e := eventcenter.Event{Source: s.Name, Key: key, Time: t, Op: eventcenter.OpMessage, After: bodyRow(d.ContentType, d.Body)}
	rec, err := f.record(s, &e)
	if err == nil {
		err = e.Validate()
	}
	if err != nil { // cannot happen for a row of a body; never requeue it forever
		done(nil, err)
		f.count(s.Name, "rejected")
		f.log.Error("forward: rabbitmq message cannot be an event, rejected", "source", s.Name, "id", key, "err", err)
		d.Reject(false)
		finished()
		return
	}
	start := time.Now()
	f.cfg.Client.Produce(context.Background(), rec, func(rec *kgo.Record, err error) {
		defer finished()
		done(rec, err)
		if m := f.cfg.Metrics; m != nil {
			m.ProduceSeconds.WithLabelValues(s.Name).Observe(time.Since(start).Seconds())
		}
		if err != nil {
			f.count(s.Name, "failed")
			f.log.Warn("forward: rabbitmq message not acknowledged by Kafka, requeued", "source", s.Name, "id", key, "err", err)
			d.Nack(false, true)
			return
		}
		if err := d.Ack(false); err != nil {
			// The channel is gone: RabbitMQ redelivers the message.
			f.log.Warn("forward: rabbitmq ack failed", "source", s.Name, "id", key, "err", err)
		}
		f.count(s.Name, "ok")
	})
}

func bodyRow(contentType string, body []byte) eventcenter.Row {
	if mt, _, _ := mime.ParseMediaType(contentType); contentType == "" || mt == "application/json" {
		if row, err := source.RowFromJSON(body); err == nil {
			return row
		}
	}
	return eventcenter.Row{"body": append([]byte(nil), body...)}
}
