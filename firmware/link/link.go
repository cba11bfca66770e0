// Package link implements the serial link transport of the southbound
// protocol (docs/protocol.md, section "Serial link transport"): protocol
// payloads framed for a byte stream such as a UART, with a start marker, a
// checked length and a CRC-32, so that a reader finds frames again after
// noise, a reset or lost bytes. A board without TLS speaks it on its second
// UART; the host-side board link relays each frame to and from the board's
// TLS session with the gateway.
//
// The C twin for the firmware is firmware/mcu/link.c; both are checked
// against testdata/protocol/link-vectors.json.
package link

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"time"

	"wasmbed.io/wasmbed/gateway/protocol"
)

// Frame layout (spec section "Serial link transport"):
//
//	d9 57 | length: uint32 BE | CRC-8 of length | payload | CRC-32 of payload, BE
const (
	Magic0     = 0xd9
	Magic1     = 0x57
	HeaderLen  = 7                      // marker, length, header check
	TrailerLen = 4                      // CRC-32 of the payload
	Overhead   = HeaderLen + TrailerLen // bytes a frame adds to its payload
	// MaxPayload is the largest payload of a frame, the protocol's MaxFrame.
	MaxPayload = protocol.MaxFrame
	// IdleTimeout is the silence after which a receiver drops a partial
	// frame: senders write frames without pauses.
	IdleTimeout = time.Second
)

// ErrTooLarge matches a *TooLargeError with errors.Is.
var ErrTooLarge = errors.New("link frame too large")

// TooLargeError reports a header announcing a payload of Len bytes, above
// the decoder's limit Max. It does not end the stream: the decoder skipped
// the header, and the next call to Next goes on.
type TooLargeError struct {
	Len uint32
	Max int
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("link frame of %d bytes exceeds the %d byte limit", e.Len, e.Max)
}

