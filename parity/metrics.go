package parity

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the Prometheus metrics of parity runs.
type Metrics struct {
	// Triggers: triggers compared, by job.
	Triggers *prometheus.CounterVec
	// Differences: triggers whose live output differs, by job and cause.
	Differences *prometheus.CounterVec
}

// NewMetrics makes the metrics and registers them with reg (if not nil):
// tidemark_parity_triggers_total{job} and
// tidemark_parity_differences_total{job,cause}.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Triggers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tidemark_parity_triggers_total", Help: "Triggers whose live output a parity run compared.",
		}, []string{"job"}),
		Differences: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tidemark_parity_differences_total", Help: "Live outputs that differ from the re-evaluation, by cause.",
		}, []string{"job", "cause"}),
	}
	if reg != nil {
		reg.MustRegister(m.Triggers, m.Differences)
	}
	return m
}

// Observe adds a report's counts.
func (m *Metrics) Observe(r *Report) {
	m.Triggers.WithLabelValues(r.Job).Add(float64(r.Triggers))
	for c, n := range r.Counts {
		m.Differences.WithLabelValues(r.Job, string(c)).Add(float64(n))
	}
}
