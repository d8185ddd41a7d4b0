package ingest

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the ingest's Prometheus metrics.
//
//	tidemark_ingest_records_total{topic}                  records consumed
//	tidemark_ingest_events_stored_total{source}           events appended (re-appended duplicates included)
//	tidemark_ingest_dead_letters_total{topic,reason}      records sent to the dead-letter topic
//	tidemark_ingest_lag_records{topic,partition}          high watermark minus the stored offset
//	tidemark_ingest_watermark_delay_seconds{source}       now minus the source's watermark
//	tidemark_ingest_watermark_seconds{source,partition}   a partition's watermark (Unix seconds)
//	tidemark_ingest_append_seconds                        time of one Append of a batch
//	tidemark_ingest_batch_records                         records per polled batch
type Metrics struct {
	Records        *prometheus.CounterVec
	Stored         *prometheus.CounterVec
	DeadLetters    *prometheus.CounterVec
	Lag            *prometheus.GaugeVec
	WatermarkDelay *prometheus.GaugeVec
	Watermark      *prometheus.GaugeVec
	AppendSeconds  prometheus.Histogram
	BatchRecords   prometheus.Histogram
}

// NewMetrics creates the metrics and registers them with reg (if not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tidemark_ingest_records_total", Help: "Kafka records consumed by ingest.",
		}, []string{"topic"}),
		Stored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tidemark_ingest_events_stored_total", Help: "Events appended to the event center (duplicates the store absorbs included).",
		}, []string{"source"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tidemark_ingest_dead_letters_total", Help: "Records sent to the dead-letter topic, by reason.",
		}, []string{"topic", "reason"}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tidemark_ingest_lag_records", Help: "Records of a partition not yet stored (high watermark minus stored offset).",
		}, []string{"topic", "partition"}),
		WatermarkDelay: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tidemark_ingest_watermark_delay_seconds", Help: "Now minus the source's watermark.",
		}, []string{"source"}),
		Watermark: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tidemark_ingest_watermark_seconds", Help: "A partition's watermark, in Unix seconds.",
		}, []string{"source", "partition"}),
		AppendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tidemark_ingest_append_seconds", Help: "Duration of one Append of a polled batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		BatchRecords: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tidemark_ingest_batch_records", Help: "Records per polled batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Records, m.Stored, m.DeadLetters, m.Lag, m.WatermarkDelay, m.Watermark, m.AppendSeconds, m.BatchRecords)
	}
	return m
}
