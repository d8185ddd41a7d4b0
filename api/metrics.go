package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the API server's Prometheus metrics.
//
//	tidemark_api_requests_total{route,code}   answers by route (the mux pattern) and status code
//	tidemark_api_request_seconds{route}       time to answer
type Metrics struct {
	Requests *prometheus.CounterVec
	Seconds  *prometheus.HistogramVec
}

// NewMetrics creates the metrics and registers them with reg (if not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tidemark_api_requests_total", Help: "API answers by route and status code.",
		}, []string{"route", "code"}),
		Seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tidemark_api_request_seconds", Help: "Time to answer an API request, by route.",
			Buckets: prometheus.ExponentialBuckets(0.00025, 2, 16),
		}, []string{"route"}),
	}
	if reg != nil {
		reg.MustRegister(m.Requests, m.Seconds)
	}
	return m
}

// statusWriter remembers the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// measured wraps h to count and time its answers under route.
func (m *Metrics) measured(route string, h http.HandlerFunc) http.HandlerFunc {
	if m == nil {
		return h
	}
	seconds := m.Seconds.WithLabelValues(route)
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h(sw, r)
		seconds.Observe(time.Since(start).Seconds())
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		m.Requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
	}
}
