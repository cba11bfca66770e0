package link

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/protocol/link-vectors.json from the table in vectors_test.go")

// vectorsPath holds the golden link vectors, checked here and by the C
// decoder (firmware/mcu/test/test_link.c through firmware/mcu/mcu_test.go).
const vectorsPath = "../../testdata/protocol/link-vectors.json"

// Payloads of testdata/protocol/vectors.json.
const (
	ackHex       = "a5010102100304040405a0"
	heartbeatHex = "a401010205030205a301182a021a0036ee80031904e2"
	helloHex     = "a401010201030105a301656465762d3106010701"
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func frame(payloadHex string) []byte {
	b, err := AppendFrame(nil, mustHex(payloadHex))
	if err != nil {
		panic(err)
	}
	return b
}

// header returns a frame header announcing n bytes, with a correct check.
func header(n uint32) []byte {
	h := []byte{Magic0, Magic1, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(h[2:], n)
	h[6] = CRC8(h[2:6])
	return h
}

func cat(parts ...[]byte) string {
	return hex.EncodeToString(bytes.Join(parts, nil))
}

// flip returns b with byte i xored with 0x01.
func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	if i < 0 {
		i += len(c)
	}
	c[i] ^= 0x01
	return c
}

type vectorCase struct {
	name   string
	max    int
	stream []string
	encode bool
	note   string
}

func vectorCases() []vectorCase {
	ack, hb, hello := frame(ackHex), frame(heartbeatHex), frame(helloHex)
	// A console message whose data is a whole ack frame: the inner frame
	// is payload, not a frame of the stream.
	consoleWithFrame := append(mustHex("a40101020f030c05a10158"), byte(len(ack)))
	consoleWithFrame = append(consoleWithFrame, ack...)
	return []vectorCase{
		{name: "one-frame", stream: []string{cat(ack)}, encode: true,
			note: "The ack vector (11 bytes) as one frame."},
		{name: "two-frames", stream: []string{cat(hb, ack)}, encode: true,
			note: "Frames are simply concatenated."},
		{name: "hello", stream: []string{cat(hello)}, encode: true},
		{name: "empty-stream", stream: []string{""}},
		{name: "only-garbage", stream: []string{cat([]byte("boot: rom 1.2\r\n"))},
			note: "Bytes without a start marker are skipped."},
		{name: "garbage-before", stream: []string{cat([]byte("boot: rom 1.2\r\n"), ack)}},
		{name: "garbage-between", stream: []string{cat(hb, []byte{0x00, 0xff, 0x55, 0xaa}, ack)}},
		{name: "stray-marker-byte", stream: []string{cat([]byte{Magic0}, ack)},
			note: "d9 d9 57: the first d9 is not followed by 57 and is skipped."},
		{name: "garbage-with-markers", stream: []string{cat([]byte{Magic0, Magic1, 0x00, Magic0, Magic1, 0x01, 0x02, 0x03, 0x04}, hb)},
			note: "False starts whose header check fails cost one byte each; the heartbeat after them is found."},
		{name: "bad-header-check", stream: []string{cat(flip(ack, 6), hb)},
			note: "The ack's header check byte is wrong: refused at its header; the heartbeat is found."},
		{name: "zero-length", stream: []string{cat(header(0), ack)},
			note: "A length of 0 is refused even with a correct header check."},
		{name: "corrupt-payload", stream: []string{cat(flip(hb, HeaderLen+5), ack)},
			note: "One payload bit flipped: the CRC-32 fails and the frame is dropped whole."},
		{name: "corrupt-crc", stream: []string{cat(flip(hb, -1), ack)}},
		{name: "lost-byte", stream: []string{cat(append(bytes.Clone(hb[:HeaderLen+3]), hb[HeaderLen+4:]...), ack)},
			note: "A payload byte lost: the frame takes one byte of the next as its CRC, fails, and the hunt resumes inside it."},
		{name: "too-large", stream: []string{cat(header(MaxPayload+1), ack)},
			note: "A header announcing 65537 bytes is reported and skipped without waiting for its payload."},
		{name: "too-large-for-small-decoder", max: 16, stream: []string{cat(hb, ack)},
			note: "A decoder of 16-byte payloads refuses the 22-byte heartbeat and takes the ack."},
		{name: "truncated", stream: []string{cat(ack[:len(ack)-2])},
			note: "Cut inside its CRC: dropped when the line goes idle."},
		{name: "truncated-then-frame", stream: []string{cat(hb[:10], ack)},
			note: "A frame cut short (a reset) followed by another: the cut frame announces more bytes than follow, so the ack is found when the line goes idle."},
		{name: "cut-by-idle", stream: []string{cat(hello[:12]), cat(ack)},
			note: "The line goes idle after the first element: the partial hello is dropped and the ack decodes."},
		{name: "frame-inside-payload", stream: []string{cat(frame(hex.EncodeToString(consoleWithFrame)))},
			note: "A console message carrying the bytes of an ack frame: only the outer frame is delivered."},
	}
}

// scan runs the scanner over a vector's stream, feeding each element whole
// (oneByte false) or a byte at a time, with the line idle after each.
func scan(max int, stream [][]byte, oneByte bool) ([]VecEvent, VectorStats) {
	s := newScanner(max)
	events := []VecEvent{}
	drain := func() {
		for {
			ev, payload, n := s.next()
			switch ev {
			case needMore:
				return
			case gotFrame:
				events = append(events, VecEvent{Frame: hex.EncodeToString(payload)})
			case gotTooLarge:
				events = append(events, VecEvent{TooLarge: n})
			}
		}
	}
	for _, part := range stream {
		for len(part) > 0 {
			k := copy(s.room(), part)
			if oneByte {
				k = 1
				s.room()[0] = part[0]
			}
			s.received(k)
			part = part[k:]
			drain()
		}
		s.idle = true
		drain()
	}
	st := s.stats
	return events, VectorStats{Frames: st.Frames, Skipped: st.Skipped, BadHeader: st.BadHeader,
		TooLarge: st.TooLarge, BadCRC: st.BadCRC, Truncated: st.Truncated}
}

func decodeStream(t testing.TB, v Vector) [][]byte {
	t.Helper()
	var out [][]byte
	for _, h := range v.Stream {
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatalf("%s: stream hex: %v", v.Name, err)
		}
		out = append(out, b)
	}
	return out
}

