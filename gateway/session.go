package gateway

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"slices"
	"sync"
	"time"

	"wasmbed.io/wasmbed/gateway/pki"
	"wasmbed.io/wasmbed/gateway/protocol"
)

// SessionInfo describes a device's live session.
type SessionInfo struct {
	Device       string
	Board        string
	Firmware     string
	Capabilities []string
	Remote       string
	Version      uint16 // negotiated protocol version
	ConnectedAt  time.Time
	LastSeen     time.Time     // last frame received
	RTT          time.Duration // heartbeat round trip as measured by the device
	CertSerial   string        // hex
	CertExpiry   time.Time
	DeviceUID    string             // the Device UID the certificate is bound to, if any (pki.DeviceUID)
	Resumed      bool               // the TLS session was resumed from a ticket, without a full handshake
	Apps         []protocol.AppInfo // sorted by app name
	Backend      string             // of a registered board; empty for other devices
}

// session is one authenticated device connection after hello.
type session struct {
	g      *Gateway
	conn   *protocol.Conn
	device string
	serial *big.Int
	uid    string // the Device UID the certificate is bound to (pki.DeviceUID)
	// reconcile runs one reconcile pass; set once the session is up.
	reconcile func()
	// authenticated gives back the connection's pending slot at hello.
	authenticated func()

	mu      sync.Mutex
	info    SessionInfo
	apps    map[string]protocol.AppInfo
	reports map[string]uint64 // app reports received, by reportKey
	// A reconcile pass runs on a goroutine of its own while there is
	// something to compare, and none is held while there is not:
	// reconciling says one runs, again that it is to run once more,
	// ended that the session is over and starts none.
	reconciling, again, ended bool
	passes                    sync.WaitGroup

	// report orders an app's reports and its transfer progress as they
	// are published: see session.transfer.
	report sync.Mutex
}

func (s *session) snapshot() SessionInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	info := s.info
	info.Capabilities = slices.Clone(info.Capabilities)
	info.Apps = make([]protocol.AppInfo, 0, len(s.apps))
	for _, a := range s.apps {
		info.Apps = append(info.Apps, a)
	}
	slices.SortFunc(info.Apps, func(a, b protocol.AppInfo) int { return cmp.Compare(a.App, b.App) })
	return info
}

func (s *session) app(name string) (protocol.AppInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[name]
	return a, ok
}

func (s *session) setApp(a protocol.AppInfo) {
	s.mu.Lock()
	s.apps[a.App] = a
	if s.reports == nil {
		s.reports = map[string]uint64{}
	}
	s.reports[reportKey(a.App, a.SHA256)]++
	s.mu.Unlock()
}

// dropApp forgets an app the device removed.
func (s *session) dropApp(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.apps, name)
}

// reportKey names one module of an app.
func reportKey(app string, sha256 []byte) string { return app + "\x00" + string(sha256) }

// reportCount is how many reports on the module sha256 of app the device
// has sent.
func (s *session) reportCount(app string, sha256 []byte) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reports[reportKey(app, sha256)]
}

// poke asks for desired and reported apps to be compared: a reconcile
// pass starts, or runs once more after the one under way.
func (s *session) poke() {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.ended || s.reconcile == nil:
	case s.reconciling:
		s.again = true
	default:
		s.reconciling = true
		s.passes.Add(1)
		go s.passLoop()
	}
}

// passLoop runs reconcile passes until none is asked for.
func (s *session) passLoop() {
	defer s.passes.Done()
	for {
		s.reconcile()
		s.mu.Lock()
		if !s.again || s.ended {
			s.reconciling = false
			s.mu.Unlock()
			return
		}
		s.again = false
		s.mu.Unlock()
	}
}

// end starts no more reconcile passes and waits for the one under way.
func (s *session) end() {
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	s.passes.Wait()
}

