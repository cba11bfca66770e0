package protocol_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"wasmbed.io/wasmbed/gateway/protocol"
)

// pair connects a Conn to a raw peer over real TCP on loopback.
func pair(t testing.TB, cfg protocol.ConnConfig) (*protocol.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { peer.Close() })
	c := protocol.NewConn(nc, cfg)
	t.Cleanup(func() { c.Close() })
	return c, peer
}

func readMessage(t *testing.T, fr *protocol.FrameReader) *protocol.Message {
	t.Helper()
	b, err := fr.Next()
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	m, err := protocol.Decode(b)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return m
}

func writeMessage(t *testing.T, w net.Conn, m *protocol.Message) {
	t.Helper()
	b, err := protocol.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := protocol.WriteFrame(w, b); err != nil {
		t.Fatal(err)
	}
}

// serve runs c.Serve in the background; the returned function waits for
// it to end and returns its error (it may be called more than once).
func serve(t *testing.T, c *protocol.Conn, h protocol.Handler) func() error {
	var err error
	done := make(chan struct{})
	go func() { err = c.Serve(context.Background(), h); close(done) }()
	wait := func() error { <-done; return err }
	t.Cleanup(func() { c.Close(); wait() })
	return wait
}

// A request whose first copy goes unanswered is sent again with the same
// ID, and the answer to the retransmission completes it.
func TestRequestRetransmits(t *testing.T) {
	c, peer := pair(t, protocol.ConnConfig{Backoff: protocol.Backoff{Initial: 20 * time.Millisecond, Max: 40 * time.Millisecond}})
	serve(t, c, func(*protocol.Message) error { return nil })
	got := make(chan *protocol.Message, 1)
	go func() {
		r, err := c.Request(context.Background(), protocol.TypeStop, &protocol.AppRef{App: "a"})
		if err != nil {
			t.Errorf("Request = %v", err)
		}
		got <- r
	}()
	fr := protocol.NewFrameReader(peer, 0)
	first := readMessage(t, fr) // dropped, as if lost
	second := readMessage(t, fr)
	if first.ID != second.ID || first.Type != protocol.TypeStop {
		t.Fatalf("retransmission = %s id %d, want the same stop id %d", second.Type, second.ID, first.ID)
	}
	writeMessage(t, peer, &protocol.Message{Type: protocol.TypeAck, ID: 1, Re: second.ID, Body: &protocol.Ack{}})
	if r := <-got; r == nil || r.Type != protocol.TypeAck {
		t.Fatalf("reply = %+v, want ack", r)
	}
}

// An error reply turns into the Request's error; its code survives.
func TestRequestErrorReply(t *testing.T) {
	c, peer := pair(t, protocol.ConnConfig{})
	serve(t, c, func(*protocol.Message) error { return nil })
	errc := make(chan error, 1)
	go func() {
		_, err := c.Request(context.Background(), protocol.TypeStart, &protocol.AppRef{App: "nope"})
		errc <- err
	}()
	req := readMessage(t, protocol.NewFrameReader(peer, 0))
	writeMessage(t, peer, &protocol.Message{Type: protocol.TypeError, ID: 9, Re: req.ID,
		Body: protocol.Errorf(protocol.CodeUnknownApp, "no app nope")})
	err := <-errc
	if !errors.Is(err, &protocol.Error{Code: protocol.CodeUnknownApp}) {
		t.Fatalf("Request = %v, want unknown-app", err)
	}
}

// An unknown message type is answered with unsupported-type and the
// session carries on; a malformed one is answered and ends the session.
func TestServeUnknownAndMalformed(t *testing.T) {
	c, peer := pair(t, protocol.ConnConfig{})
	handled := make(chan protocol.Type, 4)
	done := serve(t, c, func(m *protocol.Message) error { handled <- m.Type; return nil })
	fr := protocol.NewFrameReader(peer, 0)

	// Type 999 from a newer peer: envelope {1:1, 2:999, 3:5, 5:{}}.
	unknown := []byte{0xa4, 0x01, 0x01, 0x02, 0x19, 0x03, 0xe7, 0x03, 0x05, 0x05, 0xa0}
	if err := protocol.WriteFrame(peer, unknown); err != nil {
		t.Fatal(err)
	}
	r := readMessage(t, fr)
	if e, ok := r.Body.(*protocol.Error); !ok || e.Code != protocol.CodeUnsupportedType || r.Re != 5 {
		t.Fatalf("answer to an unknown type = %+v %+v, want unsupported-type re 5", r, r.Body)
	}
	writeMessage(t, peer, &protocol.Message{Type: protocol.TypeConsole, ID: 6, Body: &protocol.Console{Data: []byte("still here")}})
	if got := <-handled; got != protocol.TypeConsole {
		t.Fatalf("handled %s, want console after the unknown type", got)
	}

	// A heartbeat whose body is a text string is malformed.
	if err := protocol.WriteFrame(peer, []byte{0xa4, 0x01, 0x01, 0x02, 0x05, 0x03, 0x07, 0x05, 0x61, 0x78}); err != nil {
		t.Fatal(err)
	}
	r = readMessage(t, fr)
	if e, ok := r.Body.(*protocol.Error); !ok || e.Code != protocol.CodeMalformed {
		t.Fatalf("answer to a malformed body = %+v, want malformed", r.Body)
	}
	if err := done(); protocol.CodeOf(err) != protocol.CodeMalformed {
		t.Fatalf("Serve = %v, want the malformed error", err)
	}
}

