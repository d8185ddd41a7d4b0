package codec

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// ErrCorrupt reports bytes that this codec did not write.
var ErrCorrupt = errors.New("codec: corrupt key or value")

func corrupt(what string) error { return fmt.Errorf("%w: %s", ErrCorrupt, what) }

// Hash is the FNV-1a hash of source, a zero byte and key. Salts and buckets
// derive from it, so a key's rows always land in the same place.
func Hash(source, key string) uint32 {
	const offset, prime = 2166136261, 16777619
	h := uint32(offset)
	for i := 0; i < len(source); i++ {
		h = (h ^ uint32(source[i])) * prime
	}
	h *= prime // the zero separator
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * prime
	}
	return h
}

// Salt is the first byte of a key's events rows.
func Salt(source, key string) byte { return byte(Hash(source, key) >> 24) }

// Bucket is the time-table bucket of a key when a source is spread over
// buckets buckets (1 to 256).
func Bucket(source, key string, buckets int) byte {
	if buckets <= 1 {
		return 0
	}
	return byte(Hash(source, key) % uint32(buckets))
}

// TimeBits maps t to a uint64 whose order is the order of times. Event
// times (eventcenter.MinTime to MaxTime) map to 1 … MaxUint64-1; times
// before them saturate at 0 and times after them at MaxUint64, so that a
// query bound such as the year 9999 sorts after every event instead of
// wrapping around, and no event shares its bits with such a bound.
func TimeBits(t time.Time) uint64 {
	switch {
	case t.Before(eventcenter.MinTime):
		return 0
	case t.After(eventcenter.MaxTime):
		return math.MaxUint64
	}
	return uint64(t.UnixNano()) ^ (1 << 63)
}

// TimeFromBits inverts TimeBits. Times come back in UTC.
func TimeFromBits(u uint64) time.Time { return time.Unix(0, int64(u^(1<<63))).UTC() }