// handle runs one connection from TLS handshake to close.
func (g *Gateway) handle(ctx context.Context, nc net.Conn) {
	// The connection holds a pending slot (taken by Serve) until it is past
	// hello or ends.
	var release sync.Once
	authenticated := func() { release.Do(func() { <-g.unauthenticated }) }
	defer authenticated()
	log := g.log.With("remote", nc.RemoteAddr().String())
	tc := tls.Server(nc, g.tls)
	// The handshake and the first message share one deadline, so that a
	// peer that connects and says nothing holds nothing for long.
	_ = nc.SetDeadline(time.Now().Add(g.cfg.HandshakeTimeout))
	hctx, cancel := context.WithTimeout(ctx, g.cfg.HandshakeTimeout)
	err := tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		log.Info("handshake refused", "err", err)
		tc.Close()
		return
	}
	_ = nc.SetDeadline(time.Time{})
	// The first message must come within the handshake timeout too; after
	// hello the heartbeat timeout applies.
	cfg := protocol.ConnConfig{ReadTimeout: g.cfg.HandshakeTimeout, Backoff: g.cfg.Backoff}
	state := tc.ConnectionState()
	if len(state.PeerCertificates) == 0 {
		// A peer without a certificate may enroll and nothing else, once,
		// within a bounded time: it cannot hold a session open by talking.
		cfg.RefuseUnknown = errEnrollOnly
		conn := protocol.NewConn(tc, cfg)
		ectx, cancel := context.WithTimeout(ctx, g.cfg.HandshakeTimeout)
		err = conn.Serve(ectx, g.enrollHandler(conn, log))
		cancel()
		if err != nil {
			log.Info("enrollment session ended", "err", err)
		}
		return
	}
	conn := protocol.NewConn(tc, cfg)
	leaf := state.PeerCertificates[0]
	device, err := g.cfg.Authority.CheckDevice(leaf)
	if err != nil {
		log.Info("device certificate refused", "serial", fmt.Sprintf("%x", leaf.SerialNumber), "err", err)
		code := protocol.CodeUnauthenticated
		if errors.Is(err, pki.ErrRevoked) {
			code = protocol.CodeRevoked
		}
		conn.CloseWithError(protocol.Errorf(code, "certificate %x: %v", leaf.SerialNumber, err))
		return
	}
	if g.cfg.Admit != nil {
		if err := g.cfg.Admit(device, leaf); err != nil {
			log.Info("device refused", "device", device, "serial", fmt.Sprintf("%x", leaf.SerialNumber), "err", err)
			var pe *protocol.Error
			if !errors.As(err, &pe) {
				pe = protocol.Errorf(protocol.CodeUnauthenticated, "%v", err)
			}
			conn.CloseWithError(pe)
			return
		}
	}
	uid := pki.DeviceUID(leaf)
	s := &session{
		g: g, conn: conn, device: device, serial: leaf.SerialNumber, uid: uid,
		apps: make(map[string]protocol.AppInfo),
		info: SessionInfo{
			Device: device, Remote: nc.RemoteAddr().String(),
			CertSerial: fmt.Sprintf("%x", leaf.SerialNumber), CertExpiry: leaf.NotAfter,
			DeviceUID: uid, Resumed: state.DidResume,
		},
	}
	s.authenticated = authenticated
	s.run(ctx, log.With("device", device))
}

// errEnrollOnly ends a session without a client certificate that sends
// anything but an enrollment request.
var errEnrollOnly = protocol.Errorf(protocol.CodeUnauthenticated, "without a client certificate a device may only enroll")

// enrollHandler serves a session without a client certificate: it may only
// enroll, and ends once the certificate is sent.
func (g *Gateway) enrollHandler(conn *protocol.Conn, log *slog.Logger) protocol.Handler {
	return func(m *protocol.Message) error {
		req, ok := m.Body.(*protocol.EnrollRequest)
		if !ok {
			return protocol.Errorf(protocol.CodeUnauthenticated,
				"%s needs a client certificate; %s", m.Type, errEnrollOnly.Text)
		}
		device, cert, err := g.cfg.Authority.Enroll(req.Token, req.CSR)
		if err != nil {
			log.Info("enrollment refused", "err", err)
			return protocol.Errorf(protocol.CodeEnrollRefused, "%v", err)
		}
		log.Info("device enrolled", "device", device)
		if err := conn.Reply(m, protocol.TypeEnrollResponse, &protocol.EnrollResponse{
			Device: device, Cert: cert, CA: g.cfg.Authority.CACert().Raw,
		}); err != nil {
			return err
		}
		return protocol.ErrEnd
	}
}

