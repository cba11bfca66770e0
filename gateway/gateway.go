// Package gateway is the southbound side of Wasmbed: a TLS 1.3 server with
// mutual authentication where devices enroll, hold sessions, receive modules
// and report back. It keeps a registry of live sessions, sends commands with
// acks and retries, and reports what happens as Events to its owner.
package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"wasmbed.io/wasmbed/gateway/pki"
	"wasmbed.io/wasmbed/gateway/protocol"
)

// Defaults of Config.
const (
	DefaultHeartbeatInterval = 10 * time.Second
	DefaultHandshakeTimeout  = 10 * time.Second
	DefaultChunkSize         = 16 << 10
	// DefaultMaxTransfers bounds the modules sent at once: a rollout to a
	// whole fleet queues its transfers instead of holding a chunk and its
	// TLS records in memory for every device at the same time.
	DefaultMaxTransfers = 256
	// DefaultMaxUnauthenticated is room for a whole fleet's handshakes
	// after a restart, at about a millisecond each, within the handshake
	// timeout.
	DefaultMaxUnauthenticated = 4096
)

// ErrNotConnected is returned for commands to a device without a live session.
var ErrNotConnected = errors.New("device not connected")

// Config configures a Gateway. Authority and Certificate are required.
type Config struct {
	Authority   *pki.Authority  // issues and checks device certificates
	Certificate tls.Certificate // the gateway's server certificate, issued by Authority
	Events      EventSink       // receives events; nil discards them
	// Admit, when set, decides whether a device whose certificate the
	// Authority accepts may open a session, before its hello: an error
	// refuses it, with the error's code when it is a *protocol.Error
	// (CodeUnauthenticated otherwise).
	Admit  func(device string, cert *x509.Certificate) error
	Logger *slog.Logger // nil discards logs

	HeartbeatInterval time.Duration // told to devices in Welcome; DefaultHeartbeatInterval
	HeartbeatTimeout  time.Duration // silence that ends a session; 3 heartbeat intervals
	HandshakeTimeout  time.Duration // TLS handshake plus first message; DefaultHandshakeTimeout
	ChunkSize         int           // module bytes per Chunk; DefaultChunkSize, at most protocol.MaxChunk
	// MaxUnauthenticated bounds the connections not yet past hello (TLS
	// handshakes, enrollment sessions, sessions before hello); one beyond
	// it is closed at once, so that a flood of peers with no certificate
	// cannot starve enrolled devices. DefaultMaxUnauthenticated.
	MaxUnauthenticated int
	MaxTransfers       int           // modules sent at once, over every session; DefaultMaxTransfers
	RequestTimeout     time.Duration // deadline of one command including retries; 30s
	Backoff            protocol.Backoff
}

// Gateway serves device sessions. Its methods are safe for concurrent use.
type Gateway struct {
	cfg Config
	log *slog.Logger
	tls *tls.Config

	mu       sync.Mutex
	sessions map[string]*session // by device name, live sessions after hello
	desired  map[string]map[string]*desiredApp
	waiters  map[waitKey][]chan error
	boards   map[string]Board // registered boards by device

	transfers       chan struct{} // a slot per module being sent
	unauthenticated chan struct{} // a slot per connection not yet past hello

	acceptErrors atomic.Uint64 // accept calls that failed
	shed         atomic.Uint64 // connections closed at once for want of a slot
	acceptErr    atomic.Pointer[acceptFailure]
}

// acceptFailure is the accept loop's trouble while it lasts.
type acceptFailure struct {
	since time.Time
	err   error
}

// New checks cfg and returns a Gateway ready to Serve.
func New(cfg Config) (*Gateway, error) {
	if cfg.Authority == nil {
		return nil, errors.New("gateway config: no certificate authority")
	}
	if len(cfg.Certificate.Certificate) == 0 {
		return nil, errors.New("gateway config: no server certificate")
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.HeartbeatTimeout <= 0 {
		cfg.HeartbeatTimeout = 3 * cfg.HeartbeatInterval
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.ChunkSize <= 0 || cfg.ChunkSize > protocol.MaxChunk {
		cfg.ChunkSize = DefaultChunkSize
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.MaxTransfers <= 0 {
		cfg.MaxTransfers = DefaultMaxTransfers
	}
	if cfg.MaxUnauthenticated <= 0 {
		cfg.MaxUnauthenticated = DefaultMaxUnauthenticated
	}
	if cfg.Events == nil {
		cfg.Events = EventFunc(func(Event) {})
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{
		cfg: cfg,
		log: cfg.Logger.With("component", "gateway"),
		tls: &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{cfg.Certificate},
			// A device without a certificate may connect, but only to enroll.
			ClientAuth: tls.VerifyClientCertIfGiven,
			ClientCAs:  cfg.Authority.Pool(),
		},
		sessions: make(map[string]*session),
		desired:  make(map[string]map[string]*desiredApp),
		waiters:  make(map[waitKey][]chan error),
		boards:   make(map[string]Board),

		transfers:       make(chan struct{}, cfg.MaxTransfers),
		unauthenticated: make(chan struct{}, cfg.MaxUnauthenticated),
	}
	if err := g.rotateTicketKeys(); err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	return g, nil
}

// ticketKeyCheck is how often Serve asks the authority whether the
// session ticket keys are due for rotation.
const ticketKeyCheck = time.Hour

// rotateTicketKeys takes the authority's session ticket keys, which outlive
// a restart: a fleet that reconnects after one resumes its TLS sessions
// instead of repeating every full handshake at once.
func (g *Gateway) rotateTicketKeys() error {
	keys, err := g.cfg.Authority.TicketKeys()
	if len(keys) > 0 {
		g.tls.SetSessionTicketKeys(keys)
	}
	return err
}

// Serve accepts device connections on ln until ctx is cancelled, then closes
// ln and every session and returns nil once all have ended.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	// The rotation ends with Serve, however Serve ends.
	rctx, endRotation := context.WithCancel(ctx)
	defer endRotation()
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(ticketKeyCheck)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
				if err := g.rotateTicketKeys(); err != nil {
					g.log.Warn("session ticket keys not rotated", "err", err)
				}
			}
		}
	}()
	g.log.Info("gateway serving", "addr", ln.Addr().String())
	var backoff time.Duration
	var lastLog time.Time
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !temporary(err) {
				return fmt.Errorf("accept: %w", err)
			}
			// Out of descriptors or memory for a moment: wait and try
			// again, as net/http does, and say so.
			g.acceptErrors.Add(1)
			if g.acceptErr.Load() == nil {
				g.acceptErr.Store(&acceptFailure{since: time.Now(), err: err})
			}
			if time.Since(lastLog) >= acceptLogEvery {
				g.log.Warn("gateway cannot accept connections; retrying", "err", err, "failed_accepts", g.acceptErrors.Load())
				lastLog = time.Now()
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		if g.acceptErr.Load() != nil {
			g.acceptErr.Store(nil)
			g.log.Info("gateway accepts connections again")
		}
		select {
		case g.unauthenticated <- struct{}{}:
		default:
			g.shed.Add(1)
			nc.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.handle(ctx, nc)
		}()
	}
}

