package source

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// EnsureTopics creates the topics that do not exist yet, with partitions
// partitions each and the broker's default replication factor. Existing
// topics are left as they are.
func EnsureTopics(ctx context.Context, cl *kgo.Client, partitions int32, topics ...string) error {
	if len(topics) == 0 {
		return nil
	}
	req := kmsg.NewPtrCreateTopicsRequest()
	for _, t := range topics {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic = t
		rt.NumPartitions = partitions
		rt.ReplicationFactor = -1
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("source: create topics: %w", err)
	}
	for _, t := range resp.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil && err != kerr.TopicAlreadyExists {
			return fmt.Errorf("source: create topic %s: %w", t.Topic, err)
		}
	}
	return nil
}

// Partitions returns the partition ids of topic.
func Partitions(ctx context.Context, cl *kgo.Client, topic string) ([]int32, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("source: metadata of %s: %w", topic, err)
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return nil, fmt.Errorf("source: metadata of %s: %w", topic, err)
		}
		var ps []int32
		for _, p := range t.Partitions {
			ps = append(ps, p.Partition)
		}
		return ps, nil
	}
	return nil, fmt.Errorf("source: metadata of %s: topic missing from the answer", topic)
}

// EndOffsets returns the high watermark (the offset the next record will
// get) of every partition of each topic.
func EndOffsets(ctx context.Context, cl *kgo.Client, topics ...string) (map[string]map[int32]int64, error) {
	return listOffsets(ctx, cl, -1, topics)
}

// StartOffsets returns the log start offset (the first record still kept)
// of every partition of each topic.
func StartOffsets(ctx context.Context, cl *kgo.Client, topics ...string) (map[string]map[int32]int64, error) {
	return listOffsets(ctx, cl, -2, topics)
}

func listOffsets(ctx context.Context, cl *kgo.Client, timestamp int64, topics []string) (map[string]map[int32]int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	for _, topic := range topics {
		parts, err := Partitions(ctx, cl, topic)
		if err != nil {
			return nil, err
		}
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		for _, p := range parts {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition = p
			rp.Timestamp = timestamp // -1 latest, -2 earliest
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	out := map[string]map[int32]int64{}
	for _, shard := range cl.RequestSharded(ctx, req) {
		if shard.Err != nil {
			return nil, fmt.Errorf("source: list offsets: %w", shard.Err)
		}
		resp := shard.Resp.(*kmsg.ListOffsetsResponse)
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					return nil, fmt.Errorf("source: list offsets of %s/%d: %w", t.Topic, p.Partition, err)
				}
				if out[t.Topic] == nil {
					out[t.Topic] = map[int32]int64{}
				}
				out[t.Topic][p.Partition] = p.Offset
			}
		}
	}
	return out, nil
}
