package app

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
)

// temporalMetrics is the Temporal SDK's metrics handler on a Prometheus
// registry: counters, gauges and timers (histograms in seconds) under the
// SDK's names, its tags as labels.
//
// A Prometheus metric has one set of label names; the SDK may tag one
// metric differently in different places. The first use of a name fixes
// its labels: a later use leaves the labels it lacks empty and drops the
// tags the metric does not have.
type temporalMetrics struct {
	m    *promVecs
	tags map[string]string
}

var _ client.MetricsHandler = temporalMetrics{}

// newTemporalMetrics returns the handler registering into reg.
func newTemporalMetrics(reg prometheus.Registerer) client.MetricsHandler {
	return temporalMetrics{m: &promVecs{reg: reg, vecs: map[string]promVec{}}}
}

func (h temporalMetrics) WithTags(tags map[string]string) client.MetricsHandler {
	all := maps.Clone(h.tags)
	if all == nil {
		all = map[string]string{}
	}
	maps.Copy(all, tags)
	return temporalMetrics{m: h.m, tags: all}
}

func (h temporalMetrics) Counter(name string) client.MetricsCounter {
	v, labels := h.m.get(name, h.tags, func(o prometheus.Opts, l []string) prometheus.Collector {
		return prometheus.NewCounterVec(prometheus.CounterOpts(o), l)
	})
	c, ok := v.(*prometheus.CounterVec)
	if !ok {
		return client.MetricsNopHandler.Counter(name)
	}
	counter := c.With(labels)
	return counterFunc(func(d int64) { counter.Add(float64(d)) })
}

func (h temporalMetrics) Gauge(name string) client.MetricsGauge {
	v, labels := h.m.get(name, h.tags, func(o prometheus.Opts, l []string) prometheus.Collector {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts(o), l)
	})
	g, ok := v.(*prometheus.GaugeVec)
	if !ok {
		return client.MetricsNopHandler.Gauge(name)
	}
	gauge := g.With(labels)
	return gaugeFunc(gauge.Set)
}

func (h temporalMetrics) Timer(name string) client.MetricsTimer {
	v, labels := h.m.get(name, h.tags, func(o prometheus.Opts, l []string) prometheus.Collector {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: o.Name, Help: o.Help}, l)
	})
	hv, ok := v.(*prometheus.HistogramVec)
	if !ok {
		return client.MetricsNopHandler.Timer(name)
	}
	obs := hv.With(labels)
	return timerFunc(func(d time.Duration) { obs.Observe(d.Seconds()) })
}

// promVecs are the metric vectors of a temporalMetrics, by name.
type promVecs struct {
	reg  prometheus.Registerer
	mu   sync.Mutex
	vecs map[string]promVec
}

type promVec struct {
	c      prometheus.Collector
	labels []string
}

// get returns the vector of name (made by mk and registered at its first
// use, with the label names of tags) and the labels of tags for it. A
// vector that cannot register (a name the SDK uses for two kinds) is nil.
func (p *promVecs) get(name string, tags map[string]string, mk func(prometheus.Opts, []string) prometheus.Collector) (prometheus.Collector, prometheus.Labels) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.vecs[name]
	if !ok {
		v.labels = slices.Sorted(maps.Keys(tags))
		v.c = mk(prometheus.Opts{Name: name, Help: "Temporal SDK metric " + name + "."}, v.labels)
		if err := p.reg.Register(v.c); err != nil {
			v.c = nil
		}
		p.vecs[name] = v
	}
	labels := make(prometheus.Labels, len(v.labels))
	for _, l := range v.labels {
		labels[l] = tags[l]
	}
	return v.c, labels
}

type (
	counterFunc func(int64)
	gaugeFunc   func(float64)
	timerFunc   func(time.Duration)
)

func (f counterFunc) Inc(d int64)          { f(d) }
func (f gaugeFunc) Update(v float64)       { f(v) }
func (f timerFunc) Record(d time.Duration) { f(d) }
