package loadgen

import (
	"bufio"
	"bytes"
	"testing"
	"time"
)

func TestConnectPacket(t *testing.T) {
	got := connectPacket("c1", 10*time.Second)
	want := []byte{0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 10, 0, 2, 'c', '1'}
	if !bytes.Equal(got, want) {
		t.Errorf("connectPacket(c1, 10s) = % x, want % x", got, want)
	}
	for _, tc := range []struct {
		n    int
		want []byte
	}{{0, []byte{0}}, {127, []byte{0x7f}}, {128, []byte{0x80, 1}}, {16383, []byte{0xff, 0x7f}}, {2097152, []byte{0x80, 0x80, 0x80, 1}}} {
		if got := remainingLength(tc.n); !bytes.Equal(got, tc.want) {
			t.Errorf("remainingLength(%d) = % x, want % x", tc.n, got, tc.want)
		}
	}
}

func TestReadPacket(t *testing.T) {
	for _, tc := range []struct {
		in      []byte
		typ     byte
		body    []byte
		wantErr bool
	}{
		{in: []byte{0x20, 2, 0, 0}, typ: mqttConnack, body: []byte{0, 0}},
		{in: []byte{0xd0, 0}, typ: mqttPingresp, body: []byte{}},
		{in: []byte{0x20, 2, 0}, wantErr: true},                   // truncated
		{in: []byte{0x30, 0xff, 0xff, 0xff, 0xff}, wantErr: true}, // five length bytes
		{in: []byte{0x30, 0x81, 0x40}, wantErr: true},             // 8 KiB: over the limit
	} {
		typ, body, err := readPacket(bufio.NewReader(bytes.NewReader(tc.in)))
		if (err != nil) != tc.wantErr || (err == nil && (typ != tc.typ || !bytes.Equal(body, tc.body))) {
			t.Errorf("readPacket(% x) = %#x, % x, %v", tc.in, typ, body, err)
		}
	}
}

// FuzzReadPacket: whatever a broker sends, readPacket returns a packet
// within its limit or an error, and never reads past its length.
func FuzzReadPacket(f *testing.F) {
	f.Add([]byte{0x20, 2, 0, 0})
	f.Add([]byte{0xd0, 0})
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, in []byte) {
		typ, body, err := readPacket(bufio.NewReader(bytes.NewReader(in)))
		if err != nil {
			return
		}
		if len(body) > 4096 || typ&0x0f != 0 || len(body) > len(in) {
			t.Fatalf("readPacket(% x) = %#x with %d bytes", in, typ, len(body))
		}
	})
}