// acceptLogEvery spaces the log lines of a failing accept loop.
const acceptLogEvery = 10 * time.Second

// temporary reports whether an accept error passes: a deadline, or a lack
// of descriptors, buffers or memory that closing connections relieves.
func temporary(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Accepting reports whether the gateway accepts connections: an error
// says since when it cannot, and why.
func (g *Gateway) Accepting() error {
	if f := g.acceptErr.Load(); f != nil {
		return fmt.Errorf("gateway cannot accept connections since %s: %w", f.since.UTC().Format(time.RFC3339), f.err)
	}
	return nil
}

// AcceptStats counts failed accept calls and connections closed at once
// because MaxUnauthenticated were already waiting.
func (g *Gateway) AcceptStats() (failed, shed uint64) {
	return g.acceptErrors.Load(), g.shed.Load()
}

// Sessions returns a snapshot of the live sessions sorted by device name.
func (g *Gateway) Sessions() []SessionInfo {
	g.mu.Lock()
	out := make([]SessionInfo, 0, len(g.sessions))
	for _, s := range g.sessions {
		out = append(out, s.snapshot())
	}
	g.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Device < out[j].Device })
	return out
}

// SessionCount is the number of live sessions.
func (g *Gateway) SessionCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.sessions)
}

// Session returns a snapshot of device's live session.
func (g *Gateway) Session(device string) (SessionInfo, bool) {
	s := g.session(device)
	if s == nil {
		return SessionInfo{}, false
	}
	return s.snapshot(), true
}

func (g *Gateway) session(device string) *session {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sessions[device]
}

// Disconnect ends device's live session, if any, telling it why.
func (g *Gateway) Disconnect(device string, reason error) {
	if s := g.session(device); s != nil {
		s.conn.CloseWithError(reason)
	}
}

// RevokeDevice revokes every certificate of device and cuts its live session
// at once; its next handshake is refused. The gateway also forgets what it
// was asked to deploy there.
func (g *Gateway) RevokeDevice(device string) error {
	if _, err := g.cfg.Authority.RevokeDevice(device); err != nil {
		return fmt.Errorf("revoke device %s: %w", device, err)
	}
	g.mu.Lock()
	delete(g.desired, device)
	g.mu.Unlock()
	g.Disconnect(device, protocol.Errorf(protocol.CodeRevoked, "device %s was revoked", device))
	return nil
}

// RevokeSerial revokes one certificate and cuts the session that uses it.
func (g *Gateway) RevokeSerial(serial *big.Int) error {
	if err := g.cfg.Authority.RevokeSerial(serial); err != nil {
		return fmt.Errorf("revoke serial %x: %w", serial, err)
	}
	g.mu.Lock()
	var victims []*session
	for _, s := range g.sessions {
		if s.serial.Cmp(serial) == 0 {
			victims = append(victims, s)
		}
	}
	g.mu.Unlock()
	for _, s := range victims {
		s.conn.CloseWithError(protocol.Errorf(protocol.CodeRevoked, "certificate %x was revoked", serial))
	}
	return nil
}

// register makes s the device's live session, replacing an older one.
func (g *Gateway) register(s *session) {
	g.mu.Lock()
	old := g.sessions[s.device]
	g.sessions[s.device] = s
	g.mu.Unlock()
	if old != nil {
		old.conn.CloseWithError(protocol.Errorf(protocol.CodeReplaced, "a newer session of %s took over", s.device))
	}
}

// unregister removes s if it is still the device's live session.
func (g *Gateway) unregister(s *session) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.sessions[s.device] != s {
		return false
	}
	delete(g.sessions, s.device)
	return true
}

func (g *Gateway) publish(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	g.cfg.Events.HandleEvent(e)
}
