package renode

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"wasmbed.io/wasmbed/firmware/link"
	"wasmbed.io/wasmbed/gateway/protocol"
)

// BoardLink carries the protocol of a board without a TLS stack: the
// board speaks the protocol's messages over a serial line, framed by
// package firmware/link, and the board link holds the board's provisioned
// identity and keeps the mutual-TLS session to the gateway on its behalf,
// relaying each message both ways unchanged (docs/protocol.md, "Serial
// link transport"). The gateway sees an ordinary device session under the
// board's certificate.
//
// The session is dialled when the board says hello and again after it
// ends, at the board's next hello (once the board has noticed the
// silence): the board, not the link, decides when a session starts.
// Other messages while there is no session are dropped.
type BoardLink struct {
	Spec   Spec // Gateway, ServerName and the identity
	Logger *slog.Logger
	// DialTimeout bounds one TLS dial; 10s when zero.
	DialTimeout time.Duration
}

// Run relays between the board's serial line and the gateway until ctx
// ends or the line fails; it returns nil when ctx ended.
func (l *BoardLink) Run(ctx context.Context, line io.ReadWriter) error {
	tlsCfg, err := l.tlsConfig()
	if err != nil {
		return err
	}
	log := l.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("device", l.Spec.Device, "component", "boardlink")
	dec := link.NewDecoder(line, protocol.MaxFrame)
	toBoard := link.NewEncoder(line)
	var boardMu sync.Mutex // the gateway-to-board goroutines of successive sessions

	var session *linkSession
	defer func() {
		if session != nil {
			session.conn.Close()
		}
	}()
	stop := context.AfterFunc(ctx, func() {
		if c, ok := line.(io.Closer); ok {
			c.Close()
		}
	})
	defer stop()
	for {
		payload, err := dec.Next()
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, link.ErrTooLarge) {
			log.Info("board sent a frame above the protocol's limit; dropped", "err", err)
			continue
		}
		if err != nil {
			return fmt.Errorf("board link of %s: serial line: %w", l.Spec.Device, err)
		}
		// A session the gateway ended shows as ended here, or as a failed
		// write: the message goes on a new session (it is the board's
		// hello then). A write into a session ending at that very moment
		// can still be lost; the board says hello again after its silence.
		for attempt := 0; attempt < 2; attempt++ {
			if session != nil && session.ended() {
				session = nil
			}
			if session == nil && !isHello(payload) {
				// Only a hello opens a session (a stale heartbeat or a
				// retransmission would only be refused by the gateway).
				log.Debug("no session; a message other than hello is dropped")
				break
			}
			if session == nil {
				conn, err := l.dial(ctx, tlsCfg)
				if err != nil {
					// The board retries with its next hello.
					log.Info("gateway unreachable; the message is dropped", "err", err)
					break
				}
				log.Info("session to the gateway open", "gateway", l.Spec.Gateway)
				session = &linkSession{conn: conn, done: make(chan struct{})}
				go session.relayToBoard(toBoard, &boardMu, log)
			}
			if err = protocol.WriteFrame(session.conn, payload); err == nil {
				break
			}
			log.Info("session to the gateway ended", "err", err)
			session.conn.Close()
			session = nil
		}
	}
}

// isHello reports whether payload is a hello message.
func isHello(payload []byte) bool {
	m, err := protocol.Decode(payload)
	return err == nil && m.Type == protocol.TypeHello
}

// linkSession is one TLS session to the gateway on a board's behalf.
type linkSession struct {
	conn net.Conn
	done chan struct{} // closed when the gateway's side has ended
}

func (s *linkSession) ended() bool { return closed(s.done) }

// relayToBoard copies the gateway's messages to the board until the
// session ends.
func (s *linkSession) relayToBoard(toBoard *link.Encoder, mu *sync.Mutex, log *slog.Logger) {
	defer close(s.done)
	fr := protocol.NewFrameReader(s.conn, protocol.MaxFrame)
	for {
		payload, err := fr.Next()
		if err != nil {
			log.Info("session to the gateway ended", "err", err)
			s.conn.Close()
			return
		}
		mu.Lock()
		err = toBoard.Encode(payload)
		mu.Unlock()
		if err != nil {
			s.conn.Close()
			return
		}
	}
}

func (l *BoardLink) dial(ctx context.Context, cfg *tls.Config) (net.Conn, error) {
	timeout := l.DialTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: cfg}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return d.DialContext(dctx, "tcp", l.Spec.Gateway)
}

// tlsConfig is the board's side of the mutual TLS 1.3 of docs/protocol.md.
func (l *BoardLink) tlsConfig() (*tls.Config, error) {
	cert, err := tls.X509KeyPair(l.Spec.CertPEM, l.Spec.KeyPEM)
	if err != nil {
		return nil, fmt.Errorf("board link of %s: identity: %w", l.Spec.Device, err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(l.Spec.CAPEM) {
		return nil, fmt.Errorf("board link of %s: no CA certificate in the identity", l.Spec.Device)
	}
	name := l.Spec.ServerName
	if name == "" {
		name, _, _ = net.SplitHostPort(l.Spec.Gateway)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      roots,
		ServerName:   name,
	}, nil
}
