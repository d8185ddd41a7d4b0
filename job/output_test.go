package job_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/job"
)

// Record IDs are stored (the feature store's record identity, sinks'
// keys): the same job and trigger must give the same ID in every release.
// The IDs below were computed by the first implementation.
func TestRecordIDStable(t *testing.T) {
	at := time.Date(2026, 6, 1, 12, 30, 0, 123456789, time.UTC)
	for _, c := range []struct {
		job  string
		t    eventcenter.ID
		want string
	}{
		{"risk.score", eventcenter.ID{Source: "mysql.loan.applications", Key: "a-42", Time: at, Pos: eventcenter.Position{Log: 7, Offset: 1 << 40}}, "e1d8976150c079142fdb4410fcd3b161"},
		{"", eventcenter.ID{}, "5b6981a1b5fb658740f69d760bc752e3"},
		{strings.Repeat("j", 300), eventcenter.ID{Source: "s", Key: strings.Repeat("k", 70000), Time: at}, "8fa8d8e106fa1a8e30af6c12aa66989e"},
	} {
		if got := job.RecordID(c.job, c.t); got != c.want {
			t.Errorf("RecordID(%.20q, %.40v) = %s, want %s", c.job, c.t, got, c.want)
		}
	}
}

func BenchmarkRecordID(b *testing.B) {
	id := eventcenter.ID{Source: "mysql.loan.applications", Key: "a-000042", Time: time.Date(2026, 6, 1, 12, 30, 0, 0, time.UTC), Pos: eventcenter.Position{Log: 7, Offset: 42}}
	b.ReportAllocs()
	for b.Loop() {
		_ = job.RecordID("risk.score", id)
	}
}

// Env.NoRecordIDs leaves an OK run's record unnamed, and only that.
func TestNoRecordIDs(t *testing.T) {
	st := openStore(t)
	trig := trigger("a1", t0, 1)
	j := job.MustNew("named", func(c *job.Context) (eventcenter.Row, error) { return eventcenter.Row{"ok": true}, nil }, job.Trigger(trig.Source))
	for _, unnamed := range []bool{false, true} {
		res, err := job.Evaluate(context.Background(), j, trig, &job.Env{Store: st, NoRecordIDs: unnamed})
		if err != nil || res.Record == nil {
			t.Fatalf("NoRecordIDs %v: %+v %v", unnamed, res, err)
		}
		want := job.RecordID("named", trig.ID())
		if unnamed {
			want = ""
		}
		if res.Record.ID != want || res.Record.Features["ok"] != true || res.Record.Entity != "a1" {
			t.Errorf("NoRecordIDs %v: record %+v, want ID %q", unnamed, res.Record, want)
		}
	}
}

// WriteOutputs refuses a batch with an unnamed record, before any output
// sees it: outputs absorb repeats by ID, and would merge such records.
func TestWriteOutputsRefusesUnnamedRecords(t *testing.T) {
	var got countingOutput
	recs := []job.Record{{ID: "a", Job: "j"}, {Job: "j", Trigger: eventcenter.ID{Source: "s", Key: "k2"}}}
	err := job.WriteOutputs(context.Background(), []job.Output{&got}, nil, recs)
	if !errors.Is(err, job.ErrOutput) || !errors.Is(err, job.ErrUnnamedRecord) || !strings.Contains(err.Error(), "record 2 of 2 (trigger s k2) has no ID") || got.n != 0 {
		t.Fatalf("%v; %d records written", err, got.n)
	}
	if err := job.WriteOutputs(context.Background(), []job.Output{&got}, nil, recs[:1]); err != nil || got.n != 1 {
		t.Fatalf("%v; %d records written", err, got.n)
	}
}

type countingOutput struct{ n int }

func (o *countingOutput) Name() string { return "counting" }
func (o *countingOutput) Write(_ context.Context, recs []job.Record) error {
	o.n += len(recs)
	return nil
}

// A training-set record's Sample fields are written among its features in
// the JSON form (and read back there), without changing its Features; a
// record without features writes {}.
func TestRecordJSONSample(t *testing.T) {
	at := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	features := eventcenter.Row{"bal": 1.5}
	rec := job.Record{ID: "r-1", Job: "training", JobVersion: "1", Entity: "acct-1",
		Trigger: eventcenter.ID{Source: "s", Key: "acct-1", Time: at}, Features: features,
		Sample: []job.Field{{Name: "_sample.label", Value: int64(1)}, {Name: "_sample.note", Value: nil}}}
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"features":{"_sample.label":1,"_sample.note":null,"bal":1.5}`; !strings.Contains(string(b), want) {
		t.Fatalf("JSON %s: want %s", b, want)
	}
	if len(features) != 1 {
		t.Fatalf("the record's features became %v", features)
	}
	var back job.Record
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Features["_sample.label"] != float64(1) || back.Features["bal"] != 1.5 || back.Sample != nil {
		t.Fatalf("read back %+v", back)
	}
	rec.Features, rec.Sample = nil, nil
	if b, err = json.Marshal(rec); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"features":{}`) {
		t.Fatalf("JSON %s: want features {}", b)
	}
}
