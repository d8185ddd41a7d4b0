package ingest_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/embedded"
	"github.com/tidemark-dev/tidemark/ingest"
	"github.com/tidemark-dev/tidemark/internal/testenv"
	"github.com/tidemark-dev/tidemark/source"
	"github.com/tidemark-dev/tidemark/wire"
)

// stalledStore is the event center as one ingest instance sees it when its
// appends hang (a slow disk, a long GC pause): Append waits until release
// is closed.
type stalledStore struct {
	eventcenter.Store
	release <-chan struct{}
}

func (s stalledStore) Append(ctx context.Context, events []eventcenter.Event) error {
	select {
	case <-s.release:
		return s.Store.Append(ctx, events)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestWatermarkWaitsForLaggingPartition: two ingest instances share a
// topic of three partitions on the real Kafka; the one owning some
// partitions cannot store them. The other stores its partitions and
// advances their watermarks to a producer's claim, but the source's
// watermark stays at the floor: the lagging partitions never reported, and
// their records are not stored. Once they are, the source moves.
func TestWatermarkWaitsForLaggingPartition(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx := t.Context()
	b := make([]byte, 4)
	rand.Read(b)
	id := hex.EncodeToString(b)
	topic, src, group, progress := "ingest-lag-"+id, "mysql.lag_"+id+".orders", "ingest-lag-"+id, "ingest-lag-"+id+".progress"
	reg, err := source.Parse([]byte(fmt.Sprintf(`
sources:
  - name: %s
    kind: mysql
    topic: %s
    mysql: {database: lag_%s, table: orders}
`, src, topic, id)))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := source.EnsureTopics(ctx, pc, 3, topic); err != nil {
		t.Fatal(err)
	}
	if err := source.EnsureTopics(ctx, pc, 1, progress, "tidemark.deadletter"); err != nil {
		t.Fatal(err)
	}
	st, err := embedded.Open(embedded.Config{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	// The lagging instance joins first, then the healthy one; wait until
	// the group has split the partitions between them.
	release := make(chan struct{})
	cfg := func(instance string, store eventcenter.Store) ingest.Config {
		return ingest.Config{Brokers: brokers, Sources: reg, Store: store, Group: group, InstanceID: instance,
			ProgressTopic: progress, MarkInterval: 50 * time.Millisecond}
	}
	stopLagging := startIngester(t, ctx, cfg("lagging", stalledStore{st, release}))
	defer stopLagging()
	waitFor(t, "the lagging instance to own the partitions", 60*time.Second, func() bool {
		return len(assignment(t, pc, group)["lagging"]) == 3
	})
	stopHealthy := startIngester(t, ctx, cfg("healthy", st))
	defer stopHealthy()
	var owned map[string][]int32
	waitFor(t, "the group to split the partitions", 60*time.Second, func() bool {
		owned = assignment(t, pc, group)
		return len(owned["lagging"]) > 0 && len(owned["healthy"]) > 0
	})
	t.Logf("partitions: %v", owned)

	// Ten changes in every partition, and a claim covering them all.
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	rep := source.NewReporter(pc, "test", progress)
	for p := range int32(3) {
		for i := range 10 {
			e := eventcenter.Event{Source: src, Key: fmt.Sprintf("p%d-%d", p, i), Time: base.Add(time.Duration(i) * time.Second),
				Pos: eventcenter.Position{Log: 1, Offset: uint64(p)<<32 | uint64(i)}, Op: eventcenter.OpInsert, After: eventcenter.Row{"n": int64(i)}}
			r := wireRecord(t, topic, wire.Binary, &e)
			r.Partition = p
			if err := pc.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
			rep.Acked(r)
		}
	}
	claim := base.Add(time.Minute)
	if err := rep.Report(ctx, src, topic, claim); err != nil {
		t.Fatal(err)
	}

	// The healthy instance's partitions reach the claim; the lagging
	// ones are registered at the floor and hold the source there.
	waitFor(t, "the healthy partitions' watermarks", 30*time.Second, func() bool {
		marks, err := st.PartitionWatermarks(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range owned["healthy"] {
			if !marks[p].Equal(claim) {
				return false
			}
		}
		return true
	})
	time.Sleep(300 * time.Millisecond) // several mark intervals
	marks, err := st.PartitionWatermarks(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(marks)); !slices.Equal(got, []int32{0, 1, 2}) {
		t.Errorf("partitions with a watermark: %v, want every partition of the topic", got)
	}
	for _, p := range owned["lagging"] {
		if !marks[p].IsZero() {
			t.Errorf("lagging partition %d at %v, want the floor", p, marks[p])
		}
	}
	stored := countEvents(t, st, src)
	wm, err := st.Watermark(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if !wm.IsZero() {
		t.Errorf("source watermark %v with %d of 30 events stored: it passed events of the lagging partitions %v", wm, stored, owned["lagging"])
	}

	// The lagging instance catches up: the source reaches the claim.
	close(release)
	waitFor(t, "the source watermark", 30*time.Second, func() bool {
		wm, err := st.Watermark(ctx, src)
		return err == nil && wm.Equal(claim)
	})
	if n := countEvents(t, st, src); n != 30 {
		t.Errorf("%d events stored, want 30", n)
	}
}

// assignment returns the partitions each static member of the consumer
// group owns, by instance id (nothing while the group is rebalancing).
func assignment(t *testing.T, cl *kgo.Client, group string) map[string][]int32 {
	t.Helper()
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = []string{group}
	resp, err := req.RequestWith(t.Context(), cl)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]int32{}
	for _, g := range resp.Groups {
		if g.State != "Stable" {
			return nil
		}
		for _, m := range g.Members {
			if m.InstanceID == nil {
				continue
			}
			var a kmsg.ConsumerMemberAssignment
			if err := a.ReadFrom(m.MemberAssignment); err != nil {
				t.Fatal(err)
			}
			for _, tp := range a.Topics {
				out[*m.InstanceID] = append(out[*m.InstanceID], tp.Partitions...)
			}
		}
	}
	return out
}
