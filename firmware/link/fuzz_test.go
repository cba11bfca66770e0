package link_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"testing"
	"testing/iotest"

	"wasmbed.io/wasmbed/firmware/link"
)

// seedStreams returns every stream of the golden link vectors.
func seedStreams(f *testing.F) [][]byte {
	b, err := os.ReadFile("../../testdata/protocol/link-vectors.json")
	if err != nil {
		f.Fatal(err)
	}
	var vf struct {
		Vectors []struct {
			Stream []string `json:"stream"`
		} `json:"vectors"`
	}
	if err := json.Unmarshal(b, &vf); err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	for _, v := range vf.Vectors {
		var s []byte
		for _, h := range v.Stream {
			p, err := hex.DecodeString(h)
			if err != nil {
				f.Fatal(err)
			}
			s = append(s, p...)
		}
		out = append(out, s)
	}
	return out
}

// FuzzDecode feeds arbitrary streams to the Decoder: it never panics, every
// frame it returns is one that the stream holds with a correct header check
// and CRC-32 (its encoding occurs in the stream), within the limit, and
// every byte is accounted for as a frame's or a skipped one. Reading a byte
// at a time gives the same frames.
func FuzzDecode(f *testing.F) {
	for _, s := range seedStreams(f) {
		f.Add(s, uint16(0))
		f.Add(s, uint16(16))
	}
	f.Fuzz(func(t *testing.T, stream []byte, limit uint16) {
		max := int(limit)
		if max == 0 {
			max = link.MaxPayload
		}
		whole := decodeAll(t, bytes.NewReader(stream), int(limit), stream, max)
		oneByte := decodeAll(t, iotest.OneByteReader(bytes.NewReader(stream)), int(limit), stream, max)
		if len(whole) != len(oneByte) {
			t.Fatalf("%d frames read whole, %d a byte at a time", len(whole), len(oneByte))
		}
		for i := range whole {
			if !bytes.Equal(whole[i], oneByte[i]) {
				t.Fatalf("frame %d differs: %x read whole, %x a byte at a time", i, whole[i], oneByte[i])
			}
		}
	})
}

func decodeAll(t *testing.T, r io.Reader, limit int, stream []byte, max int) [][]byte {
	d := link.NewDecoder(r, limit)
	var frames [][]byte
	var framed uint64
	for {
		p, err := d.Next()
		if errors.Is(err, link.ErrTooLarge) {
			continue
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			t.Fatalf("Next() = %v", err)
		}
		if len(p) == 0 || len(p) > max {
			t.Fatalf("Next() returned %d bytes, limit %d", len(p), max)
		}
		enc, err := link.AppendFrame(nil, p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(stream, enc) {
			t.Fatalf("Next() returned %x, whose frame %x is not in the stream", p, enc)
		}
		frames = append(frames, bytes.Clone(p))
		framed += uint64(len(enc))
	}
	st := d.Stats()
	if st.Frames != uint64(len(frames)) {
		t.Fatalf("Stats().Frames = %d, %d returned", st.Frames, len(frames))
	}
	if framed+st.Skipped != uint64(len(stream)) {
		t.Fatalf("%d framed + %d skipped bytes, the stream has %d", framed, st.Skipped, len(stream))
	}
	return frames
}