// run serves an authenticated session until it ends.
func (s *session) run(ctx context.Context, log *slog.Logger) {
	g := s.g
	hello := false
	reason := "closed by device"
	defer func() {
		if hello && g.unregister(s) {
			info := s.snapshot()
			g.publish(Event{Type: EventOffline, Device: s.device, Reason: reason, Session: &info})
			log.Info("device offline", "reason", reason)
		}
	}()
	defer s.end()
	// A session that has not said hello within the handshake timeout is
	// closed, whatever else it sends (messages of unknown types included).
	noHello := time.AfterFunc(g.cfg.HandshakeTimeout, func() {
		s.conn.CloseWithError(protocol.Errorf(protocol.CodeUnexpected, "no hello within %s", g.cfg.HandshakeTimeout))
	})
	defer noHello.Stop()
	err := s.conn.Serve(ctx, func(m *protocol.Message) error {
		s.mu.Lock()
		s.info.LastSeen = time.Now()
		s.mu.Unlock()
		if !hello {
			if m.Type != protocol.TypeHello {
				return protocol.Errorf(protocol.CodeUnexpected, "first message must be hello, got %s", m.Type)
			}
			if err := s.hello(m); err != nil {
				return err
			}
			hello = true
			noHello.Stop()
			s.authenticated()
			s.conn.SetReadTimeout(g.cfg.HeartbeatTimeout)
			g.register(s)
			info := s.snapshot()
			g.publish(Event{Type: EventOnline, Device: s.device, Session: &info})
			// What the device already runs completes the deploys waiting
			// for it: after a restart the owner may deploy again before
			// the device is back, and nothing would be sent to report on.
			for _, a := range info.Apps {
				g.appHeld(s.device, a)
			}
			log.Info("device online", "board", info.Board, "apps", len(info.Apps))
			s.mu.Lock()
			s.reconcile = func() { s.reconcilePass(ctx, log) }
			s.mu.Unlock()
			s.poke()
			return nil
		}
		return s.dispatch(m, log)
	})
	switch {
	case err == nil:
	case isTimeout(err):
		reason = "heartbeat timeout"
	default:
		reason = err.Error()
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// hello checks identity and version and answers with Welcome.
func (s *session) hello(m *protocol.Message) error {
	h := m.Body.(*protocol.Hello)
	if h.Device != s.device {
		return protocol.Errorf(protocol.CodeIdentityMismatch,
			"hello names device %q but the certificate is for %q", h.Device, s.device)
	}
	if err := s.g.checkBoard(s.device, s.serial, h.Board); err != nil {
		return err
	}
	if h.MinVersion > protocol.Version || h.MaxVersion < protocol.Version {
		return protocol.Errorf(protocol.CodeUnsupportedVersion,
			"device speaks versions %d..%d, gateway speaks %d", h.MinVersion, h.MaxVersion, protocol.Version)
	}
	now := time.Now()
	s.mu.Lock()
	s.info.Board, s.info.Firmware = h.Board, h.Firmware
	if b, ok := s.g.BoardOf(s.device); ok {
		s.info.Backend = b.Backend
	}
	s.info.Capabilities = h.Capabilities
	s.info.Version = protocol.Version
	s.info.ConnectedAt, s.info.LastSeen = now, now
	for _, a := range h.Apps {
		s.apps[a.App] = a
	}
	s.mu.Unlock()
	s.conn.SetVersion(protocol.Version)
	return s.conn.Reply(m, protocol.TypeWelcome, &protocol.Welcome{
		Version:     protocol.Version,
		HeartbeatMS: uint32(s.g.cfg.HeartbeatInterval / time.Millisecond),
		TimeoutMS:   uint32(s.g.cfg.HeartbeatTimeout / time.Millisecond),
		MaxFrame:    protocol.MaxFrame,
		ServerTime:  now.UnixMilli(),
	})
}

// dispatch handles one message of an established session.
func (s *session) dispatch(m *protocol.Message, log *slog.Logger) error {
	g := s.g
	switch b := m.Body.(type) {
	case *protocol.Heartbeat:
		s.mu.Lock()
		s.info.RTT = time.Duration(b.RTTMicro) * time.Microsecond
		s.mu.Unlock()
		return s.conn.Reply(m, protocol.TypeHeartbeatAck, &protocol.HeartbeatAck{ServerTime: time.Now().UnixMilli()})
	case *protocol.AppInfo:
		s.report.Lock()
		s.setApp(*b)
		g.publish(Event{Type: EventApp, Device: s.device, App: b, Reason: b.Reason})
		s.report.Unlock()
		g.appChanged(s.device, *b)
		log.Info("app state", "app", b.App, "version", b.Version, "state", b.State.String(), "reason", b.Reason)
		return nil
	case *protocol.DeployStatus:
		info := protocol.AppInfo{App: b.App, Version: b.Version, SHA256: b.SHA256, State: b.State, Reason: b.Reason, Received: b.Received}
		g.publish(Event{Type: EventProgress, Device: s.device, App: &info, Sent: b.Received})
		return nil
	case *protocol.Telemetry:
		g.publish(Event{Type: EventTelemetry, Device: s.device, Telemetry: b})
		return nil
	case *protocol.Console:
		g.publish(Event{Type: EventConsole, Device: s.device, Console: b})
		return nil
	case *protocol.RenewRequest:
		// The renewed certificate is bound to the Device this one is.
		cert, err := g.cfg.Authority.SignDeviceCSRFor(s.device, s.uid, b.CSR)
		if err != nil {
			return s.conn.ReplyError(m, protocol.Errorf(protocol.CodeBadRequest, "renew: %v", err))
		}
		log.Info("certificate renewed")
		return s.conn.Reply(m, protocol.TypeRenewResponse, &protocol.RenewResponse{Cert: cert})
	case *protocol.Hello:
		return protocol.Errorf(protocol.CodeUnexpected, "hello twice in one session")
	default:
		return s.conn.ReplyError(m, protocol.Errorf(protocol.CodeUnexpected, "%s is not sent by devices", m.Type))
	}
}
