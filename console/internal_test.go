package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/auth"
	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/workflows"
)

// TestKafkaReader: a group's lag on its topics, a group that does not
// exist, the latest records of a topic and of a topic that does not exist,
// against an in-process broker.
func TestKafkaReader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const topic = "console.reader"
	kafka, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer kafka.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.ListenAddrs()...), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	base := time.Now().Add(-time.Minute).Truncate(time.Second)
	for i := range 5 {
		r := &kgo.Record{Partition: int32(i % 2), Value: fmt.Appendf(nil, "%d", i), Timestamp: base.Add(time.Duration(i) * time.Second)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// Partition 0 holds 0, 2, 4 and partition 1 holds 1, 3: the group
	// committed one record of each.
	offsets := kadm.Offsets{topic: {0: {Topic: topic, Partition: 0, At: 1, LeaderEpoch: -1}, 1: {Topic: topic, Partition: 1, At: 1, LeaderEpoch: -1}}}
	if err := kadm.NewClient(cl).CommitAllOffsets(ctx, "g", offsets); err != nil {
		t.Fatal(err)
	}

	k, err := newKafkaReader(kafka.ListenAddrs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer k.close()
	if lag, err := k.lag(ctx, "g", []string{topic}); err != nil || lag != 3 {
		t.Errorf("lag of g: %d, %v; want 3", lag, err)
	}
	if lag, err := k.lag(ctx, "g", []string{"another"}); err != nil || lag != 0 {
		t.Errorf("lag of g on a topic it does not read: %d, %v; want 0", lag, err)
	}
	if _, err := k.lag(ctx, "none", []string{topic}); !errors.Is(err, errNoGroup) {
		t.Errorf("lag of a group that does not exist: %v, want errNoGroup", err)
	}
	recs, more, err := k.tail(ctx, topic, time.Time{}, 2)
	var got []string
	for _, r := range recs {
		got = append(got, string(r.Value))
	}
	if err != nil || !more || fmt.Sprint(got) != "[4 3 2 1]" {
		t.Errorf("tail of 2 per partition: %v, more %v, %v; want [4 3 2 1], more", got, more, err)
	}
	recs, more, err = k.tail(ctx, topic, base.Add(2*time.Second), 10)
	got = nil
	for _, r := range recs {
		got = append(got, string(r.Value))
	}
	if err != nil || more || fmt.Sprint(got) != "[4 3 2]" {
		t.Errorf("tail since the third record: %v, more %v, %v; want [4 3 2]", got, more, err)
	}
	if recs, _, err := k.tail(ctx, "missing", time.Time{}, 10); err != nil || len(recs) != 0 {
		t.Errorf("tail of a missing topic: %d records, %v; want none", len(recs), err)
	}
}

// TestWorkflowLink: a workflow's page in the Temporal UI, its ID escaped as
// one path segment (a re-backfill's ID holds slashes).
func TestWorkflowLink(t *testing.T) {
	c := &Console{cfg: Config{TemporalUI: "http://127.0.0.1:8233/", Namespace: "default"}}
	want := "http://127.0.0.1:8233/namespaces/default/workflows/correction-2%2Frebackfill%2Fcredit-features/run-1"
	if got := c.workflowLink("correction-2/rebackfill/credit-features", "run-1"); got != want {
		t.Errorf("link %s, want %s", got, want)
	}
	if got := (&Console{}).workflowLink("w", "r"); got != "" {
		t.Errorf("link without a Temporal UI: %q, want none", got)
	}
}

// TestTemplateLinks: the drift page links a run and its re-backfills to
// their workflows in the Temporal UI, the jobs page a backfill, when
// there are links (the browser test's dev stack runs no UI).
func TestTemplateLinks(t *testing.T) {
	c, err := New(Config{Store: nopStore{}, Auth: nopAuth{}, API: http.NotFoundHandler(), TemporalUI: "http://ui.example"})
	if err != nil {
		t.Fatal(err)
	}
	run := &driftRun{ID: "correction-2"}
	reb := c.workflowLink("correction-2/rebackfill/j", "r2")
	for _, tc := range []struct {
		page  string
		data  any
		links []string
	}{
		{"drift", driftData{Run: run, RunLink: c.workflowLink("correction-2", "r1"),
			Rebackfills: []rebackfillRow{{Rebackfill: workflows.Rebackfill{Job: "j", ID: "correction-2/rebackfill/j"}, Status: "running", Link: reb}}},
			[]string{c.workflowLink("correction-2", "r1"), reb}},
		{"jobs", jobsData{Temporal: true, Backfills: []backfill{{ID: "b", RunID: "r3", Link: c.workflowLink("b", "r3")}}},
			[]string{c.workflowLink("b", "r3")}},
	} {
		var b strings.Builder
		if err := c.pages[tc.page].Execute(&b, view{Title: tc.page, Nav: tc.page, Who: &auth.Principal{ID: "p"}, Data: tc.data}); err != nil {
			t.Fatal(err)
		}
		for _, l := range tc.links {
			if !strings.Contains(b.String(), `<a href="`+l+`">`) {
				t.Errorf("the %s page has no link to %s:\n%s", tc.page, l, b.String())
			}
		}
	}
}

// nopStore and nopAuth fill a Config whose pages are rendered directly.
type (
	nopStore struct{ eventcenter.Store }
	nopAuth  struct{}
)

func (nopAuth) Authenticate(context.Context, string) (auth.Principal, error) {
	return auth.Principal{}, auth.ErrBadToken
}
