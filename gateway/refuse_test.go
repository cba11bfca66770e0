package gateway_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wasmbed.io/wasmbed/firmware/agent"
	"wasmbed.io/wasmbed/gateway"
	"wasmbed.io/wasmbed/gateway/pki"
	"wasmbed.io/wasmbed/gateway/protocol"
)

// TestRefusals sends the gateway every kind of bad peer and bad module and
// checks each gets a clear error while a healthy device stays served.
func TestRefusals(t *testing.T) {
	tb := newTestbed(t, nil)
	ctx := ctxT(t)
	ev := tb.events
	tb.startDeviceIn("healthy", tb.provision("healthy"), "", nil)
	ev.waitFor(t, 0, "healthy online", isType("healthy", gateway.EventOnline))
	good := tb.cert("good")

	hello := func(name string) *protocol.Hello {
		return &protocol.Hello{Device: name, MinVersion: protocol.Version, MaxVersion: protocol.Version}
	}
	other, err := pki.Open(filepath.Join(t.TempDir(), "other-ca"), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tb.clock.Store(int64(-60 * 24 * time.Hour))
	expired := tb.cert("old")
	tb.clock.Store(0)

	peers := []struct {
		name string
		cert *tls.Certificate
		tls  uint16 // max TLS version; 0 = 1.3
		msg  *protocol.Hello
		want string // in the error
		code protocol.Code
	}{
		{name: "tls 1.2 client", tls: tls.VersionTLS12, msg: hello("x"), want: "protocol version"},
		{name: "no client certificate", msg: hello("x"), code: protocol.CodeUnauthenticated, want: "may only enroll"},
		{name: "certificate from another CA", cert: certFrom(t, other, "good"), msg: hello("good"), want: "certificate"},
		{name: "expired certificate", cert: expired, msg: hello("old"), want: "expired"},
		{name: "hello for another device", cert: good, msg: hello("someone-else"), code: protocol.CodeIdentityMismatch, want: `certificate is for "good"`},
		{name: "unsupported version", cert: good, msg: &protocol.Hello{Device: "good", MinVersion: 7, MaxVersion: 9},
			code: protocol.CodeUnsupportedVersion, want: "versions 7..9"},
	}
	for _, p := range peers {
		t.Run(p.name, func(t *testing.T) {
			err := tb.hello(p.cert, p.tls, p.msg)
			if err == nil || !strings.Contains(err.Error(), p.want) {
				t.Fatalf("hello = %v, want an error containing %q", err, p.want)
			}
			if p.code != 0 && protocol.CodeOf(err) != p.code {
				t.Errorf("hello = %v, want code %s", err, p.code)
			}
		})
	}

	t.Run("oversize frame", func(t *testing.T) {
		reply := tb.rawFrames(t, good, binary.BigEndian.AppendUint32(nil, 1<<20))
		if protocol.CodeOf(reply) != protocol.CodeFrameTooLarge {
			t.Errorf("reply = %v, want frame-too-large", reply)
		}
	})
	t.Run("garbage bytes", func(t *testing.T) {
		reply := tb.rawFrames(t, good, protocol.AppendFrame(nil, []byte{0xff, 0x00, 0x13, 0x37, 0xfe}))
		if protocol.CodeOf(reply) != protocol.CodeMalformed {
			t.Errorf("reply = %v, want malformed", reply)
		}
	})
	t.Run("http request", func(t *testing.T) {
		reply := tb.rawFrames(t, good, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		if protocol.CodeOf(reply) != protocol.CodeFrameTooLarge {
			t.Errorf("reply = %v, want frame-too-large", reply)
		}
	})

	t.Run("reused token", func(t *testing.T) {
		token, err := tb.ca.CreateToken("once", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		m := ev.mark()
		tb.startDevice("once", token, nil)
		ev.waitFor(t, m, "once online", isType("once", gateway.EventOnline))
		again := tb.startDevice("once", token, nil) // a fresh state dir: must enroll
		err = again.exit(t)
		if protocol.CodeOf(err) != protocol.CodeEnrollRefused || !strings.Contains(err.Error(), "already used") {
			t.Errorf("second enrollment = %v, want enroll-refused: already used", err)
		}
	})

	t.Run("revoked device", func(t *testing.T) {
		dir := tb.provision("doomed")
		m := ev.mark()
		d := tb.startDeviceIn("doomed", dir, "", nil)
		ev.waitFor(t, m, "doomed online", isType("doomed", gateway.EventOnline))
		if err := tb.gw.RevokeDevice("doomed"); err != nil {
			t.Fatal(err)
		}
		ev.waitFor(t, m, "doomed cut off", isType("doomed", gateway.EventOffline))
		if err := d.exit(t); protocol.CodeOf(err) != protocol.CodeRevoked {
			t.Errorf("revoked device ended with %v, want revoked", err)
		}
		// Its next handshake is refused too.
		cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "device.crt"), filepath.Join(dir, "device.key"))
		if err != nil {
			t.Fatal(err)
		}
		if err := tb.hello(&cert, 0, hello("doomed")); protocol.CodeOf(err) != protocol.CodeRevoked {
			t.Errorf("hello with a revoked certificate = %v, want revoked", err)
		}
	})

	t.Run("module too large for the device", func(t *testing.T) {
		m := ev.mark()
		tb.startDeviceIn("tiny", tb.provision("tiny"), "", func(c *agent.Config) { c.MaxModule = 1000 })
		ev.waitFor(t, m, "tiny online", isType("tiny", gateway.EventOnline))
		err := tb.gw.Deploy(ctx, "tiny", module(t, "hello.wasm", "hello", "1"))
		if !errors.Is(err, &protocol.Error{Code: protocol.CodeTooLarge}) {
			t.Errorf("Deploy = %v, want too-large", err)
		}
	})

	bad := []struct {
		name string
		mod  gateway.Module
		want string
	}{
		{name: "sha256 mismatch", mod: withSHA(module(t, "sensor.wasm", "liar", "1"), []byte("something else")), want: "sha256"},
		{name: "invalid wasm", mod: withData(module(t, "sensor.wasm", "junk", "1"), []byte("this is not wasm")), want: "invalid module"},
		{name: "bad import", mod: module(t, "badimport.wasm", "badimport", "1"), want: "invalid module"},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			err := tb.gw.Deploy(ctx, "healthy", b.mod)
			var de *gateway.DeployError
			if !errors.As(err, &de) || !strings.Contains(de.Reason, b.want) {
				t.Errorf("Deploy = %v, want a deploy error about %q", err, b.want)
			}
		})
	}

	misbehaving := []struct {
		name, file, want string
	}{
		{name: "infinite loop", file: "loop.wasm", want: "time limit"},
		{name: "trap", file: "trap.wasm", want: "unreachable"},
	}
	for _, b := range misbehaving {
		t.Run(b.name, func(t *testing.T) {
			m := ev.mark()
			mod := module(t, b.file, strings.TrimSuffix(b.file, ".wasm"), "1")
			mod.Limits.CallMS = 200
			_ = tb.gw.Deploy(ctx, "healthy", mod) // it may run briefly before it fails
			e := ev.waitFor(t, m, b.name+" failed", appState("healthy", mod.App, "1", protocol.StateFailed))
			if !strings.Contains(e.Reason, b.want) {
				t.Errorf("%s failed with %q, want %q", mod.App, e.Reason, b.want)
			}
		})
	}

	t.Run("command to an unknown device", func(t *testing.T) {
		if err := tb.gw.Start(ctx, "ghost", "app"); !errors.Is(err, gateway.ErrNotConnected) {
			t.Errorf("Start on ghost = %v, want ErrNotConnected", err)
		}
	})

	// After all that, the healthy device is still served: heartbeats go on
	// and a good module deploys and runs.
	before, _ := tb.gw.Session("healthy")
	waitUntil(t, "healthy heartbeats continue", func() bool {
		s, ok := tb.gw.Session("healthy")
		return ok && s.LastSeen.After(before.LastSeen)
	})
	m := ev.mark()
	if err := tb.gw.Deploy(ctx, "healthy", module(t, "sensor.wasm", "sensor", "1")); err != nil {
		t.Fatalf("Deploy to the healthy device = %v", err)
	}
	ev.waitFor(t, m, "healthy telemetry", telemetryHas("healthy", "temperature"))
	if s, _ := tb.gw.Session("healthy"); !s.ConnectedAt.Equal(before.ConnectedAt) {
		t.Errorf("healthy device reconnected during the refusals")
	}
}

