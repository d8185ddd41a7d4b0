package livetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/live"
	"github.com/tidemark-dev/tidemark/wire"
)

// The seed's two-stream case (ARCHITECTURE.md, "Fetch instead of join"):
// orders and their repayments, related by the order: a repayment's key is
// its order's key.
const (
	Orders     = "test.orders"
	Repayments = "test.repayments"
	// TwoStreamsJob is the name of TwoStreams's job.
	TwoStreamsJob = "order-repayment"
)

// TwoStreams returns one job triggered by both streams: on either event it
// fetches the other one of its order, as of its own time, and outputs the
// joined pair (principal and paid amount), or nothing when the other is not
// there. opts are added (e.g. the consistency level and outputs).
func TwoStreams(opts ...job.Option) *job.Job {
	return job.MustNew(TwoStreamsJob, func(c *job.Context) (eventcenter.Row, error) {
		tr := c.Trigger()
		other := Repayments
		if tr.Source == Repayments {
			other = Orders
		}
		row, err := c.Get(other, tr.Key)
		if errors.Is(err, job.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		order, repayment := row, tr.After
		if tr.Source == Orders {
			order, repayment = tr.After, row
		}
		return eventcenter.Row{"principal": order["principal"], "paid": repayment["amount"]}, nil
	}, append([]job.Option{job.Trigger(Orders, job.Ops(eventcenter.OpInsert)), job.Trigger(Repayments, job.Ops(eventcenter.OpInsert))}, opts...)...)
}

// TwoStreamsEvents returns n orders ("o<i>", 10ms apart from t0) and their
// repayments: each a millisecond after its order, every fifth at the
// order's very time (one transaction). Their positions are those of one
// binlog, distinct across the two tables: a feature store keeps one record
// per (entity, time, trigger position), so two triggers of one order at
// one time must differ in position (see job.Entity).
func TwoStreamsEvents(t0 time.Time, n int) (orders, repayments []eventcenter.Event) {
	for i := range n {
		at := t0.Add(time.Duration(i) * 10 * time.Millisecond)
		paid := at.Add(time.Millisecond)
		if i%5 == 0 {
			paid = at
		}
		key := fmt.Sprint("o", i)
		orders = append(orders, eventcenter.Event{Source: Orders, Key: key, Time: at, Op: eventcenter.OpInsert,
			Pos: eventcenter.Position{Log: 1, Offset: uint64(2 * i)}, After: eventcenter.Row{"principal": int64(1000 + i)}})
		repayments = append(repayments, eventcenter.Event{Source: Repayments, Key: key, Time: paid, Op: eventcenter.OpInsert,
			Pos: eventcenter.Position{Log: 1, Offset: uint64(2*i + 1)}, After: eventcenter.Row{"amount": int64(i)}})
	}
	return orders, repayments
}

// RunTwoStreams runs TwoStreams at the FetchStrong level live on brokers,
// one worker consuming both streams' topics (2 partitions each, named
// uniquely), over TwoStreamsEvents(t0, n) stored in st, and returns the
// records it output once every trigger has run.
//
// The repayments (the later stream) are produced first, so their runs come
// before the orders are stored; the test plays ingest: it stores each
// stream and only then moves its watermark to the scenario's end. Under FetchStrong
// every order must still be output joined by at least one run, which
// RunTwoStreams checks (and that no run failed or went stale).
func RunTwoStreams(t *testing.T, brokers []string, st eventcenter.Store, t0 time.Time, n int) []job.Record {
	t.Helper()
	ctx := context.Background()
	ot, rt := UniqueTopic("test.orders"), UniqueTopic("test.repayments")
	CreateTopic(t, brokers, ot, 2)
	CreateTopic(t, brokers, rt, 2)
	out := &Collect{}
	j := TwoStreams(job.Consistency(job.FetchStrong), job.WaitTimeout(30*time.Second), job.Outputs(out))
	w, err := live.New(j, live.Config{Brokers: brokers, Topics: map[string]string{Orders: ot, Repayments: rt},
		Group: UniqueTopic("test.group"), DeadLetterTopic: UniqueTopic("test.deadletter"), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	}()

	orders, repayments := TwoStreamsEvents(t0, n)
	end := repayments[n-1].Time // the streams hold nothing more: their watermarks may pass their last events
	ingest := func(evs []eventcenter.Event) {
		t.Helper()
		if err := st.Append(ctx, evs); err != nil {
			t.Fatal(err)
		}
		if err := st.AdvanceWatermark(ctx, evs[0].Source, 0, end); err != nil {
			t.Fatal(err)
		}
	}
	if err := NewProducer(t, brokers, rt, wire.Binary).Produce(ctx, repayments...); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the repayments' runs start, waiting for the orders
	ingest(orders)
	if err := NewProducer(t, brokers, ot, wire.JSON).Produce(ctx, orders...); err != nil {
		t.Fatal(err)
	}
	ingest(repayments)

	deadline := time.Now().Add(60 * time.Second)
	for w.Stats().Runs < int64(2*n) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %+v after 60s, want %d runs", w.Stats(), 2*n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s := w.Stats()
	if s.Runs != int64(2*n) || s.ByOutcome[job.Failed] != 0 || s.ByOutcome[job.Stale] != 0 {
		t.Fatalf("stats %+v: want %d runs, none failed or stale", s, 2*n)
	}
	recs := out.All()
	joined := map[string]bool{}
	for _, r := range recs {
		joined[r.Entity] = true
	}
	for _, o := range orders {
		if !joined[o.Key] {
			t.Errorf("order %s: no run saw it with its repayment", o.Key)
		}
	}
	return recs
}

// Collect is an output that keeps what it is given.
type Collect struct {
	mu   sync.Mutex
	recs []job.Record
}

// Name implements job.Output.
func (c *Collect) Name() string { return "collect" }

// Write implements job.Output.
func (c *Collect) Write(_ context.Context, recs []job.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs = append(c.recs, recs...)
	return nil
}

// All returns the records written so far.
func (c *Collect) All() []job.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]job.Record(nil), c.recs...)
}
