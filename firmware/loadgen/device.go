// Package loadgen simulates devices at fleet scale, for the fleet
// benchmarks (cmd/wasmbed-loadgen). A simulated device speaks the real
// protocol over real TLS 1.3 with a certificate of its own: it enrolls
// with a token and a CSR, says hello, heartbeats on the welcome's
// interval, takes deploys and chunks with a sha256 check, and reports its
// apps up to running, but executes no WebAssembly, so that one process
// holds thousands. It reconnects with jitter when a session ends.
package loadgen

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"math/rand/v2"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"wasmbed.io/wasmbed/gateway/pki"
	"wasmbed.io/wasmbed/gateway/protocol"
)

// Config is where simulated devices connect, shared by all of them.
type Config struct {
	Gateway    string         // host:port
	ServerName string         // name in the gateway's certificate
	Pool       *x509.CertPool // the gateway's CA
	// Source is the local address to dial from (127.0.0.2, ...), to go
	// past the ports one address has; nil lets the system choose.
	Source net.IP
	Board  string // board type in hello; mps2-an385
	Stats  *Stats // counters shared by the devices; nil counts nothing
}

// Stats counts what a population of simulated devices does. Safe for
// concurrent use.
type Stats struct {
	Online     atomic.Int64 // sessions up now
	Sessions   atomic.Int64 // sessions opened
	Failures   atomic.Int64 // dials, handshakes or hellos that failed
	Heartbeats atomic.Int64 // heartbeats answered
	Installed  atomic.Int64 // modules received whole and verified
}

const (
	dialTimeout  = 15 * time.Second
	helloTimeout = 30 * time.Second
	// maxModule is the module size simulated devices accept.
	maxModule = 16 << 20
)

// dial opens a TLS connection to the gateway, with cert when it is not
// nil, resuming a session from tickets when it holds one.
func (c Config) dial(ctx context.Context, cert *tls.Certificate, tickets tls.ClientSessionCache) (*tls.Conn, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: c.Pool, ServerName: c.ServerName, ClientSessionCache: tickets}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	nd := &net.Dialer{Timeout: dialTimeout}
	if c.Source != nil {
		nd.LocalAddr = &net.TCPAddr{IP: c.Source}
	}
	d := tls.Dialer{NetDialer: nd, Config: tc}
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	nc, err := d.DialContext(ctx, "tcp", c.Gateway)
	if err != nil {
		return nil, fmt.Errorf("dial gateway %s: %w", c.Gateway, err)
	}
	return nc.(*tls.Conn), nil
}

// Enroll trades a one-time token and a fresh key's CSR for device's
// certificate, and returns the certificate and key as PEM.
func Enroll(ctx context.Context, cfg Config, device, token string) (certPEM, keyPEM []byte, err error) {
	csr, keyPEM, err := pki.NewCSR(device)
	if err != nil {
		return nil, nil, err
	}
	tc, err := cfg.dial(ctx, nil, nil)
	if err != nil {
		return nil, nil, err
	}
	conn := protocol.NewConn(tc, protocol.ConnConfig{ReadTimeout: helloTimeout})
	served := make(chan error, 1)
	go func() { served <- conn.Serve(ctx, func(*protocol.Message) error { return nil }) }()
	defer func() { conn.Close(); <-served }()
	rctx, cancel := context.WithTimeout(ctx, helloTimeout)
	defer cancel()
	r, err := conn.Request(rctx, protocol.TypeEnrollRequest, &protocol.EnrollRequest{Token: token, CSR: csr})
	if err != nil {
		return nil, nil, fmt.Errorf("enroll %s: %w", device, err)
	}
	resp, ok := r.Body.(*protocol.EnrollResponse)
	if !ok {
		return nil, nil, fmt.Errorf("enroll %s: gateway answered with %s", device, r.Type)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: resp.Cert}), keyPEM, nil
}

// Device is one simulated device. Run it once.
type Device struct {
	Name string
	Cert tls.Certificate
	// tickets resumes the device's TLS session on a reconnect, as the
	// device runtime does.
	tickets tls.ClientSessionCache

	mu        sync.Mutex
	apps      map[string]protocol.AppInfo // what it runs, by app
	transfers map[string]*transfer        // modules on their way, by app
}

type transfer struct {
	d        protocol.Deploy
	received uint64
	sum      hash.Hash
}

// NewDevice returns the device name with the identity certPEM and keyPEM.
func NewDevice(name string, certPEM, keyPEM []byte) (*Device, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("identity of %s: %w", name, err)
	}
	return &Device{Name: name, Cert: cert, tickets: tls.NewLRUClientSessionCache(1), apps: map[string]protocol.AppInfo{}, transfers: map[string]*transfer{}}, nil
}