func withSHA(m gateway.Module, of []byte) gateway.Module {
	sum := sha256.Sum256(of)
	m.SHA256 = sum[:]
	return m
}

func withData(m gateway.Module, data []byte) gateway.Module {
	sum := sha256.Sum256(data)
	m.SHA256, m.Data = sum[:], data
	return m
}

// cert provisions a device certificate from the testbed's CA.
func (tb *testbed) cert(name string) *tls.Certificate {
	tb.t.Helper()
	return certFrom(tb.t, tb.ca, name)
}

func certFrom(t testing.TB, ca *pki.Authority, name string) *tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := ca.ProvisionDevice(name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

func (tb *testbed) dial(cert *tls.Certificate, maxVersion uint16) (*tls.Conn, error) {
	cfg := &tls.Config{RootCAs: tb.ca.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12, MaxVersion: maxVersion}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	tc, err := tls.Dial("tcp", tb.addr, cfg)
	if err != nil {
		return nil, err
	}
	return tc, nil
}

// hello opens a session as a raw peer and sends one hello; it returns the
// error the gateway answered with, however it arrived (TLS alert, error
// reply or error notice).
func (tb *testbed) hello(cert *tls.Certificate, maxVersion uint16, h *protocol.Hello) error {
	tc, err := tb.dial(cert, maxVersion)
	if err != nil {
		return err
	}
	conn := protocol.NewConn(tc, protocol.ConnConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- conn.Serve(ctx, func(*protocol.Message) error { return nil }) }()
	_, err = conn.Request(ctx, protocol.TypeHello, h)
	conn.Close()
	// A gateway that refuses the certificate sends its error notice and
	// closes before the hello is read, or even written: what Serve read
	// is then the answer, whatever the write of the hello ran into.
	var notice *protocol.Error
	if serr := <-served; err != nil && (errors.Is(err, protocol.ErrClosed) && serr != nil || errors.As(serr, &notice)) {
		return serr
	}
	return err
}

// rawFrames writes raw bytes on an authenticated session and returns the
// error message the gateway answers with; the gateway must then close.
func (tb *testbed) rawFrames(t *testing.T, cert *tls.Certificate, raw []byte) error {
	t.Helper()
	tc, err := tb.dial(cert, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	_ = tc.SetDeadline(time.Now().Add(waitLimit))
	if _, err := tc.Write(raw); err != nil {
		t.Fatal(err)
	}
	fr := protocol.NewFrameReader(tc, 0)
	frame, err := fr.Next()
	if err != nil {
		t.Fatalf("no answer to bad bytes: %v", err)
	}
	m, err := protocol.Decode(frame)
	if err != nil {
		t.Fatalf("answer does not decode: %v", err)
	}
	e, ok := m.Body.(*protocol.Error)
	if !ok {
		t.Fatalf("answer is %s, want error", m.Type)
	}
	if _, err := fr.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("after the error the gateway kept the session open: %v", err)
	}
	return e
}

// TestHeartbeatTimeout: a device that goes silent is marked offline once
// the heartbeat timeout passes, and its session is closed.
func TestHeartbeatTimeout(t *testing.T) {
	tb := newTestbed(t, func(c *gateway.Config) { c.HeartbeatTimeout = 300 * time.Millisecond })
	p, err := tb.connect(tb.cert("quiet"), "quiet")
	if err != nil {
		t.Fatal(err)
	}
	defer p.tc.Close()
	e := tb.events.waitFor(t, 0, "quiet offline", isType("quiet", gateway.EventOffline))
	if e.Reason != "heartbeat timeout" {
		t.Errorf("offline reason = %q, want heartbeat timeout", e.Reason)
	}
	if _, ok := tb.gw.Session("quiet"); ok {
		t.Errorf("silent device still has a session")
	}
}

// TestBoardRegistration: a registered board's session must present the
// registered certificate and board type; unregistering cuts it off.
func TestBoardRegistration(t *testing.T) {
	tb := newTestbed(t, nil)
	dir := tb.provision("board-1")
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "device.crt"), filepath.Join(dir, "device.key"))
	if err != nil {
		t.Fatal(err)
	}
	tb.gw.RegisterBoard(gateway.Board{Device: "board-1", Serial: cert.Leaf.SerialNumber, Board: "test-board", Backend: "sim"})

	other := tb.cert("board-1") // a valid certificate, but not the registered one
	if err := tb.hello(other, 0, &protocol.Hello{Device: "board-1", Board: "test-board", MinVersion: 1, MaxVersion: 1}); protocol.CodeOf(err) != protocol.CodeIdentityMismatch {
		t.Errorf("hello with another certificate = %v, want identity-mismatch", err)
	}
	if err := tb.hello(&cert, 0, &protocol.Hello{Device: "board-1", Board: "other-board", MinVersion: 1, MaxVersion: 1}); protocol.CodeOf(err) != protocol.CodeIdentityMismatch {
		t.Errorf("hello with another board type = %v, want identity-mismatch", err)
	}

	tb.startDeviceIn("board-1", dir, "", nil)
	e := tb.events.waitFor(t, 0, "board-1 online", isType("board-1", gateway.EventOnline))
	if e.Session.Backend != "sim" {
		t.Errorf("session backend = %q, want sim", e.Session.Backend)
	}
	m := tb.events.mark()
	tb.gw.UnregisterBoard("board-1")
	tb.events.waitFor(t, m, "board-1 cut off", isType("board-1", gateway.EventOffline))
}