// Is makes errors.Is(err, ErrTooLarge) match.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// CRC8 is CRC-8/SMBUS (polynomial 0x07, initial 0, no reflection, no final
// xor), the header check over the 4 length bytes.
func CRC8(p []byte) uint8 {
	var crc uint8
	for _, b := range p {
		crc ^= b
		for range 8 {
			if crc&0x80 != 0 {
				crc = crc<<1 ^ 0x07
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// AppendFrame appends the frame of payload to dst. The payload must be 1 to
// MaxPayload bytes.
func AppendFrame(dst, payload []byte) ([]byte, error) {
	if len(payload) == 0 || len(payload) > MaxPayload {
		return dst, fmt.Errorf("link frame of %d bytes outside 1..%d", len(payload), MaxPayload)
	}
	dst = append(dst, Magic0, Magic1)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	dst = append(dst, CRC8(dst[len(dst)-4:]))
	dst = append(dst, payload...)
	return binary.BigEndian.AppendUint32(dst, crc32.ChecksumIEEE(payload)), nil
}

// Encoder writes frames to a stream. It is not safe for concurrent use.
type Encoder struct {
	w   io.Writer
	buf []byte
}

// NewEncoder returns an Encoder writing to w.
func NewEncoder(w io.Writer) *Encoder { return &Encoder{w: w} }

// Encode writes the frame of payload in one Write call, so that frames from
// one Encoder never interleave.
func (e *Encoder) Encode(payload []byte) error {
	b, err := AppendFrame(e.buf[:0], payload)
	if err != nil {
		return err
	}
	e.buf = b
	if _, err := e.w.Write(b); err != nil {
		return fmt.Errorf("write link frame: %w", err)
	}
	return nil
}

// Stats counts what a Decoder saw. Every byte read is eventually counted
// once: in a delivered frame (payload + Overhead) or in Skipped.
type Stats struct {
	Frames    uint64 // frames delivered
	Skipped   uint64 // bytes dropped while hunting for a start marker
	BadHeader uint64 // marker followed by a wrong header check or length 0
	TooLarge  uint64 // headers announcing more than the limit
	BadCRC    uint64 // whole frames whose CRC-32 was wrong
	Truncated uint64 // partial frames dropped at idle time or at the end of the stream
}

// event is what scanner.next found.
type event int

const (
	needMore event = iota
	gotFrame
	gotTooLarge
)

// scanner is the framing state machine, the same as link_dec in
// firmware/mcu/link.c: buf[start:end] holds received bytes, starting with a
// candidate frame once the hunt found a marker.
type scanner struct {
	buf        []byte // len(buf) = max + Overhead
	max        int
	start, end int
	delivered  int  // length of the frame returned last, released at the next call
	idle       bool // no more bytes will come for now: partial frames are dead
	stats      Stats
}

func newScanner(max int) *scanner {
	if max <= 0 || max > MaxPayload {
		max = MaxPayload
	}
	return &scanner{buf: make([]byte, max+Overhead), max: max}
}

// room releases the frame returned last and returns the free space after
// the buffered bytes, moving them to the front when there is none.
func (s *scanner) room() []byte {
	s.start += s.delivered
	s.delivered = 0
	if s.start == s.end {
		s.start, s.end = 0, 0
	} else if s.end == len(s.buf) && s.start > 0 {
		s.end = copy(s.buf, s.buf[s.start:s.end])
		s.start = 0
	}
	return s.buf[s.end:]
}

// received accounts for n bytes written into room().
func (s *scanner) received(n int) {
	if n > 0 {
		s.end += n
		s.idle = false
	}
}

// dropOne refuses the candidate at start: the hunt resumes at its second
// byte.
func (s *scanner) dropOne() {
	s.start++
	s.stats.Skipped++
}

// next returns the next event of the buffered bytes: a frame (valid until
// the next call), a too-large header with its length, or needMore.
func (s *scanner) next() (event, []byte, uint32) {
	s.start += s.delivered
	s.delivered = 0
	for {
		c := s.buf[s.start:s.end]
		if len(c) == 0 {
			s.start, s.end = 0, 0
			return needMore, nil, 0
		}
		if c[0] != Magic0 {
			junk := len(c)
			for i, b := range c {
				if b == Magic0 {
					junk = i
					break
				}
			}
			s.start += junk
			s.stats.Skipped += uint64(junk)
			continue
		}
		need := 2
		if len(c) >= 2 {
			if c[1] != Magic1 {
				s.dropOne()
				continue
			}
			need = HeaderLen
		}
		if len(c) >= HeaderLen {
			n := binary.BigEndian.Uint32(c[2:6])
			if n == 0 || CRC8(c[2:6]) != c[6] {
				s.stats.BadHeader++
				s.dropOne()
				continue
			}
			if uint64(n) > uint64(s.max) {
				s.stats.TooLarge++
				s.dropOne()
				return gotTooLarge, nil, n
			}
			need = Overhead + int(n)
			if len(c) >= need {
				payload := c[HeaderLen : HeaderLen+int(n)]
				if crc32.ChecksumIEEE(payload) != binary.BigEndian.Uint32(c[HeaderLen+int(n):]) {
					s.stats.BadCRC++
					s.dropOne()
					continue
				}
				s.stats.Frames++
				s.delivered = need
				return gotFrame, payload, n
			}
		}
		// A partial frame: wait for the rest, unless the line went idle.
		if s.idle {
			s.stats.Truncated++
			s.dropOne()
			continue
		}
		if s.start+need > len(s.buf) {
			s.end = copy(s.buf, c)
			s.start = 0
		}
		return needMore, nil, 0
	}
}

// Decoder reads frames from a byte stream, skipping whatever is not a whole
// frame with a correct header check and CRC-32. It is not safe for
// concurrent use.
type Decoder struct {
	r       io.Reader
	s       *scanner
	idleFor time.Duration
	armed   bool // a read deadline is set on r
	eof     bool
	cut     uint64 // Stats.Truncated when the stream ended
}

// deadliner is a reader that can bound a blocking read: a pty or serial
// device opened as *os.File, or a net.Conn.
type deadliner interface {
	SetReadDeadline(t time.Time) error
}

// NewDecoder returns a Decoder reading from r that accepts payloads of at
// most max bytes (MaxPayload when max <= 0 or larger). When r has a
// SetReadDeadline method, a partial frame followed by IdleTimeout of silence
// is dropped and the bytes after its start marker are searched again, so
// that a frame cut short (a board reset mid-frame) does not hold back the
// frames after it.
func NewDecoder(r io.Reader, max int) *Decoder {
	return &Decoder{r: r, s: newScanner(max), idleFor: IdleTimeout}
}

// Stats returns the counters so far.
func (d *Decoder) Stats() Stats { return d.s.stats }

// Next returns the next frame's payload, valid until the following call.
// It returns a *TooLargeError for a header above the limit (call Next
// again to go on), io.EOF when the stream ends between frames,
// io.ErrUnexpectedEOF when it ends inside one (after any whole frames found
// in its bytes), and the reader's other errors as they are.
func (d *Decoder) Next() ([]byte, error) {
	for {
		switch ev, payload, n := d.s.next(); ev {
		case gotFrame:
			return payload, nil
		case gotTooLarge:
			return nil, &TooLargeError{Len: n, Max: d.s.max}
		}
		if d.eof {
			d.disarm()
			if d.s.stats.Truncated != d.cut {
				d.cut = d.s.stats.Truncated
				return nil, io.ErrUnexpectedEOF
			}
			return nil, io.EOF
		}
		if err := d.read(); err != nil {
			return nil, err
		}
	}
}

// read reads once into the scanner's buffer. At the end of the stream or
// after IdleTimeout of silence inside a frame it marks the line idle.
func (d *Decoder) read() error {
	dl, canIdle := d.r.(deadliner)
	partial := d.s.end > d.s.start
	switch {
	case canIdle && partial && d.idleFor > 0:
		if err := dl.SetReadDeadline(time.Now().Add(d.idleFor)); err == nil {
			d.armed = true
		}
	case d.armed && !partial:
		d.disarm()
	}
	n, err := d.r.Read(d.s.room())
	d.s.received(n)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF):
		d.eof, d.s.idle = true, true
		d.cut = d.s.stats.Truncated
		return nil
	case d.armed && errors.Is(err, os.ErrDeadlineExceeded):
		d.disarm()
		d.s.idle = true
		return nil
	}
	return fmt.Errorf("read link: %w", err)
}

func (d *Decoder) disarm() {
	if d.armed {
		if dl, ok := d.r.(deadliner); ok {
			_ = dl.SetReadDeadline(time.Time{})
		}
		d.armed = false
	}
}
