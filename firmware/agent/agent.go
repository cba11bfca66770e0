// Package agent is the Wasmbed device runtime: it enrolls a device or uses
// its provisioned identity, keeps a mutual-TLS session with the gateway
// (heartbeats, reconnects with jittered exponential backoff), receives
// modules and runs them in the sandbox, and keeps everything it needs to
// resume in a state directory.
package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"wasmbed.io/wasmbed/gateway/pki"
	"wasmbed.io/wasmbed/gateway/protocol"
)

// Defaults of Config.
const (
	DefaultMaxModule  = 16 << 20
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
)

// Config describes one device.
type Config struct {
	Name         string   // device name; must match the certificate
	Board        string   // board or MCU type reported in hello
	Firmware     string   // firmware version reported in hello
	Capabilities []string // reported in hello
	Gateway      string   // host:port of the gateway's TLS listener
	ServerName   string   // name to verify in the gateway's certificate; the host of Gateway when empty
	StateDir     string   // identity, modules and app state; created if missing

	// CAPEM is the CA to trust when the state directory holds none yet
	// (first enrollment). Token is the one-time enrollment token used when
	// the state directory holds no certificate.
	CAPEM []byte
	Token string

	MaxModule  int64         // largest module accepted, bytes; DefaultMaxModule
	MinBackoff time.Duration // first reconnect delay; DefaultMinBackoff
	MaxBackoff time.Duration // reconnect delay cap; DefaultMaxBackoff

	// Console receives everything written to the device console (app output,
	// shell replies) besides the gateway; nil discards.
	Console io.Writer
	Logger  *slog.Logger
}

// Agent runs one device. Create it with New and call Run once.
type Agent struct {
	cfg   Config
	log   *slog.Logger
	state stateDir
	start time.Time

	mu      sync.Mutex // guards conn and line
	conn    *protocol.Conn
	line    []byte // console input not yet ended by a newline
	apps    *appManager
	console io.Writer

	// tickets holds the gateway's TLS session ticket for the certificate
	// ticketsFor (its serial), so that a reconnect resumes the session
	// instead of a full handshake. A new certificate starts a new cache:
	// a ticket carries the certificate it was issued to. Used by the
	// session loop only.
	tickets    tls.ClientSessionCache
	ticketsFor string
}