// Run holds the device's session until ctx ends, reconnecting after
// a jittered, growing pause when one ends or cannot be opened. It
// returns nil when ctx ends, and the gateway's error when it refuses the
// device for good (unauthenticated, revoked).
func (d *Device) Run(ctx context.Context, cfg Config) error {
	if cfg.Stats == nil {
		cfg.Stats = &Stats{}
	}
	backoff := protocol.Backoff{Initial: 500 * time.Millisecond, Max: 15 * time.Second}
	wait := time.Duration(0)
	for ctx.Err() == nil {
		up, err := d.session(ctx, cfg)
		var pe *protocol.Error
		if errors.As(err, &pe) && (pe.Code == protocol.CodeUnauthenticated || pe.Code == protocol.CodeRevoked) {
			return err
		}
		if up {
			wait = 0
		} else {
			cfg.Stats.Failures.Add(1)
			wait = backoff.Next(wait)
		}
		select {
		case <-ctx.Done():
		case <-time.After(protocol.Jitter(max(wait, backoff.Initial))):
		}
	}
	return nil
}

// session runs one session and reports whether it got past hello.
func (d *Device) session(ctx context.Context, cfg Config) (bool, error) {
	tc, err := cfg.dial(ctx, &d.Cert, d.tickets)
	if err != nil {
		return false, err
	}
	conn := protocol.NewConn(tc, protocol.ConnConfig{ReadTimeout: helloTimeout})
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- conn.Serve(sctx, d.handle(conn, cfg.Stats)) }()

	board := cfg.Board
	if board == "" {
		board = "mps2-an385"
	}
	hctx, hcancel := context.WithTimeout(sctx, helloTimeout)
	r, err := conn.Request(hctx, protocol.TypeHello, &protocol.Hello{
		Device: d.Name, Board: board, Firmware: "loadgen", Apps: d.report(),
		MinVersion: protocol.Version, MaxVersion: protocol.Version, MaxModule: maxModule,
		CertExpiry: d.Cert.Leaf.NotAfter.Unix(),
	})
	hcancel()
	if err != nil {
		conn.Close()
		if serr := <-served; errors.Is(err, protocol.ErrClosed) && serr != nil {
			return false, serr
		}
		return false, fmt.Errorf("hello: %w", err)
	}
	w, ok := r.Body.(*protocol.Welcome)
	if !ok {
		conn.Close()
		<-served
		return false, fmt.Errorf("hello: gateway answered with %s", r.Type)
	}
	conn.SetVersion(w.Version)
	if w.TimeoutMS > 0 {
		conn.SetReadTimeout(time.Duration(w.TimeoutMS) * time.Millisecond)
	}
	cfg.Stats.Sessions.Add(1)
	cfg.Stats.Online.Add(1)
	defer cfg.Stats.Online.Add(-1)
	go heartbeat(sctx, conn, time.Duration(w.HeartbeatMS)*time.Millisecond, time.Duration(w.TimeoutMS)*time.Millisecond, cfg.Stats)
	return true, <-served
}

// heartbeat sends Heartbeat every interval, the first after a random part
// of it (so that a fleet that connected together does not beat
// together), and ends the session when one goes unanswered for timeout.
// Stats counts a heartbeat answered when the next one goes out.
func heartbeat(ctx context.Context, conn *protocol.Conn, interval, timeout time.Duration, stats *Stats) {
	if interval <= 0 {
		return
	}
	err := conn.Heartbeats(ctx, interval, timeout, rand.N(interval), func(seq uint64, rtt time.Duration) *protocol.Heartbeat {
		if seq > 1 {
			stats.Heartbeats.Add(1)
		}
		return &protocol.Heartbeat{Seq: seq, RTTMicro: uint64(rtt.Microseconds())}
	})
	if err != nil {
		conn.Close()
	}
}

// report lists the apps the device runs, sorted by name.
func (d *Device) report() []protocol.AppInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]protocol.AppInfo, 0, len(d.apps))
	for _, a := range d.apps {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App < out[j].App })
	return out
}

