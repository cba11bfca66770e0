package gateway_test

import (
	"context"
	"crypto/tls"
	"net"
	"testing"

	"wasmbed.io/wasmbed/gateway"
	"wasmbed.io/wasmbed/gateway/protocol"
)

// TestResumedSessions: a device that reconnects resumes its TLS session
// from a ticket, also at a new gateway over the same authority (a daemon
// restarted after kill -9); the resumed session is checked like a full
// one, so a revoked device is still refused.
func TestResumedSessions(t *testing.T) {
	tb := newTestbed(t, nil)
	cert := tb.cert("roamer")
	tickets := tls.NewLRUClientSessionCache(1)

	// session says hello at addr and returns whether the TLS session was
	// resumed, once the welcome has come (the ticket comes before it).
	session := func(addr string) (resumed bool, err error) {
		cfg := &tls.Config{RootCAs: tb.ca.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13,
			Certificates: []tls.Certificate{*cert}, ClientSessionCache: tickets}
		tc, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			return false, err
		}
		conn := protocol.NewConn(tc, protocol.ConnConfig{})
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		served := make(chan error, 1)
		go func() { served <- conn.Serve(ctx, func(*protocol.Message) error { return nil }) }()
		_, err = conn.Request(ctx, protocol.TypeHello, &protocol.Hello{
			Device: "roamer", MinVersion: protocol.Version, MaxVersion: protocol.Version})
		conn.Close()
		if serr := <-served; err != nil && serr != nil {
			err = serr
		}
		return tc.ConnectionState().DidResume, err
	}

	if resumed, err := session(tb.addr); err != nil || resumed {
		t.Fatalf("first session: resumed %v, err %v; want a full handshake", resumed, err)
	}
	mark := tb.events.mark()
	if resumed, err := session(tb.addr); err != nil || !resumed {
		t.Fatalf("second session: resumed %v, err %v; want resumed", resumed, err)
	}
	online := tb.events.waitFor(t, mark, "roamer online", isType("roamer", gateway.EventOnline))
	if !online.Session.Resumed {
		t.Error("the online event does not say the session was resumed")
	}

	// Another gateway over the same authority takes the ticket.
	cert2, err := tb.ca.ServerCertificate([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := gateway.New(gateway.Config{Authority: tb.ca, Certificate: cert2})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- other.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	if resumed, err := session(ln.Addr().String()); err != nil || !resumed {
		t.Fatalf("session at a restarted gateway: resumed %v, err %v; want resumed", resumed, err)
	}

	if err := tb.gw.RevokeDevice("roamer"); err != nil {
		t.Fatal(err)
	}
	_, err = session(tb.addr)
	if protocol.CodeOf(err) != protocol.CodeRevoked {
		t.Fatalf("revoked device resuming its session: %v, want code revoked", err)
	}
}
