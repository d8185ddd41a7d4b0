// Package source is the registry of the sources whose changes reach the
// event center, and the small pieces every producer and the ingest share.
//
// A [Config] lists sources, loaded from a YAML or JSON file with [Load]:
//
//	sources:
//	  - name: mysql.loan.orders          # one MySQL table
//	    kind: mysql
//	    mysql: {database: loan, table: orders}
//	    indexes: [{name: user_id, column: user_id}]
//	  - name: mysql.loan.{table}         # a pattern: one source per matching table
//	    kind: mysql
//	    mysql: {database: loan, table: "repay_*"}
//	  - name: mq.loan.applications       # a RabbitMQ queue, forwarded
//	    kind: rabbitmq
//	    rabbitmq: {queue: loan.applications}
//	  - name: api.score                  # POST /v1/messages/api.score
//	    kind: http
//	  - name: kafka.risk.clicks          # a topic written by other systems
//	    kind: kafka
//	    topic: risk.clicks
//	    kafka: {format: json, lateness: 5s}
//
// Every source travels through one Kafka topic ([Source.Topic], derived from
// the name unless set). Records of kinds mysql, rabbitmq and http are in the
// wire format (package wire) and are written by our producers (cdc, forward);
// records of kind kafka are written by other systems and ingest turns each
// into an event (see [KafkaOptions.Format]).
//
// Entity keys: a row's key is its primary key, made text by [RowKey] (one
// column: the value's index text; several: each quoted, comma separated), so
// the CDC, the nightly snapshot and readers build the same key.
//
// Progress: producers that know how far they are publish [Progress] reports
// on the deployment's progress topic ([DefaultProgressTopic] unless
// configured); ingest uses them to move watermarks of partitions and
// sources that are idle (see package ingest).
package source
