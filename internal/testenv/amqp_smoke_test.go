package testenv_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tidemark-dev/tidemark/internal/testenv"
)

// TestAMQPSmoke: publish with publisher confirms, then consume the message.
func TestAMQPSmoke(t *testing.T) {
	url := testenv.AMQPURL(t)
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("confirm mode: %v", err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 1))
	q, err := ch.QueueDeclare("", false, true, true, false, nil) // server-named, exclusive, auto-delete
	if err != nil {
		t.Fatalf("queue: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body := fmt.Sprintf("smoke %d", time.Now().UnixNano())
	if err := ch.PublishWithContext(ctx, "", q.Name, true, false, amqp.Publishing{
		ContentType: "text/plain", DeliveryMode: amqp.Persistent, Body: []byte(body),
	}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	select {
	case c := <-confirms:
		if !c.Ack {
			t.Fatalf("publish nacked: %+v", c)
		}
	case <-ctx.Done():
		t.Fatal("no publisher confirm within 30s")
	}

	msgs, err := ch.Consume(q.Name, "", false, true, false, false, nil)
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	select {
	case m := <-msgs:
		if string(m.Body) != body {
			t.Fatalf("got %q, want %q", m.Body, body)
		}
		if err := m.Ack(false); err != nil {
			t.Fatalf("ack: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("no message within 30s")
	}
}
