// Package forward brings messages that do not start in Kafka into Kafka:
// calls of the HTTP endpoint POST /v1/messages/{source} ([Forwarder.Handler])
// and the queues of RabbitMQ sources ([Forwarder.ConsumeRabbitMQ]). Both
// write one wire-format record per message to the source's topic (record
// key = message id), and both hand a message over only once Kafka
// acknowledged it: the HTTP call is answered with the message id and its
// Kafka position, the RabbitMQ message is acknowledged to RabbitMQ.
//
// A message event has Op message, Key the message id, Time its arrival (or
// the RabbitMQ timestamp property) and After the message's JSON object as a
// row (source.RowFromJSON). Events of http sources get their Kafka position
// at ingest; RabbitMQ events keep position 0:0, so their identity is
// (source, message-id, timestamp).
//
// [Forwarder.Run] publishes progress reports (source.Progress) for the
// forwarded sources, which ingest turns into watermarks; several forwarder
// processes may serve one source, each reporting under its own producer id.
package forward