func buildVectors(t *testing.T) []byte {
	t.Helper()
	f := VectorFile{Comment: "Golden vectors of the Wasmbed serial link framing; see docs/protocol.md, section \"Serial link transport\". " +
		"The line goes idle after each element of stream. Generated by firmware/link/vectors_test.go: go test ./firmware/link -run TestVectors -update"}
	for _, c := range vectorCases() {
		v := Vector{Name: c.name, MaxPayload: c.max, Stream: c.stream, Encode: c.encode, Note: c.note}
		v.Events, v.Stats = scan(c.max, decodeStream(t, v), false)
		f.Vectors = append(f.Vectors, v)
	}
	out, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

// loadVectors reads link-vectors.json.
func loadVectors(t testing.TB) VectorFile {
	t.Helper()
	f, err := ReadVectors(vectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestVectors checks testdata/protocol/link-vectors.json against the
// decoder, fed whole and a byte at a time, and the encoder; with -update it
// rewrites the file from vectorCases first.
func TestVectors(t *testing.T) {
	if *update {
		if err := os.WriteFile(vectorsPath, buildVectors(t), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f := loadVectors(t)
	if len(f.Vectors) != len(vectorCases()) {
		t.Errorf("%s has %d vectors, the table %d; run with -update", vectorsPath, len(f.Vectors), len(vectorCases()))
	}
	for _, v := range f.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			stream := decodeStream(t, v)
			for _, oneByte := range []bool{false, true} {
				events, stats := scan(v.MaxPayload, stream, oneByte)
				if !reflect.DeepEqual(events, v.Events) || stats != v.Stats {
					t.Errorf("scan(oneByte=%v) = %+v, %+v; want %+v, %+v", oneByte, events, stats, v.Events, v.Stats)
				}
			}
			var total uint64
			for _, s := range stream {
				total += uint64(len(s))
			}
			var framed uint64
			for _, e := range v.Events {
				framed += uint64(len(e.Frame) / 2)
			}
			if got := framed + v.Stats.Frames*Overhead + v.Stats.Skipped; got != total {
				t.Errorf("frames and skipped bytes account for %d bytes, the stream has %d", got, total)
			}
			if v.Encode {
				var enc []byte
				for _, e := range v.Events {
					var err error
					if enc, err = AppendFrame(enc, mustHex(e.Frame)); err != nil {
						t.Fatal(err)
					}
				}
				if got := hex.EncodeToString(enc); len(v.Stream) != 1 || got != v.Stream[0] {
					t.Errorf("encoding the frames = %s, want %s", got, v.Stream)
				}
			}
			if len(v.Stream) == 1 {
				checkDecoder(t, v, stream[0])
			}
		})
	}
	if !*update {
		if want, got := buildVectors(t), mustRead(t, vectorsPath); !bytes.Equal(want, got) {
			t.Errorf("%s differs from what the table generates; run with -update and review the diff", vectorsPath)
		}
	}
}

// checkDecoder runs the public Decoder over a one-element stream: the end
// of the stream is the idle point.
func checkDecoder(t *testing.T, v Vector, stream []byte) {
	t.Helper()
	d := NewDecoder(bytes.NewReader(stream), v.MaxPayload)
	events := []VecEvent{}
	for {
		p, err := d.Next()
		var tl *TooLargeError
		if err == nil {
			events = append(events, VecEvent{Frame: hex.EncodeToString(p)})
			continue
		}
		if errors.As(err, &tl) {
			events = append(events, VecEvent{TooLarge: tl.Len})
			continue
		}
		wantErr := io.EOF
		if v.Stats.Truncated > 0 {
			wantErr = io.ErrUnexpectedEOF
		}
		if err != wantErr {
			t.Errorf("Decoder.Next() = %v at the end, want %v", err, wantErr)
		}
		break
	}
	if !reflect.DeepEqual(events, v.Events) {
		t.Errorf("Decoder events = %+v, want %+v", events, v.Events)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
