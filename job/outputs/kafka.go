package outputs

import (
	"context"
	"encoding/json"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tidemark-dev/tidemark/job"
	"github.com/tidemark-dev/tidemark/wire"
)

// KafkaOutput produces one message per record.
type KafkaOutput struct {
	client *kgo.Client
	topic  string
	codec  wire.Codec // nil: record JSON
	source string
}

var _ job.Output = (*KafkaOutput)(nil)

// KafkaOption configures Kafka.
type KafkaOption func(*KafkaOutput)

// AsEvents makes the messages wire-encoded feature events (see package
// wire; header "tidemark-codec") of source ("" means feature.<job>), which
// the event center's ingest stores like any source: the feature store fed
// through Kafka. Default: the record's JSON (job.Record.MarshalJSON).
func AsEvents(codec wire.Codec, source string) KafkaOption {
	return func(o *KafkaOutput) { o.codec, o.source = codec, source }
}

// Kafka produces records to topic with client (which the caller owns and
// closes). Message key: the entity. Headers: HeaderID, HeaderJob,
// HeaderJobVersion, HeaderParamVersion. Write returns when every message is
// acknowledged; configure the client for idempotent production (the
// franz-go default) so retries inside the client do not duplicate.
func Kafka(client *kgo.Client, topic string, opts ...KafkaOption) *KafkaOutput {
	o := &KafkaOutput{client: client, topic: topic}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

// Name implements job.Output.
func (o *KafkaOutput) Name() string { return "kafka:" + o.topic }

// Write implements job.Output.
func (o *KafkaOutput) Write(ctx context.Context, recs []job.Record) error {
	msgs := make([]*kgo.Record, len(recs))
	for i := range recs {
		r := &recs[i]
		m := &kgo.Record{Topic: o.topic, Key: []byte(r.Entity), Headers: headers(r)}
		var err error
		if o.codec == nil {
			m.Value, err = json.Marshal(r)
		} else {
			src := o.source
			if src == "" {
				src = job.FeatureSource(r.Job)
			}
			e := r.Event(src)
			m.Value, err = o.codec.Append(nil, &e)
			m.Headers = append(m.Headers, kgo.RecordHeader{Key: wire.HeaderCodec, Value: []byte(o.codec.Name())})
		}
		if err != nil {
			return err
		}
		msgs[i] = m
	}
	return o.client.ProduceSync(ctx, msgs...).FirstErr()
}

func headers(r *job.Record) []kgo.RecordHeader {
	return []kgo.RecordHeader{
		{Key: HeaderID, Value: []byte(r.ID)},
		{Key: HeaderJob, Value: []byte(r.Job)},
		{Key: HeaderJobVersion, Value: []byte(r.JobVersion)},
		{Key: HeaderParamVersion, Value: strconv.AppendInt(nil, int64(r.ParamVersion), 10)},
	}
}
