package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/examples/credit"
	"github.com/tidemark-dev/tidemark/source"
	"github.com/tidemark-dev/tidemark/wire"
)

// Demo produces the credit example's sources to Kafka, as the CDC of a
// loan system would: first a history (profiles, then orders and
// repayments over the past 90 days and applications over the past
// HistorySpan), then live changes, mostly applications, at Rate per second.
type Demo struct {
	// Brokers to produce to. Required.
	Brokers []string
	// Users in the scenario. Default 200.
	Users int
	// HistoryApps applications spread over the HistorySpan before the
	// start. Defaults 5000 and 24h. A store that already holds the
	// scenario (a restart) gets no second history.
	HistoryApps int
	HistorySpan time.Duration
	// Rate of live applications per second. Default 5.
	Rate float64
	// Store, if set, is checked for an earlier history.
	Store eventcenter.Reader
	// Start is the scenario's start: its history ends there. Default: when
	// Run is called.
	Start time.Time
	// Logger. Default slog.Default().
	Logger *slog.Logger

	cl  *kgo.Client
	rep *source.Reporter // progress reports: the demo stands in for the CDC, and reports as it does
	rng *rand.Rand
	log uint64 // Position.Log of this run: its start, so restarts sort after
	seq map[string]uint64
	ids map[string]int
}

