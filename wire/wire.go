// Package wire is the one message format in which every source's changes
// travel through Kafka to the event center and to live jobs.
//
// A Kafka record carries one event: the record key is the event's entity key,
// the value is the event encoded by a Codec, and the header "tidemark-codec"
// names that codec ("json/v1" or "binary/v1"; absent means json/v1). Readers
// decode with Decode, which picks the codec from the header, so producers can
// move to the faster binary codec without their consumers changing.
//
// json/v1 is the documented, human-writable form:
//
//	{"source":"mysql.loan.orders","key":"42","time":"2026-11-26T08:00:00.5Z",
//	 "pos":[3,1234],"op":"update",
//	 "after":{"id":42,"user_id":"u7","amount":{"$d":"1200.50"},"note":null,
//	          "ratio":{"$f":0.25},"blob":{"$b":"AAE="},"due":{"$t":"2026-12-01T00:00:00Z"}},
//	 "before":{...}}
//
// Row values: JSON null, booleans, strings and integers stand for themselves;
// other types are one-key objects: {"$f": number} a float64, {"$d": "text"}
// an exact decimal, {"$b": "base64"} bytes, {"$t": "RFC 3339"} a time,
// {"$s": "base64"} a string given by its bytes. "time" is the event time
// (RFC 3339 with any fraction and offset; read back in UTC); "pos" is the
// source position [log, offset] (optional, default [0,0]); "op" is insert,
// update, delete, snapshot, correction or message. "after" and "before" are
// optional: an absent row (or null) is no row, {} is a row with no columns.
//
// json/v1 is text, and travels any bytes exactly: a key or string value that
// is not UTF-8 is written as {"$s": "base64"} ("key" takes that form too).
// Its Append refuses what it cannot write: NaN and ±Inf, column names and
// decimals that are not UTF-8 text (no valid row has them), times outside
// the years 0000-9999. Decode refuses a document that is not UTF-8 or escapes
// half a surrogate pair (\ud800), which a JSON parser would turn into U+FFFD,
// so no two keys collide.
//
// binary/v1 is the event center's own body encoding (eventcenter/codec) after
// the source, key, time and position: compact and fast, for producers we own.
// It holds times as int64 Unix nanoseconds: its Append refuses others
// (codec.CheckTime: eventcenter.MinTime to MaxTime) rather than wrap them into other years.
//
// For every valid event (Event.Validate), Decode of Append is the event
// itself, up to what a store also normalizes: times come back in UTC, int
// values as int64, a nil []byte as an empty one. The fuzz tests FuzzJSON and
// FuzzBinary hold both codecs to it. Size limits (eventcenter.SizeLimits) are
// the event's: a message whose rows are too large decodes as malformed, a
// dead letter.
package wire

import (
	"errors"
	"fmt"

	"github.com/tidemark-dev/tidemark/eventcenter"
)

// HeaderCodec is the Kafka record header naming a record's codec.
const HeaderCodec = "tidemark-codec"

// ErrMalformed reports a message that cannot be decoded into a valid event.
var ErrMalformed = errors.New("wire: malformed message")

// Codec encodes events as record values.
type Codec interface {
	// Name is the value of the HeaderCodec header for this codec.
	Name() string
	// Append appends the encoding of e to dst. It refuses only what the
	// codec cannot encode exactly (see the package doc); it does not
	// validate the event otherwise, so an invalid event becomes its
	// consumer's malformed message (a dead letter), not its producer's
	// failure.
	Append(dst []byte, e *eventcenter.Event) ([]byte, error)
	// Decode fills e from b. It does not validate the event.
	Decode(b []byte, e *eventcenter.Event) error
}

// The codecs.
var (
	JSON   Codec = jsonCodec{}
	Binary Codec = binaryCodec{}
)

// ByName returns the codec named name ("" means JSON).
func ByName(name string) (Codec, error) {
	switch name {
	case "", JSON.Name():
		return JSON, nil
	case Binary.Name():
		return Binary, nil
	}
	return nil, fmt.Errorf("%w: unknown codec %q", ErrMalformed, name)
}

// Decode decodes a record value with the named codec and validates the
// event. Every error matches ErrMalformed and says what is wrong.
func Decode(codecName string, value []byte) (eventcenter.Event, error) {
	var e eventcenter.Event
	c, err := ByName(codecName)
	if err != nil {
		return e, err
	}
	if err := c.Decode(value, &e); err != nil {
		return e, fmt.Errorf("%w: %s: %v", ErrMalformed, c.Name(), err)
	}
	if err := e.Validate(); err != nil {
		return e, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return e, nil
}
