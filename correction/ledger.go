package correction

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// LedgerSource is the event source of the drift ledger: one event per run
// and corrected (or skipped) source, so the ledger has history like every
// other source and is read with the same queries.
const LedgerSource = "tidemark.drift"

// Entry is one run's record for one source: what it compared and found,
// or why it skipped the source.
type Entry struct {
	Run     string    `json:"run"`     // the run's id (the workflow id)
	Source  string    `json:"source"`  // the corrected source
	Started time.Time `json:"started"` // when the run started: the event's time
	Drift
	Chunks  int    `json:"chunks"`
	Skipped string `json:"skipped,omitempty"` // why the source was not corrected; empty if it was
	// Objects are the archive objects of the source's snapshot (S3 keys),
	// the first MaxLedgerObjects of them (see AddObject); none when the
	// run archives nothing. Archived counts them all; they share one
	// folder (ArchiveFolder).
	Objects  []string `json:"objects,omitempty"`
	Archived int      `json:"archived,omitempty"`
}

// MaxLedgerObjects bounds the archive objects an entry lists, as
// examples: a run archives one object per chunk, all in one folder
// (ArchiveFolder), and the entries of a run of many sources must stay
// small enough to be a workflow's state and one activity's input.
const MaxLedgerObjects = 10

// AddObject counts an archive object of the entry, and lists it if fewer
// than MaxLedgerObjects are.
func (e *Entry) AddObject(name string) {
	e.Archived++
	if len(e.Objects) < MaxLedgerObjects {
		e.Objects = append(e.Objects, name)
	}
}

// ArchiveFolder is the folder of the entry's archive objects
// (snapshots/<source>/<date>/<time>/: the run's), "" if it has none.
func (e *Entry) ArchiveFolder() string {
	if len(e.Objects) == 0 {
		return ""
	}
	return path.Dir(e.Objects[0]) + "/"
}

// Event is the entry as a ledger event: key the source, time the run's
// start, so History of a source's key lists its runs and AsOf gives the
// last one. Appending an entry twice (a retried run) stores it once.
func (e *Entry) Event() (eventcenter.Event, error) {
	cols, err := json.Marshal(e.Columns)
	if err != nil {
		return eventcenter.Event{}, err
	}
	keys, err := json.Marshal(e.Keys)
	if err != nil {
		return eventcenter.Event{}, err
	}
	objects, err := json.Marshal(e.Objects)
	if err != nil {
		return eventcenter.Event{}, err
	}
	return eventcenter.Event{
		Source: LedgerSource, Key: e.Source, Time: e.Started, Op: eventcenter.OpMessage,
		After: eventcenter.Row{
			"run": e.Run, "source": e.Source, "started": e.Started,
			"compared": int64(e.Compared), "missing": int64(e.Missing), "extra": int64(e.Extra), "different": int64(e.Different),
			"corrections": int64(e.Corrections), "snapshots": int64(e.Snapshots), "chunks": int64(e.Chunks),
			"columns": string(cols), "keys": string(keys), "skipped": e.Skipped, "objects": string(objects), "archived": int64(e.Archived),
		},
	}, nil
}

// EntryFromEvent reads an entry back from its ledger event.
func EntryFromEvent(ev eventcenter.Event) (Entry, error) {
	r := ev.After
	e := Entry{Source: ev.Key, Started: ev.Time}
	str := func(k string) string { s, _ := r[k].(string); return s }
	num := func(k string) int { n, _ := r[k].(int64); return int(n) }
	e.Run, e.Skipped = str("run"), str("skipped")
	e.Compared, e.Missing, e.Extra, e.Different = num("compared"), num("missing"), num("extra"), num("different")
	e.Corrections, e.Snapshots, e.Chunks = num("corrections"), num("snapshots"), num("chunks")
	for k, dst := range map[string]any{"columns": &e.Columns, "keys": &e.Keys, "objects": &e.Objects} {
		if s := str(k); s != "" && s != "null" {
			if err := json.Unmarshal([]byte(s), dst); err != nil {
				return e, fmt.Errorf("correction: ledger entry %s/%s: %s: %w", e.Run, e.Source, k, err)
			}
		}
	}
	if e.Archived = num("archived"); e.Archived == 0 {
		e.Archived = len(e.Objects) // written before Archived
	}
	return e, nil
}

// WriteLedger appends the entries to the event center.
func WriteLedger(ctx context.Context, st eventcenter.Appender, entries []Entry) error {
	evs := make([]eventcenter.Event, 0, len(entries))
	for i := range entries {
		ev, err := entries[i].Event()
		if err != nil {
			return err
		}
		evs = append(evs, ev)
	}
	if len(evs) == 0 {
		return nil
	}
	if err := st.Append(ctx, evs); err != nil {
		return fmt.Errorf("correction: writing the drift ledger: %w", err)
	}
	return nil
}

// LedgerQuery selects ledger entries: of one run (Run), or of one source
// (Source, empty for all) from Since on. Since defaults to the beginning.
type LedgerQuery struct {
	Run    string
	Source string
	Since  time.Time
}

// ReadLedger returns the entries q selects, oldest first.
func ReadLedger(ctx context.Context, st eventcenter.Store, q LedgerQuery) ([]Entry, error) {
	from := q.Since
	if from.IsZero() {
		from = eventcenter.MinTime
	}
	var evs []eventcenter.Event
	if q.Source != "" && q.Run == "" {
		h, err := st.History(ctx, eventcenter.HistoryQuery{Source: LedgerSource, Key: q.Source, From: from, To: eventcenter.AllTime.To})
		if err != nil {
			return nil, fmt.Errorf("correction: reading the drift ledger: %w", err)
		}
		evs = h
	} else {
		for ev, err := range st.Replay(ctx, eventcenter.ReplayQuery{Sources: []string{LedgerSource}, From: from, To: eventcenter.AllTime.To}) {
			if err != nil {
				return nil, fmt.Errorf("correction: reading the drift ledger: %w", err)
			}
			evs = append(evs, ev)
		}
	}
	var out []Entry
	for _, ev := range evs {
		e, err := EntryFromEvent(ev)
		if err != nil {
			return nil, err
		}
		if q.Run != "" && e.Run != q.Run || q.Source != "" && e.Source != q.Source {
			continue
		}
		out = append(out, e)
	}
	slices.SortStableFunc(out, func(a, b Entry) int { return a.Started.Compare(b.Started) })
	return out, nil
}

// Metrics export the last run's drift per source.
//
//	tidemark_drift_rows{source,kind}   keys found drifted (kind missing, extra, different) and compared (kind compared) by the last run
type Metrics struct {
	Rows *prometheus.GaugeVec
}

// NewMetrics creates the metrics and registers them with reg (if not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{Rows: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tidemark_drift_rows", Help: "Rows the last correction run found drifted, by kind (missing, extra, different), and rows it compared (kind compared).",
	}, []string{"source", "kind"})}
	if reg != nil {
		reg.MustRegister(m.Rows)
	}
	return m
}

// Observe sets the gauges of the entry's source. A nil *Metrics ignores it.
func (m *Metrics) Observe(e Entry) {
	if m == nil || e.Skipped != "" {
		return
	}
	m.Rows.WithLabelValues(e.Source, KindMissing).Set(float64(e.Missing))
	m.Rows.WithLabelValues(e.Source, KindExtra).Set(float64(e.Extra))
	m.Rows.WithLabelValues(e.Source, KindDifferent).Set(float64(e.Different))
	m.Rows.WithLabelValues(e.Source, "compared").Set(float64(e.Compared))
}
