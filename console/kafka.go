package console

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// errNoGroup: the consumer group does not exist (no worker ever committed).
var errNoGroup = errors.New("no consumer group")

// kafkaReader reads what the pages show of Kafka: a consumer group's lag
// and the latest records of a dead-letter topic, over one client whose
// connections stay open between pages (it fetches records with plain Fetch
// requests: no consumer to start per read). The caller bounds every read
// with a short deadline (Config.KafkaTimeout): a slow or unreachable broker
// fails the read with the context's error, which the page shows as
// unknown.
type kafkaReader struct {
	cl  *kgo.Client
	adm *kadm.Client
}

// newKafkaReader returns a reader of the brokers; it dials when first used.
func newKafkaReader(brokers []string, opts []kgo.Opt) (*kafkaReader, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("console: kafka client: %w", err)
	}
	return &kafkaReader{cl: cl, adm: kadm.NewClient(cl)}, nil
}

func (k *kafkaReader) close() { k.cl.Close() }

// lag returns how many records of topics the consumer group has not
// committed yet, summed over their partitions; errNoGroup if the group
// does not exist.
func (k *kafkaReader) lag(ctx context.Context, group string, topics []string) (int64, error) {
	byTopic, err := k.lagByTopic(ctx, group)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, t := range topics {
		total += byTopic[t]
	}
	return total, nil
}

// lagByTopic returns the consumer group's lag on each topic it consumes
// (summed over the topic's partitions); errNoGroup if the group does not
// exist.
func (k *kafkaReader) lagByTopic(ctx context.Context, group string) (map[string]int64, error) {
	lags, err := k.adm.Lag(ctx, group)
	if err != nil {
		return nil, err
	}
	l, ok := lags[group]
	if !ok || errors.Is(l.Error(), kerr.GroupIDNotFound) {
		return nil, errNoGroup
	}
	if err := l.Error(); err != nil {
		return nil, err
	}
	if l.State == "Dead" || len(l.Lag) == 0 {
		return nil, errNoGroup
	}
	byTopic := map[string]int64{}
	for topic, parts := range l.Lag {
		for _, p := range parts {
			if p.Err != nil {
				return nil, fmt.Errorf("partition %d of %s: %w", p.Partition, topic, p.Err)
			}
			byTopic[topic] += max(p.Lag, 0)
		}
	}
	return byTopic, nil
}

// tail returns the records of topic written since (by their timestamps;
// all of them for a zero since), at most limit per partition, newest
// first; more reports that some partition had more. A topic that does not
// exist has none.
func (k *kafkaReader) tail(ctx context.Context, topic string, since time.Time, limit int64) (recs []*kgo.Record, more bool, err error) {
	ends, err := k.adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var afters kadm.ListedOffsets
	if since.IsZero() {
		afters, err = k.adm.ListStartOffsets(ctx, topic)
	} else {
		afters, err = k.adm.ListOffsetsAfterMilli(ctx, since.UnixMilli(), topic)
	}
	if err == nil {
		err = afters.Error()
	}
	if err != nil {
		return nil, false, err
	}
	type span struct {
		partition  int32
		first, end int64 // offsets: the first to read, the end (excluded)
	}
	var spans []span
	for _, end := range ends[topic] {
		first := end.Offset
		if a, ok := afters.Lookup(topic, end.Partition); ok {
			first = a.Offset
		}
		if end.Offset-first > limit {
			first, more = end.Offset-limit, true
		}
		if first < end.Offset {
			spans = append(spans, span{end.Partition, first, end.Offset})
		}
	}
	if len(spans) == 0 {
		return nil, more, nil
	}
	meta, err := k.adm.Metadata(ctx, topic) // the leaders
	if err != nil {
		return nil, false, err
	}
	detail, ok := meta.Topics[topic]
	if !ok || detail.Err != nil {
		return nil, false, fmt.Errorf("metadata of %s: %v", topic, detail.Err)
	}
	for _, sp := range spans {
		p, ok := detail.Partitions[sp.partition]
		if !ok || p.Leader < 0 {
			return nil, false, fmt.Errorf("partition %d of %s has no leader", sp.partition, topic)
		}
		got, err := k.fetch(ctx, p, detail.ID, sp.first, sp.end)
		if err != nil {
			return nil, false, err
		}
		recs = append(recs, got...)
	}
	slices.SortFunc(recs, func(a, b *kgo.Record) int {
		return cmp.Or(b.Timestamp.Compare(a.Timestamp), cmp.Compare(a.Partition, b.Partition), cmp.Compare(b.Offset, a.Offset))
	})
	return recs, more, nil
}

// fetch returns the records of partition p (of the topic with ID id) from
// offset from up to end (excluded), asking its leader.
func (k *kafkaReader) fetch(ctx context.Context, p kadm.PartitionDetail, id kadm.TopicID, from, end int64) ([]*kgo.Record, error) {
	var recs []*kgo.Record
	for from < end {
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID, req.MaxBytes, req.SessionEpoch = -1, 4<<20, -1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = p.Topic, id
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p.Partition, from, 1<<20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, k.cl.Broker(int(p.Leader)))
		if err != nil {
			return nil, err
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return nil, err
		}
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			return nil, fmt.Errorf("fetch of partition %d of %s: an answer without it", p.Partition, p.Topic)
		}
		fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Offset: from, Topic: p.Topic, Partition: p.Partition},
			&resp.Topics[0].Partitions[0], kgo.DefaultDecompressor(), nil)
		if fp.Err != nil {
			return nil, fmt.Errorf("fetch of partition %d of %s: %w", p.Partition, p.Topic, fp.Err)
		}
		if len(fp.Records) == 0 {
			break // nothing more below end (compacted away, or control records)
		}
		for _, r := range fp.Records {
			if r.Offset < end {
				recs = append(recs, r)
			}
		}
		from = fp.Records[len(fp.Records)-1].Offset + 1
	}
	return recs, nil
}
