// Package topology holds TestProductionTopology: tidemark deployed as in
// production, every part its own OS process on the harness's real services
// (MariaDB, RabbitMQ, Kafka, HBase, S3) and a Temporal server run by the
// stock `temporal` CLI. The package has no code of its own; see
// topology_test.go.
package topology