func (d *Demo) setDefaults() {
	if d.Users == 0 {
		d.Users = 200
	}
	if d.HistoryApps == 0 {
		d.HistoryApps = 5000
	}
	if d.HistorySpan == 0 {
		d.HistorySpan = 24 * time.Hour
	}
	if d.Rate == 0 {
		d.Rate = 5
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
}

// DemoJob is the job the demo scenario feeds: the credit example's.
const DemoJob = credit.Name

// DemoHTTPSource is the demo's http source: POST /v1/messages/api.requests.
const DemoHTTPSource = "api.requests"

// DemoSources is the source registry of the scenario: the credit example's
// MySQL tables, with the indexes its lookups use, and an http source the
// API's forwarder accepts.
func DemoSources() *source.Config {
	mysql := func(name, db, table string, indexes ...string) source.Source {
		s := source.Source{Name: name, Kind: source.KindMySQL, MySQL: &source.MySQLOptions{Database: db, Table: table}}
		for _, ix := range indexes {
			s.Indexes = append(s.Indexes, source.IndexSpec{Name: ix, Column: ix})
		}
		return s
	}
	c := &source.Config{Sources: []source.Source{
		mysql(credit.Applications, "loan", "applications"),
		mysql(credit.Orders, "loan", "orders", "user_id"),
		mysql(credit.Repayments, "loan", "repayments", "user_id"),
		mysql(credit.Profiles, "user", "profiles"),
		{Name: DemoHTTPSource, Kind: source.KindHTTP},
	}}
	if err := c.Validate(); err != nil { // fills the topics
		panic(err)
	}
	return c
}

func user(u int) string { return fmt.Sprintf("u-%04d", u) }

// Run produces the history (unless the store has it) and then live
// changes until ctx ends.
func (d *Demo) Run(ctx context.Context) error {
	d.setDefaults()
	cl, err := kgo.NewClient(kgo.SeedBrokers(d.Brokers...), kgo.AllowAutoTopicCreation(), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	d.cl = cl
	d.rep = source.NewReporter(cl, "tidemark-demo", "")
	if d.Start.IsZero() {
		d.Start = time.Now()
	}
	start := d.Start.UTC()
	d.rng = rand.New(rand.NewPCG(uint64(start.UnixNano()), 7))
	d.log = uint64(start.Unix())
	d.seq, d.ids = map[string]uint64{}, map[string]int{}

	if !d.Seeded(ctx) {
		if err := d.history(ctx, start); err != nil {
			return err
		}
		d.Logger.Info("demo: history produced", "users", d.Users, "applications", d.HistoryApps, "from", start.Add(-d.HistorySpan))
	} else {
		for _, src := range []string{credit.Applications, credit.Orders, credit.Repayments} {
			d.ids[src] = int(d.log) * 1000 // ids after a restart do not meet earlier ones
		}
	}
	d.report(ctx, start)
	reported := start
	tick := time.NewTicker(time.Duration(float64(time.Second) / d.Rate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			now = now.UTC()
			evs := []eventcenter.Event{d.application(now)}
			if d.rng.IntN(5) == 0 {
				evs = append(evs, d.repayment(now, now))
			}
			if d.rng.IntN(10) == 0 {
				evs = append(evs, d.order(now))
			}
			if err := d.produce(ctx, evs...); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				d.Logger.Warn("demo: produce", "error", err)
				continue
			}
			if now.Sub(reported) >= time.Second { // as often as the CDC reports, not per change
				d.report(ctx, now)
				reported = now
			}
		}
	}
}

func (d *Demo) history(ctx context.Context, start time.Time) error {
	var evs []eventcenter.Event
	from := start.Add(-90 * 24 * time.Hour)
	for u := range d.Users {
		evs = append(evs, d.event(credit.Profiles, user(u), from.Add(-time.Duration(d.rng.IntN(365))*24*time.Hour), eventcenter.OpInsert, eventcenter.Row{
			"id": user(u), "age": int64(20 + d.rng.IntN(45)),
			"monthly_income": eventcenter.Decimal(fmt.Sprintf("%d.00", 3000+d.rng.IntN(30)*500)),
			"kyc_level":      int64(d.rng.IntN(5)),
		}))
	}
	span := start.Sub(from)
	for range d.Users * 2 {
		evs = append(evs, d.order(from.Add(time.Duration(d.rng.Int64N(int64(span))))))
	}
	for range d.Users * 4 {
		at := from.Add(time.Duration(d.rng.Int64N(int64(span))))
		evs = append(evs, d.repayment(at, at))
	}
	for i := range d.HistoryApps {
		evs = append(evs, d.application(d.historyApp(start, i)))
	}
	for len(evs) > 0 {
		n := min(len(evs), 1000)
		if err := d.produce(ctx, evs[:n]...); err != nil {
			return err
		}
		evs = evs[n:]
	}
	return nil
}

// Seeded reports whether Store holds the scenario already (a restart): Run
// then produces no second history.
func (d *Demo) Seeded(ctx context.Context) bool {
	if d.Store == nil {
		return false
	}
	_, err := d.Store.AsOf(ctx, eventcenter.AsOf{Source: credit.Profiles, Key: user(0), Time: time.Now()})
	return err == nil
}

// historyApp is when the history's application i (from 0; its ID is
// i+1) was made.
func (d *Demo) historyApp(start time.Time, i int) time.Time {
	return start.Add(-d.HistorySpan).Add(d.HistorySpan * time.Duration(i) / time.Duration(d.HistoryApps))
}

// SampleRows is how many rows WriteSampleTable writes (fewer for a
// history of fewer applications).
const SampleRows = 500

// WriteSampleTable writes a sample table of the history that Run will
// produce (call it before Run, with Start set) to path as CSV: key, time,
// label — up to SampleRows of the history's applications, each a minute
// after it was made, in random order, with a made-up label ("defaulted",
// 0 or 1), and one application that does not exist (a row without state).
// It is what a model owner would bring to a sample-table backfill: the
// training set is its rows with the job's features.
func (d *Demo) WriteSampleTable(path string) error {
	d.setDefaults()
	if d.Start.IsZero() {
		return errors.New("demo: WriteSampleTable needs Start")
	}
	rng := rand.New(rand.NewPCG(uint64(d.Start.UnixNano()), 11))
	step := max(d.HistoryApps/SampleRows, 1)
	var b strings.Builder
	b.WriteString("key,time,defaulted\n")
	for _, i := range rng.Perm(d.HistoryApps / step) {
		fmt.Fprintf(&b, "app-%d,%s,%d\n", i*step+1, d.historyApp(d.Start.UTC(), i*step).Add(time.Minute).Format(time.RFC3339Nano), rng.IntN(2))
	}
	fmt.Fprintf(&b, "app-0,%s,0\n", d.Start.UTC().Add(-time.Hour).Format(time.RFC3339Nano))
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (d *Demo) event(src, key string, at time.Time, op eventcenter.Op, row eventcenter.Row) eventcenter.Event {
	d.seq[src]++
	return eventcenter.Event{Source: src, Key: key, Time: at.UTC(), Pos: eventcenter.Position{Log: d.log, Offset: d.seq[src]}, Op: op, After: row}
}

func (d *Demo) nextID(src string) int {
	d.ids[src]++
	return d.ids[src]
}

func (d *Demo) application(at time.Time) eventcenter.Event {
	id := d.nextID(credit.Applications)
	return d.event(credit.Applications, fmt.Sprint("app-", id), at, eventcenter.OpInsert, eventcenter.Row{
		"id": int64(id), "user_id": user(d.rng.IntN(d.Users)), "amount": eventcenter.Decimal(fmt.Sprintf("%d.00", 500+d.rng.IntN(40)*500)),
		"term_months": int64(6 * (1 + d.rng.IntN(6))), "created_at": at.UTC(),
	})
}

func (d *Demo) order(at time.Time) eventcenter.Event {
	id := d.nextID(credit.Orders)
	p := 1000 + d.rng.IntN(20)*500
	status := "open"
	if d.rng.IntN(3) == 0 {
		status = "closed"
	}
	return d.event(credit.Orders, fmt.Sprint("o-", id), at, eventcenter.OpInsert, eventcenter.Row{
		"id": int64(id), "user_id": user(d.rng.IntN(d.Users)), "principal": eventcenter.Decimal(fmt.Sprintf("%d.00", p)),
		"outstanding": eventcenter.Decimal(fmt.Sprintf("%d.00", p*d.rng.IntN(100)/100)), "status": status,
	})
}

func (d *Demo) repayment(at, paid time.Time) eventcenter.Event {
	id := d.nextID(credit.Repayments)
	return d.event(credit.Repayments, fmt.Sprint("r-", id), at, eventcenter.OpInsert, eventcenter.Row{
		"id": int64(id), "user_id": user(d.rng.IntN(d.Users)), "order_id": int64(1 + d.rng.IntN(max(1, d.ids[credit.Orders]))),
		"amount": eventcenter.Decimal(fmt.Sprintf("%d.00", 100+d.rng.IntN(20)*50)), "late": d.rng.IntN(8) == 0, "paid_at": paid.UTC(),
	})
}

func (d *Demo) produce(ctx context.Context, evs ...eventcenter.Event) error {
	recs := make([]*kgo.Record, len(evs))
	for i := range evs {
		v, err := wire.JSON.Append(nil, &evs[i])
		if err != nil {
			return err
		}
		recs[i] = &kgo.Record{Topic: source.TopicName(evs[i].Source), Key: []byte(evs[i].Key), Value: v,
			Headers: []kgo.RecordHeader{{Key: wire.HeaderCodec, Value: []byte(wire.JSON.Name())}}}
	}
	res := d.cl.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		return err
	}
	for _, r := range res {
		d.rep.Acked(r.Record)
	}
	return nil
}

// demoSources are the sources the demo writes.
var demoSources = []string{credit.Applications, credit.Orders, credit.Repayments, credit.Profiles}

// report claims, for every source of the demo, that each of its events
// with time <= t is in Kafka: the demo writes in time order (the history
// before the live changes, each live change at its tick's time), so once
// the changes at t are acknowledged nothing at or before t is left. Ingest
// turns the claims into watermarks, idle sources included.
func (d *Demo) report(ctx context.Context, t time.Time) {
	for _, src := range demoSources {
		if err := d.rep.Report(ctx, src, source.TopicName(src), t); err != nil && ctx.Err() == nil {
			d.Logger.Warn("demo: progress report", "source", src, "error", err)
		}
	}
}