// TestNoFreeRides: a peer cannot hold a session without doing what it is
// for. Without a certificate, anything but an enrollment request (a type
// of a newer version too) ends the session as unauthenticated; with one,
// a session that says no hello within the handshake timeout is closed,
// however much else it sends.
func TestNoFreeRides(t *testing.T) {
	tb := newTestbed(t, func(c *gateway.Config) { c.HandshakeTimeout = 500 * time.Millisecond })
	unknown := func(id uint64) []byte {
		b, err := protocol.Encode(&protocol.Message{Type: 999, ID: id})
		if err != nil {
			t.Fatal(err)
		}
		return protocol.AppendFrame(nil, b)
	}
	for _, id := range []uint64{7, 0} {
		if reply := tb.rawFrames(t, nil, unknown(id)); protocol.CodeOf(reply) != protocol.CodeUnauthenticated {
			t.Errorf("enrollment session sending type 999 with id %d: %v, want unauthenticated", id, reply)
		}
	}

	tc, err := tb.dial(tb.cert("chatty"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	_ = tc.SetDeadline(time.Now().Add(waitLimit))
	go func() {
		for id := uint64(1); ; id++ {
			if _, err := tc.Write(unknown(id)); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	fr := protocol.NewFrameReader(tc, 0)
	for {
		f, err := fr.Next()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal("a session that never said hello is still open")
			}
			break // closed
		}
		m, err := protocol.Decode(f)
		if err != nil {
			t.Fatal(err)
		}
		if e, ok := m.Body.(*protocol.Error); ok && m.Re == 0 {
			if e.Code != protocol.CodeUnexpected || !strings.Contains(e.Text, "no hello") {
				t.Errorf("closing notice %v, want unexpected: no hello", e)
			}
		}
	}
}

// TestShedding: connections beyond MaxUnauthenticated that are not past
// hello are closed at once; once those waiting end, devices connect.
func TestShedding(t *testing.T) {
	tb := newTestbed(t, func(c *gateway.Config) { c.MaxUnauthenticated = 2 })
	var held []net.Conn
	for range 2 {
		nc, err := net.Dial("tcp", tb.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		held = append(held, nc)
	}
	extra, err := net.Dial("tcp", tb.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	_ = extra.SetReadDeadline(time.Now().Add(waitLimit))
	if _, err := extra.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("a third unauthenticated connection read %v, want it closed at once", err)
	}
	if _, shed := tb.gw.AcceptStats(); shed != 1 {
		t.Errorf("shed %d connections, want 1", shed)
	}
	for _, nc := range held {
		nc.Close()
	}
	m := tb.events.mark()
	tb.startDeviceIn("after", tb.provision("after"), "", nil)
	tb.events.waitFor(t, m, "after online", isType("after", gateway.EventOnline))
}
