package protocol

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/fxamacker/cbor/v2"
)

// Decoding limits (spec section "CBOR profile"). They bound what a hostile
// peer can make a receiver allocate; MaxFrame bounds the total.
const (
	MaxNesting  = 8   // nested arrays and maps, envelope included
	MaxArray    = 256 // elements in one array
	MaxMapPairs = 256 // pairs in one map
)

// The shared modes, built and validated once. Encoding is deterministic (core
// deterministic encoding with floats always as 64-bit), so the same message
// always has the same bytes; decoding enforces the limits above, rejects
// duplicate map keys, indefinite lengths and tags, and ignores unknown map
// keys (the compatibility rule of spec section "Unknown keys").
var (
	encMode cbor.UserBufferEncMode
	decMode cbor.DecMode
)

func init() {
	eo := cbor.CoreDetEncOptions()
	eo.ShortestFloat = cbor.ShortestFloatNone
	eo.NilContainers = cbor.NilContainerAsEmpty
	var err error
	if encMode, err = eo.UserBufferEncMode(); err != nil {
		panic(err)
	}
	do := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:   MaxNesting,
		MaxArrayElements:  MaxArray,
		MaxMapPairs:       MaxMapPairs,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		UTF8:              cbor.UTF8RejectInvalid,
		ExtraReturnErrors: cbor.ExtraDecErrorNone,
	}
	if decMode, err = do.DecMode(); err != nil {
		panic(err)
	}
}

// envelope is the wire form of Message (spec section "Envelope").
type envelope struct {
	Version uint16          `cbor:"1,keyasint"`
	Type    Type            `cbor:"2,keyasint"`
	ID      uint64          `cbor:"3,keyasint"`
	Re      uint64          `cbor:"4,keyasint,omitempty"`
	Body    cbor.RawMessage `cbor:"5,keyasint,omitempty"`
}

// Message is one decoded protocol message.
//
// ID is chosen by the sender, unique among its unanswered messages on the
// session (0 only for notices that are never answered, like an error sent
// before closing). Re is set only on replies and names the ID answered.
// Body points to the type's body struct (e.g. *Hello for TypeHello).
type Message struct {
	Version uint16
	Type    Type
	ID      uint64
	Re      uint64
	Body    any
}

// Encode returns the CBOR bytes of m (without the frame header).
func Encode(m *Message) ([]byte, error) {
	var buf bytes.Buffer
	if err := encodeTo(&buf, m); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// encodeTo appends the CBOR bytes of m to buf. The body is encoded into a
// pooled buffer and copied once into the envelope, so that a session
// sending a module's chunks leaves no garbage per chunk.
func encodeTo(buf *bytes.Buffer, m *Message) error {
	env := envelope{Version: m.Version, Type: m.Type, ID: m.ID, Re: m.Re}
	if env.Version == 0 {
		env.Version = Version
	}
	if m.Body != nil {
		body := getBuffer()
		defer putBuffer(body)
		if err := encMode.MarshalToBuffer(m.Body, body); err != nil {
			return fmt.Errorf("encode %s body: %w", m.Type, err)
		}
		env.Body = body.Bytes()
	}
	// The envelope's own keys take at most 32 bytes; room for them and the
	// body up front means the encoder appends in place.
	buf.Grow(len(env.Body) + 32)
	if err := encMode.MarshalToBuffer(env, buf); err != nil {
		return fmt.Errorf("encode %s: %w", m.Type, err)
	}
	return nil
}

// buffers holds encoding buffers between messages; a buffer is at most a
// frame, header and envelope included, so it is kept whatever it holds.
var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBuffer() *bytes.Buffer {
	b := buffers.Get().(*bytes.Buffer)
	b.Reset()
	return b
}

func putBuffer(b *bytes.Buffer) {
	if b.Cap() <= 2*MaxFrame {
		buffers.Put(b)
	}
}

// Decode parses one message. A message of a type this version does not know
// decodes with a nil Body and an *Error with CodeUnsupportedType, so that the
// receiver can answer it and carry on; every other failure is an *Error with
// CodeMalformed. Decode never panics on any input.
func Decode(b []byte) (*Message, error) {
	var env envelope
	if err := decMode.Unmarshal(b, &env); err != nil {
		return nil, Errorf(CodeMalformed, "envelope: %v", err)
	}
	m := &Message{Version: env.Version, Type: env.Type, ID: env.ID, Re: env.Re}
	if env.Type == 0 {
		return nil, Errorf(CodeMalformed, "envelope has no message type")
	}
	body := newBody(env.Type)
	if body == nil {
		return m, Errorf(CodeUnsupportedType, "message type %d", uint16(env.Type))
	}
	if len(env.Body) > 0 {
		if env.Body[0]>>5 != 5 { // major type 5: map
			return m, Errorf(CodeMalformed, "%s body is not a map", env.Type)
		}
		if err := decMode.Unmarshal(env.Body, body); err != nil {
			return m, Errorf(CodeMalformed, "%s body: %v", env.Type, err)
		}
	}
	m.Body = body
	return m, nil
}
