package link

import (
	"encoding/json"
	"fmt"
	"os"
)

// VectorFile is the layout of link-vectors.json (docs/protocol.md, section
// "Serial link transport").
type VectorFile struct {
	Comment string   `json:"comment"`
	Vectors []Vector `json:"vectors"`
}

// Vector is one byte stream and what a decoder makes of it. The line goes
// idle after each element of Stream (and at its end), so a partial frame at
// the end of an element is dropped.
type Vector struct {
	Name       string      `json:"name"`
	MaxPayload int         `json:"max_payload"` // decoder limit; 0 = 65536
	Stream     []string    `json:"stream"`      // hex
	Encode     bool        `json:"encode"`      // Stream[0] is exactly the encoding of the frames
	Events     []VecEvent  `json:"events"`
	Stats      VectorStats `json:"stats"`
	Note       string      `json:"note,omitempty"`
}

// VecEvent is a delivered frame (Frame, its payload in hex) or a refused
// too-large header (TooLarge, the length it announced).
type VecEvent struct {
	Frame    string `json:"frame,omitempty"`
	TooLarge uint32 `json:"too_large,omitempty"`
}

// VectorStats are the decoder's counters after the stream, idle included.
type VectorStats struct {
	Frames    uint64 `json:"frames"`
	Skipped   uint64 `json:"skipped"`
	BadHeader uint64 `json:"bad_header"`
	TooLarge  uint64 `json:"too_large"`
	BadCRC    uint64 `json:"bad_crc"`
	Truncated uint64 `json:"truncated"`
}

// ReadVectors reads a file of link vectors such as
// testdata/protocol/link-vectors.json, which the Go decoder's tests and the
// C decoder's tests (firmware/mcu) both check.
func ReadVectors(path string) (VectorFile, error) {
	var f VectorFile
	b, err := os.ReadFile(path)
	if err != nil {
		return f, fmt.Errorf("read link vectors (go test ./firmware/link -run TestVectors -update writes them): %w", err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("parse %s: %w", path, err)
	}
	return f, nil
}
