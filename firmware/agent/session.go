package agent

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"wasmbed.io/wasmbed/gateway/pki"
	"wasmbed.io/wasmbed/gateway/protocol"
)

// session runs one connection: enrollment first when there is no
// certificate, then hello, heartbeats and commands until it ends.
func (a *Agent) session(ctx context.Context) error {
	id, err := a.loadIdentity()
	if err != nil {
		return err
	}
	if id.cert == nil {
		if err := a.enroll(ctx, id); err != nil {
			return err
		}
		if id, err = a.loadIdentity(); err != nil {
			return err
		}
	}
	tc, err := a.dial(ctx, id)
	if err != nil {
		return err
	}
	conn := protocol.NewConn(tc, protocol.ConnConfig{ReadTimeout: 30 * time.Second})
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- conn.Serve(sctx, a.handle(conn)) }()

	hctx, hcancel := context.WithTimeout(sctx, 30*time.Second)
	r, err := conn.Request(hctx, protocol.TypeHello, &protocol.Hello{
		Device: a.cfg.Name, Board: a.cfg.Board, Capabilities: a.cfg.Capabilities, Firmware: a.cfg.Firmware,
		Apps: a.apps.report(), MinVersion: protocol.Version, MaxVersion: protocol.Version,
		MaxModule: uint64(a.cfg.MaxModule), CertExpiry: id.leaf.NotAfter.Unix(),
	})
	hcancel()
	if err != nil {
		conn.Close()
		if serr := <-served; errors.Is(err, protocol.ErrClosed) && serr != nil {
			return serr // the gateway said why it closed
		}
		return fmt.Errorf("hello: %w", err)
	}
	w, ok := r.Body.(*protocol.Welcome)
	if !ok {
		conn.Close()
		<-served
		return fmt.Errorf("hello: gateway answered with %s", r.Type)
	}
	conn.SetVersion(w.Version)
	if w.TimeoutMS > 0 {
		conn.SetReadTimeout(time.Duration(w.TimeoutMS) * time.Millisecond)
	}
	a.log.Info("session up", "gateway", a.cfg.Gateway, "heartbeat_ms", w.HeartbeatMS)
	a.mu.Lock()
	a.conn = conn
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.conn = nil
		a.mu.Unlock()
	}()
	go a.heartbeat(sctx, conn, time.Duration(w.HeartbeatMS)*time.Millisecond, time.Duration(w.TimeoutMS)*time.Millisecond)
	if needsRenewal(id, time.Now()) {
		go a.renew(sctx, conn)
	}
	return <-served
}

// heartbeat sends Heartbeat every interval and ends the session when one
// goes unanswered for timeout.
func (a *Agent) heartbeat(ctx context.Context, conn *protocol.Conn, interval, timeout time.Duration) {
	err := conn.Heartbeats(ctx, interval, timeout, interval, func(seq uint64, rtt time.Duration) *protocol.Heartbeat {
		return &protocol.Heartbeat{Seq: seq, UptimeMS: uint64(time.Since(a.start).Milliseconds()), RTTMicro: uint64(rtt.Microseconds())}
	})
	if err != nil {
		a.log.Info("heartbeat unanswered", "err", err)
		conn.Close()
	}
}

// needsRenewal reports whether less than a third of the certificate's
// lifetime is left.
func needsRenewal(id identity, now time.Time) bool {
	life := id.leaf.NotAfter.Sub(id.leaf.NotBefore)
	return id.leaf.NotAfter.Sub(now) < life/3
}

// renew asks for a fresh certificate over the session and stores it with
// its new key; the next connection uses it.
func (a *Agent) renew(ctx context.Context, conn *protocol.Conn) {
	csr, keyPEM, err := pki.NewCSR(a.cfg.Name)
	if err != nil {
		a.log.Error("renewal", "err", err)
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r, err := conn.Request(rctx, protocol.TypeRenewRequest, &protocol.RenewRequest{CSR: csr})
	if err != nil {
		a.log.Info("renewal refused", "err", err)
		return
	}
	resp, ok := r.Body.(*protocol.RenewResponse)
	if !ok {
		return
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: resp.Cert})
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		a.log.Error("renewal", "err", err)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.state.writeFile(keyFile, keyPEM); err != nil {
		a.log.Error("renewal", "err", err)
		return
	}
	if err := a.state.writeFile(certFile, certPEM); err != nil {
		a.log.Error("renewal", "err", err)
		return
	}
	a.log.Info("certificate renewed")
}

// handle dispatches the gateway's commands. It runs on the read goroutine;
// module installs run on goroutines of their own.
func (a *Agent) handle(conn *protocol.Conn) protocol.Handler {
	return func(m *protocol.Message) error {
		var err error
		switch b := m.Body.(type) {
		case *protocol.Deploy:
			var st *protocol.DeployStatus
			if st, err = a.apps.deploy(b); err == nil {
				return conn.Reply(m, protocol.TypeDeployStatus, st)
			}
		case *protocol.Chunk:
			if err = a.apps.chunk(b); err == nil {
				return conn.Reply(m, protocol.TypeAck, &protocol.Ack{})
			}
		case *protocol.AppRef:
			if err = a.apps.command(m.Type, b.App); err == nil {
				return conn.Reply(m, protocol.TypeAck, &protocol.Ack{})
			}
		case *protocol.Console:
			a.shell(b.Data)
			return nil
		default:
			err = protocol.Errorf(protocol.CodeUnexpected, "%s is not sent by gateways", m.Type)
		}
		// A refused command is answered; the session goes on.
		return conn.ReplyError(m, err)
	}
}

// send delivers a notice to the gateway when a session is up; otherwise
// it is dropped (state is reported again in the next hello).
func (a *Agent) send(t protocol.Type, body any) {
	a.mu.Lock()
	conn := a.conn
	a.mu.Unlock()
	if conn != nil {
		_ = conn.Notify(t, body)
	}
}