// An error notice (an error answering nothing) ends the session with the
// peer's error; pending requests fail with ErrClosed.
func TestErrorNoticeEndsSession(t *testing.T) {
	c, peer := pair(t, protocol.ConnConfig{})
	done := serve(t, c, func(*protocol.Message) error { return nil })
	errc := make(chan error, 1)
	go func() {
		_, err := c.Request(context.Background(), protocol.TypeHello, &protocol.Hello{Device: "d"})
		errc <- err
	}()
	readMessage(t, protocol.NewFrameReader(peer, 0))
	writeMessage(t, peer, &protocol.Message{Type: protocol.TypeError, Body: protocol.Errorf(protocol.CodeRevoked, "gone")})
	if err := done(); protocol.CodeOf(err) != protocol.CodeRevoked {
		t.Fatalf("Serve = %v, want revoked", err)
	}
	if err := <-errc; !errors.Is(err, protocol.ErrClosed) {
		t.Fatalf("pending Request = %v, want ErrClosed", err)
	}
}

// Silence longer than the read timeout ends Serve with a timeout.
func TestReadTimeout(t *testing.T) {
	c, _ := pair(t, protocol.ConnConfig{ReadTimeout: 50 * time.Millisecond})
	done := serve(t, c, func(*protocol.Message) error { return nil })
	err := done()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Serve = %v, want a timeout", err)
	}
}

func TestBackoff(t *testing.T) {
	b := protocol.Backoff{Initial: time.Second, Max: 5 * time.Second}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	var d time.Duration
	for i, w := range want {
		if d = b.Next(d); d != w {
			t.Fatalf("step %d: Next = %v, want %v", i, d, w)
		}
		if j := protocol.Jitter(d); j < d-d/5 || j > d+d/5 {
			t.Fatalf("Jitter(%v) = %v, outside ±20%%", d, j)
		}
	}
}

// A retransmitted request is answered again with the first reply and is
// not handled twice: commands like stop, whose second run reports again,
// are handled once per id.
func TestRetransmissionHandledOnce(t *testing.T) {
	c, peer := pair(t, protocol.ConnConfig{})
	handled := 0
	serve(t, c, func(m *protocol.Message) error {
		handled++
		return c.Reply(m, protocol.TypeAck, &protocol.Ack{})
	})
	fr := protocol.NewFrameReader(peer, 0)
	req := &protocol.Message{Type: protocol.TypeStop, ID: 41, Body: &protocol.AppRef{App: "a"}}
	writeMessage(t, peer, req)
	first := readMessage(t, fr)
	writeMessage(t, peer, req)
	second := readMessage(t, fr)
	if first.Re != 41 || second.Re != 41 || first.ID != second.ID {
		t.Fatalf("replies %+v and %+v, want the same reply to 41 twice", first, second)
	}
	writeMessage(t, peer, &protocol.Message{Type: protocol.TypeStop, ID: 42, Body: &protocol.AppRef{App: "a"}})
	readMessage(t, fr)
	if handled != 2 {
		t.Errorf("handler ran %d times for requests 41, 41, 42; want 2", handled)
	}
}

// TestSendGarbage checks that sending a module chunk allocates next to
// nothing: a rollout to a fleet sends thousands of them at once, and a
// copy per chunk (there were three) made the garbage collector the
// rollout's largest cost.
func TestSendGarbage(t *testing.T) {
	c, peer := pair(t, protocol.ConnConfig{})
	go io.Copy(io.Discard, peer)
	chunk := &protocol.Chunk{App: "sensor", SHA256: bytes.Repeat([]byte{1}, 32), Data: bytes.Repeat([]byte{0x5a}, 16<<10)}
	send := func() {
		if err := c.Notify(protocol.TypeChunk, chunk); err != nil {
			t.Fatal(err)
		}
	}
	send() // fills the buffer pool
	const n = 200
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		send()
	}
	runtime.ReadMemStats(&after)
	// Three copies of the chunk were made before, 55 KB. Under the race
	// detector, whose sync.Pool drops buffers at random, the bound is
	// fewer than those three copies.
	limit := uint64(2 << 10)
	if raceDetector {
		limit = 40 << 10
	}
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > limit {
		t.Errorf("a 16 KiB chunk allocates %d bytes to send, want at most %d", per, limit)
	}
}
