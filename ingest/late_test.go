package ingest_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/ingest"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/source"
	"github.com/tidemark-dev/tidemark/wire"
)

// TestLateEventsAreNotedWithTheirWatermark: on the real Kafka, an event
// behind its source's watermark when ingest stores it gets a note holding
// that watermark (not the later one of today), and OnLate hears of it; an
// event ahead of the watermark gets none. A second consumer group reading
// the topic again (as after a crash before the commit), with the watermark
// moved past everything, notes only the one new late event: the events
// stored already were not late when stored.
func TestLateEventsAreNotedWithTheirWatermark(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx := t.Context()
	b := make([]byte, 4)
	rand.Read(b)
	id := hex.EncodeToString(b)
	topic, src := "ingest-late-"+id, "mysql.late_"+id+".orders"
	reg, err := source.Parse(fmt.Appendf(nil, `
sources:
  - name: %s
    kind: mysql
    topic: %s
    mysql: {database: late_%s, table: orders}
`, src, topic, id))
	if err != nil {
		t.Fatal(err)
	}
	pc := producer(t, brokers)
	if err := source.EnsureTopics(ctx, pc, 1, topic, topic+".progress", topic+".dead"); err != nil {
		t.Fatal(err)
	}
	st, err := embedded.Open(embedded.Config{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := st.RegisterPartitions(ctx, src, []int32{0}); err != nil {
		t.Fatal(err)
	}
	if err := st.AdvanceWatermark(ctx, src, 0, base.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	ev := func(i int, at time.Time) eventcenter.Event {
		return eventcenter.Event{Source: src, Key: fmt.Sprint(i), Time: at, Pos: eventcenter.Position{Log: 1, Offset: uint64(i)},
			Op: eventcenter.OpInsert, After: eventcenter.Row{"n": int64(i)}}
	}
	produce := func(evs ...eventcenter.Event) {
		t.Helper()
		for i := range evs {
			if err := pc.ProduceSync(ctx, wireRecord(t, topic, wire.Binary, &evs[i])).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	var mu sync.Mutex
	var heard []ingest.Late
	run := func(group string, until eventcenter.Event) {
		t.Helper()
		stop := startIngester(t, ctx, ingest.Config{Brokers: brokers, Sources: reg, Store: st, Group: group,
			ProgressTopic: topic + ".progress", DeadLetterTopic: topic + ".dead", MarkInterval: 50 * time.Millisecond,
			OnLate: func(_ context.Context, late []ingest.Late) {
				mu.Lock()
				heard = append(heard, late...)
				mu.Unlock()
			}})
		defer stop()
		waitFor(t, "event "+until.Key, 30*time.Second, func() bool {
			_, err := st.AsOf(ctx, eventcenter.AsOf{Source: src, Key: until.Key, Time: until.Time})
			return err == nil
		})
	}
	noted := func(e eventcenter.Event) (ingest.Late, bool) {
		t.Helper()
		l, ok, err := ingest.LateOf(ctx, st, e.ID())
		if err != nil {
			t.Fatal(err)
		}
		return l, ok
	}

	onTime, late := ev(1, base.Add(2*time.Minute)), ev(2, base.Add(30*time.Second))
	produce(onTime, late)
	run(topic+".g1", late)
	if l, ok := noted(late); !ok || !l.Watermark.Equal(base.Add(time.Minute)) || l.Behind() != 30*time.Second {
		t.Errorf("late event: note %+v (%v), want watermark %v, 30s behind", l, ok, base.Add(time.Minute))
	}
	if l, ok := noted(onTime); ok {
		t.Errorf("event ahead of the watermark noted late: %+v", l)
	}
	mu.Lock()
	if len(heard) != 1 || !sameID(heard[0].Event, late.ID()) {
		t.Errorf("OnLate heard %+v, want the late event only", heard)
	}
	heard = nil
	mu.Unlock()

	// The watermark passes everything; another group stores the topic
	// again, then one new late event.
	if err := st.AdvanceWatermark(ctx, src, 0, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	again := ev(3, base.Add(10*time.Minute))
	produce(again)
	run(topic+".g2", again)
	if l, ok := noted(onTime); ok {
		t.Errorf("event stored on time noted late when consumed again: %+v", l)
	}
	if l, ok := noted(late); !ok || !l.Watermark.Equal(base.Add(time.Minute)) {
		t.Errorf("late event's note %+v (%v) changed when consumed again", l, ok)
	}
	if l, ok := noted(again); !ok || !l.Watermark.Equal(base.Add(time.Hour)) {
		t.Errorf("new late event: note %+v (%v), want watermark %v", l, ok, base.Add(time.Hour))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(heard) != 1 || !sameID(heard[0].Event, again.ID()) {
		t.Errorf("OnLate heard %+v the second time, want the new late event only", heard)
	}
}

func sameID(a, b eventcenter.ID) bool {
	return a.Source == b.Source && a.Key == b.Key && a.Time.Equal(b.Time) && a.Pos == b.Pos
}