// handle answers the gateway's commands as a device would, without
// running anything: a module received whole and matching its sha256 runs.
func (d *Device) handle(conn *protocol.Conn, stats *Stats) protocol.Handler {
	return func(m *protocol.Message) error {
		switch b := m.Body.(type) {
		case *protocol.Deploy:
			st, err := d.deploy(b)
			if err != nil {
				return conn.ReplyError(m, err)
			}
			if err := conn.Reply(m, protocol.TypeDeployStatus, st); err != nil {
				return err
			}
			if st.State == protocol.StateRunning {
				d.mu.Lock()
				info := d.apps[b.App]
				d.mu.Unlock()
				return conn.Notify(protocol.TypeAppStatus, &info)
			}
			if st.Received == b.Size {
				return d.install(conn, *b, stats)
			}
			return nil
		case *protocol.Chunk:
			done, err := d.chunk(b)
			if err != nil {
				return conn.ReplyError(m, err)
			}
			if err := conn.Reply(m, protocol.TypeAck, &protocol.Ack{}); err != nil {
				return err
			}
			if done != nil {
				return d.install(conn, *done, stats)
			}
			return nil
		case *protocol.AppRef:
			d.command(m.Type, b.App)
			if err := conn.Reply(m, protocol.TypeAck, &protocol.Ack{}); err != nil {
				return err
			}
			d.mu.Lock()
			info, ok := d.apps[b.App]
			d.mu.Unlock()
			if ok {
				return conn.Notify(protocol.TypeAppStatus, &info)
			}
			return nil
		case *protocol.Console:
			return nil
		}
		return conn.ReplyError(m, protocol.Errorf(protocol.CodeUnexpected, "%s is not sent by gateways", m.Type))
	}
}

func (d *Device) deploy(b *protocol.Deploy) (*protocol.DeployStatus, error) {
	if len(b.SHA256) != sha256.Size || b.Version == "" || b.Size == 0 {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "deploy needs a version, a 32-byte sha256 and a size")
	}
	if b.Size > maxModule {
		return nil, protocol.Errorf(protocol.CodeTooLarge, "module of %d bytes exceeds this device's limit of %d", b.Size, maxModule)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	st := &protocol.DeployStatus{App: b.App, Version: b.Version, SHA256: b.SHA256}
	if a, ok := d.apps[b.App]; ok && bytes.Equal(a.SHA256, b.SHA256) {
		// Installed: a new version name or new limits relabel it.
		st.State, st.Received = a.State, b.Size
		a.Version, a.Limits = b.Version, b.Limits
		d.apps[b.App] = a
		return st, nil
	}
	t := d.transfers[b.App]
	if t == nil || !bytes.Equal(t.d.SHA256, b.SHA256) {
		t = &transfer{d: *b, sum: sha256.New()}
		d.transfers[b.App] = t
	}
	st.State, st.Received = protocol.StateTransferring, t.received
	return st, nil
}

// chunk takes a chunk, and returns the deploy once its module is whole.
func (d *Device) chunk(c *protocol.Chunk) (*protocol.Deploy, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.transfers[c.App]
	if t == nil || !bytes.Equal(t.d.SHA256, c.SHA256) {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "no transfer of that module for app %q: send deploy first", c.App)
	}
	end := c.Offset + uint64(len(c.Data))
	switch {
	case c.Offset > t.d.Size || end > t.d.Size:
		return nil, protocol.Errorf(protocol.CodeBadRequest, "chunk of %d bytes at %d is past the module's %d bytes", len(c.Data), c.Offset, t.d.Size)
	case end <= t.received:
		return nil, nil // a retransmission
	case c.Offset != t.received:
		return nil, protocol.Errorf(protocol.CodeBadRequest, "chunk at offset %d, expected %d", c.Offset, t.received)
	}
	t.sum.Write(c.Data)
	t.received = end
	if end < t.d.Size {
		return nil, nil
	}
	delete(d.transfers, c.App)
	if !bytes.Equal(t.sum.Sum(nil), t.d.SHA256) {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "module of app %q does not match its sha256", c.App)
	}
	dep := t.d
	return &dep, nil
}

// install reports a verified module running.
func (d *Device) install(conn *protocol.Conn, dep protocol.Deploy, stats *Stats) error {
	info := protocol.AppInfo{App: dep.App, Version: dep.Version, SHA256: dep.SHA256, State: protocol.StateRunning, Limits: dep.Limits}
	d.mu.Lock()
	if old, ok := d.apps[dep.App]; ok && !bytes.Equal(old.SHA256, dep.SHA256) {
		info.Previous = old.Version
	}
	d.apps[dep.App] = info
	d.mu.Unlock()
	stats.Installed.Add(1)
	return conn.Notify(protocol.TypeAppStatus, &info)
}

// command starts, stops or removes an app.
func (d *Device) command(t protocol.Type, app string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t == protocol.TypeRemove {
		delete(d.apps, app)
		delete(d.transfers, app)
		return
	}
	a, ok := d.apps[app]
	if !ok {
		return
	}
	switch t {
	case protocol.TypeStart:
		a.State = protocol.StateRunning
	case protocol.TypeStop:
		a.State = protocol.StateStopped
	}
	d.apps[app] = a
}
