package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frame limits (spec section "Framing").
const (
	// MaxFrame is the largest frame payload either side may send, bytes. A
	// receiver closes the session after a larger length prefix.
	MaxFrame = 64 << 10
	// MaxChunk is the largest Data of one Chunk, leaving room for the
	// envelope inside MaxFrame.
	MaxChunk = 32 << 10
	// headerLen is the big-endian uint32 length prefix.
	headerLen = 4
)

// ErrFrameTooLarge matches a frame whose length prefix exceeds the limit.
var ErrFrameTooLarge = &Error{Code: CodeFrameTooLarge}

// FrameReader reads length-prefixed frames from a stream. It is not safe for
// concurrent use.
type FrameReader struct {
	r   io.Reader
	max int
	hdr [headerLen]byte
	buf []byte
}

// NewFrameReader reads frames of at most max bytes (MaxFrame when max <= 0).
func NewFrameReader(r io.Reader, max int) *FrameReader {
	if max <= 0 {
		max = MaxFrame
	}
	return &FrameReader{r: r, max: max}
}

// Next returns the next frame's payload, valid until the following call. It
// returns io.EOF at a clean end of stream between frames, an *Error with
// CodeFrameTooLarge or CodeMalformed for a bad length prefix, and
// io.ErrUnexpectedEOF for a stream cut inside a frame.
func (fr *FrameReader) Next() ([]byte, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(fr.hdr[:])
	switch {
	case n == 0:
		return nil, Errorf(CodeMalformed, "empty frame")
	case n > uint32(fr.max):
		return nil, Errorf(CodeFrameTooLarge, "frame of %d bytes exceeds the %d byte limit", n, fr.max)
	}
	if cap(fr.buf) < int(n) {
		fr.buf = make([]byte, n)
	}
	fr.buf = fr.buf[:n]
	if _, err := io.ReadFull(fr.r, fr.buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return fr.buf, nil
}

// AppendFrame appends the frame header and payload to dst.
func AppendFrame(dst, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...)
}

// WriteFrame writes payload as one frame in a single Write call, so that a
// TLS stream carries it in as few records as possible.
func WriteFrame(w io.Writer, payload []byte) error {
	if len(payload) == 0 || len(payload) > MaxFrame {
		return fmt.Errorf("write frame: %d bytes outside 1..%d", len(payload), MaxFrame)
	}
	_, err := w.Write(AppendFrame(make([]byte, 0, headerLen+len(payload)), payload))
	return err
}
