package main

import (
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/parleychat/parley/wire/parleypb"
)

// pushDecoder decodes the one frame the generator receives most, a
// ServerFrame carrying Push.message, without allocating: its bytes fields
// alias the frame, and one Message (and the Push around it) is reused for
// every frame of a connection. The Push it returns is valid only until
// the next call, which is how the read loop hands it on (onPush must not
// keep it).
//
// It takes only the canonical shape parleyd sends (Deterministic marshal):
// no request_id, field 16 once, Push.message once, Message's fields each
// at most once in ascending order, no unknown fields. Anything else (other
// frames, or a push written differently) is declined and the caller
// decodes it with proto.Unmarshal; so whatever it accepts decodes to the
// same Message there (FuzzPushDecoder).
type pushDecoder struct {
	msg  parleypb.Message
	push parleypb.Push
	// The last strings seen, kept so that a connection whose pushes come
	// from the same sender converts its id once.
	sender, senderUser string
}

// decode returns the push in data, or false if data is not a
// canonically encoded Push.message frame.
func (d *pushDecoder) decode(data []byte) (*parleypb.Push, bool) {
	push, ok := onlyField(data, 16)
	if !ok {
		return nil, false
	}
	body, ok := onlyField(push, 1)
	if !ok {
		return nil, false
	}
	m := &d.msg
	m.Reset()
	last := protowire.Number(0)
	for len(body) > 0 {
		num, typ, n := protowire.ConsumeTag(body)
		if n < 0 || num <= last {
			return nil, false
		}
		last = num
		body = body[n:]
		switch num {
		case 1, 2, 6, 7, 9, 10:
			if typ != protowire.BytesType {
				return nil, false
			}
			v, n := protowire.ConsumeBytes(body)
			if n < 0 {
				return nil, false
			}
			body = body[n:]
			switch num {
			case 1:
				m.Id = v
			case 2:
				m.ConversationId = v
			case 6:
				if !utf8.Valid(v) {
					return nil, false
				}
				if string(v) != d.sender {
					d.sender = string(v)
				}
				m.SenderDeviceId = d.sender
			case 7:
				m.Payload = v
			case 9:
				m.Frank = v
			case 10:
				if !utf8.Valid(v) {
					return nil, false
				}
				if string(v) != d.senderUser {
					d.senderUser = string(v)
				}
				m.SenderUser = d.senderUser
			}
		case 3, 4, 5, 8, 11:
			if typ != protowire.VarintType {
				return nil, false
			}
			v, n := protowire.ConsumeVarint(body)
			if n < 0 {
				return nil, false
			}
			body = body[n:]
			switch num {
			case 3:
				m.Seq = v
			case 4:
				m.Epoch = v
			case 5:
				m.Kind = parleypb.Kind(int32(v))
			case 8:
				m.StoredUnix = int64(v)
			case 11:
				m.AcceptedUnixMs = int64(v)
			}
		default:
			return nil, false
		}
	}
	if d.push.Event == nil {
		d.push.Event = &parleypb.Push_Message{Message: m}
	}
	return &d.push, true
}

// onlyField returns the contents of data when data is exactly one
// length-delimited field num.
func onlyField(data []byte, num protowire.Number) ([]byte, bool) {
	n0, typ, n := protowire.ConsumeTag(data)
	if n < 0 || n0 != num || typ != protowire.BytesType {
		return nil, false
	}
	v, m := protowire.ConsumeBytes(data[n:])
	if m < 0 || n+m != len(data) {
		return nil, false
	}
	return v, true
}