// New prepares the state directory and loads what a previous run left there.
func New(cfg Config) (*Agent, error) {
	if err := pki.ValidDeviceName(cfg.Name); err != nil {
		return nil, fmt.Errorf("device config: %w", err)
	}
	if cfg.Gateway == "" || cfg.StateDir == "" {
		return nil, errors.New("device config: gateway address and state dir are required")
	}
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(cfg.Gateway)
		if err != nil {
			return nil, fmt.Errorf("device config: gateway address: %w", err)
		}
		cfg.ServerName = host
	}
	if cfg.MaxModule <= 0 {
		cfg.MaxModule = DefaultMaxModule
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.Console == nil {
		cfg.Console = io.Discard
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Agent{cfg: cfg, log: cfg.Logger.With("component", "device", "device", cfg.Name), state: stateDir(cfg.StateDir), start: time.Now()}
	if err := a.state.init(); err != nil {
		return nil, err
	}
	a.console = consoleWriter{a}
	apps, err := newAppManager(a)
	if err != nil {
		return nil, err
	}
	a.apps = apps
	return a, nil
}

// Permanent errors end Run: retrying cannot help until an operator acts.
var permanentCodes = map[protocol.Code]bool{
	protocol.CodeEnrollRefused:      true,
	protocol.CodeRevoked:            true,
	protocol.CodeIdentityMismatch:   true,
	protocol.CodeUnsupportedVersion: true,
	protocol.CodeUnauthenticated:    true,
}

// Run keeps the device connected until ctx is cancelled (then it stops the
// apps and returns nil) or a permanent error occurs (enrollment refused,
// certificate revoked, identity or version mismatch), which it returns.
func (a *Agent) Run(ctx context.Context) error {
	defer a.apps.stopAll()
	a.apps.resume()
	var wait time.Duration
	for {
		began := time.Now()
		err := a.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var pe *protocol.Error
		if errors.As(err, &pe) && permanentCodes[pe.Code] {
			a.log.Error("device stopped", "err", err)
			return err
		}
		if time.Since(began) > a.cfg.MaxBackoff {
			wait = 0 // the session was healthy: start the backoff afresh
		}
		wait = min(max(2*wait, a.cfg.MinBackoff), a.cfg.MaxBackoff)
		d := protocol.Jitter(wait)
		a.log.Info("session ended", "err", err, "retry_in", d.Round(time.Millisecond).String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
	}
}

// identity is the device's TLS material from the state directory.
type identity struct {
	cert *tls.Certificate // nil before enrollment
	leaf *x509.Certificate
	pool *x509.CertPool
}

func (a *Agent) loadIdentity() (identity, error) {
	var id identity
	caPEM, err := os.ReadFile(a.state.path(caFile))
	if errors.Is(err, os.ErrNotExist) {
		caPEM = a.cfg.CAPEM
	} else if err != nil {
		return id, fmt.Errorf("read CA: %w", err)
	}
	id.pool = x509.NewCertPool()
	if len(caPEM) == 0 || !id.pool.AppendCertsFromPEM(caPEM) {
		return id, errors.New("no CA certificate to trust the gateway: provision ca.crt or pass one")
	}
	certPEM, err := os.ReadFile(a.state.path(certFile))
	if errors.Is(err, os.ErrNotExist) {
		return id, nil
	} else if err != nil {
		return id, fmt.Errorf("read certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(a.state.path(keyFile))
	if err != nil {
		return id, fmt.Errorf("read key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return id, fmt.Errorf("load identity: %w", err)
	}
	id.cert, id.leaf = &cert, cert.Leaf
	return id, nil
}

func (a *Agent) dial(ctx context.Context, id identity) (*tls.Conn, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: id.pool, ServerName: a.cfg.ServerName}
	if id.cert != nil {
		cfg.Certificates = []tls.Certificate{*id.cert}
		if serial := id.leaf.SerialNumber.String(); a.ticketsFor != serial {
			a.tickets, a.ticketsFor = tls.NewLRUClientSessionCache(1), serial
		}
		cfg.ClientSessionCache = a.tickets
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: cfg}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	nc, err := d.DialContext(ctx, "tcp", a.cfg.Gateway)
	if err != nil {
		return nil, fmt.Errorf("dial gateway %s: %w", a.cfg.Gateway, err)
	}
	return nc.(*tls.Conn), nil
}

// enroll trades the token and a fresh key's CSR for a certificate and
// stores the identity.
func (a *Agent) enroll(ctx context.Context, id identity) error {
	if a.cfg.Token == "" {
		return protocol.Errorf(protocol.CodeUnauthenticated, "device %s has no certificate and no enrollment token", a.cfg.Name)
	}
	csr, keyPEM, err := pki.NewCSR(a.cfg.Name)
	if err != nil {
		return err
	}
	tc, err := a.dial(ctx, id)
	if err != nil {
		return err
	}
	conn := protocol.NewConn(tc, protocol.ConnConfig{ReadTimeout: 30 * time.Second})
	served := make(chan error, 1)
	go func() { served <- conn.Serve(ctx, func(*protocol.Message) error { return nil }) }()
	defer func() { conn.Close(); <-served }()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r, err := conn.Request(rctx, protocol.TypeEnrollRequest, &protocol.EnrollRequest{Token: a.cfg.Token, CSR: csr})
	if err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	resp, ok := r.Body.(*protocol.EnrollResponse)
	if !ok {
		return fmt.Errorf("enroll: gateway answered with %s", r.Type)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: resp.Cert})
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return fmt.Errorf("enroll: issued certificate does not match the key: %w", err)
	}
	if err := a.state.writeFile(keyFile, keyPEM); err != nil {
		return err
	}
	if err := a.state.writeFile(certFile, certPEM); err != nil {
		return err
	}
	if len(resp.CA) > 0 {
		if err := a.state.writeFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: resp.CA})); err != nil {
			return err
		}
	}
	a.log.Info("enrolled")
	return nil
}
