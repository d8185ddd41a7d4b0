package cdc

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the CDC's Prometheus metrics.
//
//	tidemark_cdc_row_changes_total{source}   row changes published
//	tidemark_cdc_binlog_delay_seconds        now minus the commit time of the last transaction read (0 when idle)
//	tidemark_cdc_unacked_records             records sent, not yet acknowledged by Kafka
//	tidemark_cdc_checkpoints_total           checkpoints written
//	tidemark_cdc_ddl_total                   DDL statements read
type Metrics struct {
	RowChanges  *prometheus.CounterVec
	BinlogDelay prometheus.Gauge
	Unacked     prometheus.Gauge
	Checkpoints prometheus.Counter
	DDL         prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg (if not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		RowChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tidemark_cdc_row_changes_total", Help: "Row changes published to Kafka.",
		}, []string{"source"}),
		BinlogDelay: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tidemark_cdc_binlog_delay_seconds", Help: "Now minus the commit time of the last transaction read; 0 when the server is idle.",
		}),
		Unacked: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tidemark_cdc_unacked_records", Help: "Records sent to Kafka and not yet acknowledged.",
		}),
		Checkpoints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tidemark_cdc_checkpoints_total", Help: "Checkpoints written.",
		}),
		DDL: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tidemark_cdc_ddl_total", Help: "DDL statements read from the binlog.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.RowChanges, m.BinlogDelay, m.Unacked, m.Checkpoints, m.DDL)
	}
	return m
}
