package link_test

import (
	"bytes"
	"errors"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"testing/iotest"

	"wasmbed.io/wasmbed/firmware/link"
)

func TestChecksums(t *testing.T) {
	check := []byte("123456789")
	if got := link.CRC8(check); got != 0xf4 {
		t.Errorf("CRC8(%q) = %#02x, want 0xf4 (CRC-8/SMBUS check value)", check, got)
	}
	if got := crc32.ChecksumIEEE(check); got != 0xcbf43926 {
		t.Errorf("crc32.ChecksumIEEE(%q) = %#08x, want 0xcbf43926", check, got)
	}
}

func TestAppendFrameLimits(t *testing.T) {
	for _, n := range []int{0, link.MaxPayload + 1} {
		if _, err := link.AppendFrame(nil, make([]byte, n)); err == nil {
			t.Errorf("AppendFrame(%d bytes) = nil error, want an error", n)
		}
	}
	var buf bytes.Buffer
	if err := link.NewEncoder(&buf).Encode(nil); err == nil || buf.Len() != 0 {
		t.Errorf("Encode(empty) = %v after writing %d bytes, want an error and nothing written", err, buf.Len())
	}
}

// payloads returns frames' payloads of sizes that exercise the limits.
func payloads() [][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	var out [][]byte
	for _, n := range []int{1, 2, 11, 255, 256, 4096, link.MaxPayload - 1, link.MaxPayload} {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(r.UintN(256))
		}
		out = append(out, p)
	}
	// Payloads full of start markers.
	out = append(out, bytes.Repeat([]byte{link.Magic0, link.Magic1}, 100))
	return out
}

func TestRoundTrip(t *testing.T) {
	var stream bytes.Buffer
	enc := link.NewEncoder(&stream)
	want := payloads()
	for _, p := range want {
		if err := enc.Encode(p); err != nil {
			t.Fatalf("Encode(%d bytes) = %v", len(p), err)
		}
	}
	for _, name := range []string{"whole", "one-byte", "half"} {
		t.Run(name, func(t *testing.T) {
			var r io.Reader = bytes.NewReader(stream.Bytes())
			switch name {
			case "one-byte":
				r = iotest.OneByteReader(r)
			case "half":
				r = iotest.HalfReader(r)
			}
			d := link.NewDecoder(r, 0)
			for i, p := range want {
				got, err := d.Next()
				if err != nil || !bytes.Equal(got, p) {
					t.Fatalf("frame %d: Next() = %d bytes, %v; want %d bytes", i, len(got), err, len(p))
				}
			}
			if _, err := d.Next(); err != io.EOF {
				t.Errorf("Next() at the end = %v, want io.EOF", err)
			}
			if st := d.Stats(); st.Frames != uint64(len(want)) || st.Skipped != 0 {
				t.Errorf("Stats() = %+v, want %d frames and nothing skipped", st, len(want))
			}
		})
	}
}

// TestRecoversFromNoise interleaves frames with random noise, markers
// included, and expects every frame back.
func TestRecoversFromNoise(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var stream []byte
	var want [][]byte
	for range 200 {
		noise := make([]byte, r.IntN(40))
		for i := range noise {
			switch r.IntN(4) {
			case 0:
				noise[i] = link.Magic0
			case 1:
				noise[i] = link.Magic1
			default:
				noise[i] = byte(r.UintN(256))
			}
		}
		p := make([]byte, 1+r.IntN(300))
		for i := range p {
			p[i] = byte(r.UintN(256))
		}
		stream = append(stream, noise...)
		stream, _ = link.AppendFrame(stream, p)
		want = append(want, p)
	}
	d := link.NewDecoder(iotest.HalfReader(bytes.NewReader(stream)), 0)
	for i, p := range want {
		got, err := d.Next()
		for errors.Is(err, link.ErrTooLarge) { // a false start in the noise
			got, err = d.Next()
		}
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("frame %d: Next() = %x, %v; want %x", i, got, err, p)
		}
	}
	if _, err := d.Next(); err != io.EOF {
		t.Errorf("Next() at the end = %v, want io.EOF", err)
	}
}

func TestTooLarge(t *testing.T) {
	big, _ := link.AppendFrame(nil, make([]byte, 100))
	small, _ := link.AppendFrame(nil, []byte{0xa0})
	d := link.NewDecoder(bytes.NewReader(append(big, small...)), 99)
	_, err := d.Next()
	var tl *link.TooLargeError
	if !errors.Is(err, link.ErrTooLarge) || !errors.As(err, &tl) || tl.Len != 100 || tl.Max != 99 {
		t.Fatalf("Next() = %v, want a TooLargeError of 100 bytes over 99", err)
	}
	if got, err := d.Next(); err != nil || !bytes.Equal(got, []byte{0xa0}) {
		t.Errorf("Next() after the refused frame = %x, %v; want a0", got, err)
	}
}

// TestIdleDropsPartialFrame cuts a frame short on a connection that stays
// open: after IdleTimeout the decoder gives up on it and finds the frame
// that followed. Nothing here depends on how long that takes.
func TestIdleDropsPartialFrame(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	cut, _ := link.AppendFrame(nil, make([]byte, 1000))
	good, _ := link.AppendFrame(nil, []byte("after the reset"))
	go func() {
		// A reset in the middle of a frame, then a whole frame; the
		// connection stays open, as a serial line does.
		_, _ = client.Write(append(cut[:100:100], good...))
	}()
	d := link.NewDecoder(server, 0)
	got, err := d.Next()
	if err != nil || string(got) != "after the reset" {
		t.Fatalf("Next() = %q, %v; want the frame after the cut one", got, err)
	}
	if st := d.Stats(); st.Truncated != 1 {
		t.Errorf("Stats().Truncated = %d, want 1", st.Truncated)
	}
}

func TestUnexpectedEOF(t *testing.T) {
	f, _ := link.AppendFrame(nil, []byte{1, 2, 3})
	d := link.NewDecoder(bytes.NewReader(f[:len(f)-1]), 0)
	if _, err := d.Next(); err != io.ErrUnexpectedEOF {
		t.Errorf("Next() = %v, want io.ErrUnexpectedEOF", err)
	}
	if _, err := d.Next(); err != io.EOF {
		t.Errorf("second Next() = %v, want io.EOF", err)
	}
}

func TestReadError(t *testing.T) {
	boom := errors.New("boom")
	d := link.NewDecoder(iotest.ErrReader(boom), 0)
	if _, err := d.Next(); !errors.Is(err, boom) {
		t.Errorf("Next() = %v, want it to wrap the reader's error", err)
	}
}
