package renode

import (
	"context"
	"math/big"
	"net"
	"testing"
	"time"

	"wasmbed.io/wasmbed/firmware/link"
	"wasmbed.io/wasmbed/gateway"
	"wasmbed.io/wasmbed/gateway/protocol"
)

// TestBoardLink: a board that speaks the protocol over a serial line
// (here one end of a pipe, standing in for the UART) gets a real gateway
// session through the board link, under its provisioned identity; garbage
// on the line is skipped; a broken session is dialled again at the
// board's next hello; the link stops with its context.
func TestBoardLink(t *testing.T) {
	tg := startDockerTestGateway(t)
	spec := tg.spec(t, "mcu-1", "mps2-an385")
	board, line := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&BoardLink{Spec: spec}).Run(ctx, line) }()

	enc, dec := link.NewEncoder(board), link.NewDecoder(board, protocol.MaxFrame)
	send := func(m *protocol.Message) {
		t.Helper()
		b, err := protocol.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := enc.Encode(b); err != nil {
			t.Fatal(err)
		}
	}
	// The board reads on a goroutine of its own, as the firmware's
	// receive interrupt does.
	frames := make(chan *protocol.Message, 16)
	go func() {
		defer close(frames)
		for {
			b, err := dec.Next()
			if err != nil {
				return
			}
			m, err := protocol.Decode(b)
			if err != nil {
				t.Errorf("board decodes: %v", err)
				return
			}
			frames <- m
		}
	}()
	receive := func() *protocol.Message {
		t.Helper()
		m, ok := <-frames
		if !ok {
			t.Fatal("the line closed")
		}
		return m
	}
	// hello says hello until welcomed, as the firmware does: a hello sent
	// while the old session was ending may be lost.
	var id uint64
	hello := func() {
		t.Helper()
		first := id + 1
		for {
			id++
			send(&protocol.Message{Type: protocol.TypeHello, ID: id, Body: &protocol.Hello{
				Device: "mcu-1", Board: "mps2-an385", Firmware: "test", MinVersion: 1, MaxVersion: 1}})
			select {
			case m, ok := <-frames:
				if !ok {
					t.Fatal("the line closed")
				}
				if m.Type != protocol.TypeWelcome || m.Re < first || m.Re > id {
					t.Fatalf("the board got %s re %d, want a welcome", m.Type, m.Re)
				}
				return
			case <-time.After(2 * time.Second):
			}
		}
	}

	// Noise before the first frame.
	if _, err := board.Write([]byte("boot noise \x00\xd9\x57\xff")); err != nil {
		t.Fatal(err)
	}
	hello()
	tg.events.wait(t, "mcu-1 online", onlineEvent("mcu-1"))
	id++
	send(&protocol.Message{Type: protocol.TypeHeartbeat, ID: id, Body: &protocol.Heartbeat{Seq: 1}})
	if m := receive(); m.Type != protocol.TypeHeartbeatAck || m.Re != id {
		t.Fatalf("the board got %s re %d, want a heartbeat-ack re %d", m.Type, m.Re, id)
	}

	// The gateway ends the session: the board's next hello opens another.
	s, ok := tg.gw.Session("mcu-1")
	if !ok {
		t.Fatal("no gateway session for mcu-1")
	}
	serial, _ := new(big.Int).SetString(s.CertSerial, 16)
	tg.gw.RegisterBoard(gateway.Board{Device: "mcu-1", Serial: serial, Board: "mps2-an385", Backend: "qemu"})
	tg.gw.UnregisterBoard("mcu-1")
	if m := receive(); m.Type != protocol.TypeError {
		t.Fatalf("the board got %s, want the gateway's error notice ending the session", m.Type)
	}
	tg.events.wait(t, "mcu-1 offline", func(e gateway.Event) bool { return e.Type == gateway.EventOffline && e.Device == "mcu-1" })
	hello()
	tg.events.wait(t, "mcu-1 online again", func(e gateway.Event) bool {
		_, ok := tg.gw.Session("mcu-1")
		return e.Type == gateway.EventOnline && e.Device == "mcu-1" && ok
	})

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil after its context ended", err)
	}
	board.Close()
}