func appendStr(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func readStr(b []byte) (string, []byte, error) {
	s, rest, err := nextBytes(b)
	return string(s), rest, err
}

func appendU64(dst []byte, u uint64) []byte { return binary.BigEndian.AppendUint64(dst, u) }

func readU64(b []byte) (uint64, []byte, error) {
	if len(b) < 8 {
		return 0, nil, corrupt("short integer")
	}
	return binary.BigEndian.Uint64(b), b[8:], nil
}

// KeyPrefix appends the events-table prefix of every row of (source, key).
func KeyPrefix(dst []byte, source, key string) []byte {
	return appendStr(SaltPrefix(dst, Salt(source, key), source), key)
}

// EventKey appends the events-table row key of an event.
func EventKey(dst []byte, source, key string, t time.Time, pos eventcenter.Position) []byte {
	dst = KeyPrefix(dst, source, key)
	dst = appendU64(dst, ^TimeBits(t))
	dst = appendU64(dst, ^pos.Log)
	return appendU64(dst, ^pos.Offset)
}

// AsOfSeek appends the events-table key at which the state of (source, key)
// as of t is found: the first row at or after it, if it has the same prefix.
func AsOfSeek(dst []byte, source, key string, t time.Time) []byte {
	dst = KeyPrefix(dst, source, key)
	return appendU64(dst, ^TimeBits(t))
}

// AsOfSeekTail is the length of what AsOfSeek appends after KeyPrefix.
const AsOfSeekTail = 8

// HistoryBounds returns the events-table key range [start, end) holding the
// rows of (source, key) with from <= time < to, newest first.
func HistoryBounds(source, key string, from, to time.Time) (start, end []byte) {
	prefix := KeyPrefix(nil, source, key)
	if !to.After(eventcenter.MinTime) || from.After(eventcenter.MaxTime) { // nothing is in the range
		return prefix, prefix
	}
	if to.After(eventcenter.MaxTime) {
		start = append([]byte(nil), prefix...) // every row is before `to`
	} else {
		start = appendU64(append([]byte(nil), prefix...), ^TimeBits(to)+1) // after every row at `to`
	}
	if !from.After(eventcenter.MinTime) {
		end = PrefixEnd(prefix)
	} else {
		end = appendU64(prefix, ^TimeBits(from)+1)
	}
	return start, end
}

// ParseEventKey decodes an events-table row key.
func ParseEventKey(b []byte) (source, key string, t time.Time, pos eventcenter.Position, err error) {
	if len(b) < 1 {
		return "", "", t, pos, corrupt("empty event key")
	}
	source, rest, err := readStr(b[1:])
	if err != nil {
		return "", "", t, pos, err
	}
	k, t, pos, err := ParseEventSuffix(rest)
	return source, string(k), t, pos, err
}

// SaltPrefix appends the events-table prefix of the rows of source's keys
// whose Salt is salt.
func SaltPrefix(dst []byte, salt byte, source string) []byte {
	return appendStr(append(dst, salt), source)
}

// ParseEventSuffix decodes the part of an events-table row key after its
// SaltPrefix: the key (aliasing b), the time and the position.
func ParseEventSuffix(b []byte) (key []byte, t time.Time, pos eventcenter.Position, err error) {
	key, rest, err := nextBytes(b)
	if err != nil {
		return nil, t, pos, err
	}
	if len(rest) != 24 {
		return nil, t, pos, corrupt("event key tail")
	}
	t = TimeFromBits(^binary.BigEndian.Uint64(rest))
	pos.Log = ^binary.BigEndian.Uint64(rest[8:])
	pos.Offset = ^binary.BigEndian.Uint64(rest[16:])
	return key, t, pos, nil
}

// TimeKey appends the time-table row key of an event. The key ends the row
// key unprefixed, so rows of one time and position sort by key bytes, the
// order of eventcenter.Compare.
func TimeKey(dst []byte, buckets int, source, key string, t time.Time, pos eventcenter.Position) []byte {
	dst = append(dst, Bucket(source, key, buckets))
	dst = appendStr(dst, source)
	dst = appendU64(dst, TimeBits(t))
	dst = appendU64(dst, pos.Log)
	dst = appendU64(dst, pos.Offset)
	return append(dst, key...)
}

// TimeBounds returns the time-table range [start, end) of one bucket of a
// source with from <= time < to.
func TimeBounds(bucket byte, source string, from, to time.Time) (start, end []byte) {
	prefix := appendStr([]byte{bucket}, source)
	if !to.After(eventcenter.MinTime) || from.After(eventcenter.MaxTime) { // nothing is in the range
		return prefix, prefix
	}
	start = appendU64(append([]byte(nil), prefix...), TimeBits(from))
	if to.After(eventcenter.MaxTime) {
		end = PrefixEnd(prefix) // rows at the last instant too
	} else {
		end = appendU64(prefix, TimeBits(to))
	}
	return start, end
}

// ParseTimeKey decodes a time-table row key.
func ParseTimeKey(b []byte) (source, key string, t time.Time, pos eventcenter.Position, err error) {
	if len(b) < 1 {
		return "", "", t, pos, corrupt("empty time key")
	}
	rest := b[1:]
	if source, rest, err = readStr(rest); err != nil {
		return
	}
	if len(rest) < 24 {
		return "", "", t, pos, corrupt("time key")
	}
	t = TimeFromBits(binary.BigEndian.Uint64(rest))
	pos.Log = binary.BigEndian.Uint64(rest[8:])
	pos.Offset = binary.BigEndian.Uint64(rest[16:])
	return source, string(rest[24:]), t, pos, nil
}

// IndexPrefix appends the index-table prefix of every row of one value. A
// value longer than MaxIndexValueKey bytes is keyed by its first bytes and
// its SHA-256 digest (see indexValueKey).
func IndexPrefix(dst []byte, source, index, value string) []byte {
	value = indexValueKey(value)
	dst = append(dst, byte(Hash(source, index+"\x00"+value)>>24))
	dst = appendStr(dst, source)
	dst = appendStr(dst, index)
	return appendStr(dst, value)
}

// MaxIndexValueKey bounds the bytes of an indexed value in an index row key,
// so that every index row key fits HBase's row key limit (32,767 bytes)
// whatever the value's size (up to eventcenter.SizeLimits.Value).
const MaxIndexValueKey = 1024

// indexValueKey returns what an index row key holds of value: value itself
// up to MaxIndexValueKey bytes, else its first bytes and its SHA-256 digest,
// MaxIndexValueKey bytes in all. Two values may share it (a 1,024-byte value
// ending in another's digest): readers of the index check each key's value
// in its state, as they must anyway.
func indexValueKey(value string) string {
	if len(value) <= MaxIndexValueKey {
		return value
	}
	sum := sha256.Sum256([]byte(value))
	return value[:MaxIndexValueKey-len(sum)] + string(sum[:])
}

// IndexKey appends the index-table row key of an event whose After row has
// value in the index.
func IndexKey(dst []byte, source, index, value, key string, t time.Time, pos eventcenter.Position) []byte {
	dst = IndexPrefix(dst, source, index, value)
	dst = appendStr(dst, key)
	dst = appendU64(dst, TimeBits(t))
	dst = appendU64(dst, pos.Log)
	return appendU64(dst, pos.Offset)
}

// ParseIndexSuffix decodes what follows IndexPrefix in an index row key.
func ParseIndexSuffix(b []byte) (key string, t time.Time, err error) {
	key, rest, err := readStr(b)
	if err != nil {
		return "", t, err
	}
	if len(rest) != 24 {
		return "", t, corrupt("index key tail")
	}
	return key, TimeFromBits(binary.BigEndian.Uint64(rest)), nil
}

// MarkPrefix appends the mark-table prefix of a source's watermarks.
func MarkPrefix(dst []byte, source string) []byte { return appendStr(dst, source) }

// MarkKey appends the mark-table row key of (source, partition).
func MarkKey(dst []byte, source string, partition int32) []byte {
	return binary.BigEndian.AppendUint32(MarkPrefix(dst, source), uint32(partition)^(1<<31))
}

// ParseMarkSuffix decodes the partition that follows MarkPrefix.
func ParseMarkSuffix(b []byte) (int32, error) {
	if len(b) != 4 {
		return 0, corrupt("mark key")
	}
	return int32(binary.BigEndian.Uint32(b) ^ (1 << 31)), nil
}

// EncodeMark and DecodeMark hold a watermark value.
func EncodeMark(t time.Time) []byte { return appendU64(nil, TimeBits(t)) }

// DecodeMark inverts EncodeMark.
func DecodeMark(b []byte) (time.Time, error) {
	u, _, err := readU64(b)
	return TimeFromBits(u), err
}

// PrefixEnd returns the smallest key greater than every key with prefix p,
// or nil if there is none (p is all 0xff).
func PrefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// SplitSource reads the source name that starts a mark-table key (or any
// key laid out as str(source) | rest) and returns the rest.
func SplitSource(b []byte) (source string, rest []byte, err error) { return readStr(b) }
