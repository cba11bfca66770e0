package protocol_test

import (
	"bytes"
	"io"
	"testing"

	"wasmbed.io/wasmbed/gateway/protocol"
)

// hotMessages are the messages a busy session carries most: one per
// heartbeat, one per module chunk, one per app tick with telemetry, one
// hello per connect, one deploy-status per transfer step.
func hotMessages() []struct {
	name string
	msg  *protocol.Message
} {
	data := bytes.Repeat([]byte{0x5a}, 16<<10)
	app := func(name string, state protocol.AppState) protocol.AppInfo {
		return protocol.AppInfo{App: name, Version: "1.4.2", SHA256: moduleSHA, State: state, Previous: "1.4.1"}
	}
	return []struct {
		name string
		msg  *protocol.Message
	}{
		{"heartbeat", &protocol.Message{Type: protocol.TypeHeartbeat, ID: 1042, Body: &protocol.Heartbeat{
			Seq: 1042, UptimeMS: 10_420_000, RTTMicro: 1250}}},
		{"chunk-16KiB", &protocol.Message{Type: protocol.TypeChunk, ID: 77, Body: &protocol.Chunk{
			App: "sensor", SHA256: moduleSHA, Offset: 3 << 14, Data: data}}},
		{"telemetry-4", &protocol.Message{Type: protocol.TypeTelemetry, ID: 5000, Body: &protocol.Telemetry{
			App: "sensor", TimeMS: serverTimeMS,
			Values: map[string]float64{"temp": 21.5, "humidity": 40.25, "pressure": 1013.2, "battery": 3.71}}}},
		{"hello-3-apps", &protocol.Message{Type: protocol.TypeHello, ID: 1, Body: &protocol.Hello{
			Device: "dev-1", Board: "nrf52840dk", Capabilities: []string{"console", "telemetry"},
			Firmware: "wasmbed-0.3.0", MinVersion: 1, MaxVersion: 1, MaxModule: 1 << 20, CertExpiry: certExpiry,
			Apps: []protocol.AppInfo{
				app("blinky", protocol.StateRunning), app("logger", protocol.StateStopped), app("sensor", protocol.StateRunning),
			}}}},
		{"deploy-status", &protocol.Message{Type: protocol.TypeDeployStatus, ID: 9, Re: 8, Body: &protocol.DeployStatus{
			App: "sensor", Version: "1.4.2", SHA256: moduleSHA, State: protocol.StateTransferring, Received: 49152}}},
	}
}

func encoded(b *testing.B, m *protocol.Message) []byte {
	b.Helper()
	p, err := protocol.Encode(m)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkEncode measures Encode; bytes/s count the CBOR payload.
func BenchmarkEncode(b *testing.B) {
	for _, c := range hotMessages() {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(encoded(b, c.msg))))
			for b.Loop() {
				if _, err := protocol.Encode(c.msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecode measures Decode; bytes/s count the CBOR payload.
func BenchmarkDecode(b *testing.B) {
	for _, c := range hotMessages() {
		b.Run(c.name, func(b *testing.B) {
			p := encoded(b, c.msg)
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				if _, err := protocol.Decode(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFrame measures WriteFrame then FrameReader.Next of one encoded
// message through a bytes.Buffer; bytes/s count header and payload.
func BenchmarkFrame(b *testing.B) {
	for _, c := range hotMessages() {
		b.Run(c.name, func(b *testing.B) {
			p := encoded(b, c.msg)
			var buf bytes.Buffer
			fr := protocol.NewFrameReader(&buf, 0)
			b.ReportAllocs()
			b.SetBytes(int64(4 + len(p)))
			for b.Loop() {
				if err := protocol.WriteFrame(&buf, p); err != nil {
					b.Fatal(err)
				}
				if _, err := fr.Next(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSend measures what a Conn's sender pays for one message over
// TCP on loopback, from the message to the bytes handed to the socket.
func BenchmarkSend(b *testing.B) {
	for _, c := range hotMessages() {
		b.Run(c.name, func(b *testing.B) {
			conn, peer := pair(b, protocol.ConnConfig{})
			go io.Copy(io.Discard, peer)
			b.ReportAllocs()
			b.SetBytes(int64(4 + len(encoded(b, c.msg))))
			for b.Loop() {
				if err := conn.Send(c.msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRoundTrip measures what one message costs its two ends without
// the network: Encode, WriteFrame, FrameReader.Next and Decode.
func BenchmarkRoundTrip(b *testing.B) {
	for _, c := range hotMessages() {
		b.Run(c.name, func(b *testing.B) {
			var buf bytes.Buffer
			fr := protocol.NewFrameReader(&buf, 0)
			b.ReportAllocs()
			b.SetBytes(int64(4 + len(encoded(b, c.msg))))
			for b.Loop() {
				p, err := protocol.Encode(c.msg)
				if err != nil {
					b.Fatal(err)
				}
				if err := protocol.WriteFrame(&buf, p); err != nil {
					b.Fatal(err)
				}
				f, err := fr.Next()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := protocol.Decode(f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
