package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/tidemark-dev/tidemark/eventcenter"
	"github.com/tidemark-dev/tidemark/eventcenter/codec"
)

type binaryCodec struct{}

func (binaryCodec) Name() string { return "binary/v1" }

// Layout: str(source) str(key) varint(unix nanos) uvarint(pos.Log)
// uvarint(pos.Offset) body, where str is uvarint length + bytes and body is
// codec.EncodeBody (its stored-at is left zero).
//
// Append refuses what the layout cannot hold exactly: a value of a type a
// Row cannot hold, and times outside [eventcenter.MinTime, MaxTime] (codec.CheckTime),
// which would wrap into other years. Anything else it writes as it is, for
// Decode to judge.
func (binaryCodec) Append(dst []byte, e *eventcenter.Event) ([]byte, error) {
	if err := codec.CheckTime(e.Time); err != nil {
		return dst, fmt.Errorf("wire: binary/v1: event time: %w", err)
	}
	if err := codec.CheckRow(e.After); err != nil {
		return dst, fmt.Errorf("wire: binary/v1: after: %w", err)
	}
	if err := codec.CheckRow(e.Before); err != nil {
		return dst, fmt.Errorf("wire: binary/v1: before: %w", err)
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.Source)))
	dst = append(dst, e.Source...)
	dst = binary.AppendUvarint(dst, uint64(len(e.Key)))
	dst = append(dst, e.Key...)
	dst = binary.AppendVarint(dst, e.Time.UnixNano())
	dst = binary.AppendUvarint(dst, e.Pos.Log)
	dst = binary.AppendUvarint(dst, e.Pos.Offset)
	body := eventcenter.Event{Op: e.Op, After: e.After, Before: e.Before}
	return codec.EncodeBody(dst, &body), nil
}

var errShort = errors.New("truncated")

func (binaryCodec) Decode(b []byte, e *eventcenter.Event) error {
	str := func() (string, error) {
		n, w := binary.Uvarint(b)
		if w <= 0 || uint64(len(b)-w) < n {
			return "", errShort
		}
		s := string(b[w : w+int(n)])
		b = b[w+int(n):]
		return s, nil
	}
	uv := func() (uint64, error) {
		x, w := binary.Uvarint(b)
		if w <= 0 {
			return 0, errShort
		}
		b = b[w:]
		return x, nil
	}
	var err error
	*e = eventcenter.Event{}
	if e.Source, err = str(); err != nil {
		return err
	}
	if e.Key, err = str(); err != nil {
		return err
	}
	nanos, w := binary.Varint(b)
	if w <= 0 {
		return errShort
	}
	b = b[w:]
	e.Time = time.Unix(0, nanos).UTC()
	if e.Pos.Log, err = uv(); err != nil {
		return err
	}
	if e.Pos.Offset, err = uv(); err != nil {
		return err
	}
	if err := codec.DecodeBody(b, e); err != nil {
		return err
	}
	e.StoredAt = time.Time{} // a message has not been stored yet
	return nil
}
