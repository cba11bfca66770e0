// Package sshconsole serves the fleet console (package tui) over SSH, so
// that `ssh -p 2222 gateway-host` opens it without a shell account on the
// host. Each session gets a console of its own, drawn at that session's
// window size and in its terminal's color profile, talking to the daemon
// through its HTTP API like any other client. Only public keys listed in
// an authorized_keys file are let in; there is no password or
// keyboard-interactive login.
//
// The daemon runs it as one more member of its group through
// daemon.Config.SSH; this package is not imported by the daemon, which
// keeps the daemon free of the console's dependencies.
package sshconsole

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/ssh"
	"github.com/charmbracelet/wish"
	bm "github.com/charmbracelet/wish/bubbletea"
	"github.com/muesli/termenv"
	gossh "golang.org/x/crypto/ssh"

	"wasmbed.io/wasmbed/daemon/client"
	"wasmbed.io/wasmbed/tui"
)

// HostKeyFile is the name of the host key in the daemon's data directory.
const HostKeyFile = "ssh_host_ed25519_key"

// Config configures the SSH console server.
type Config struct {
	// Listen is the address to listen on, such as ":2222"; required.
	Listen string
	// AuthorizedKeys is an OpenSSH authorized_keys file; required. It is
	// read again at every login, so keys can be added and removed while
	// the daemon runs.
	AuthorizedKeys string
	// HostKey is the server's ed25519 private key (OpenSSH format),
	// created on first start when missing; required. The daemon's is
	// <data-dir>/ssh_host_ed25519_key.
	HostKey string
	// Token is the API's bearer token, when the API has one.
	Token string
	// IdleTimeout ends a session with no traffic for that long; none
	// when 0.
	IdleTimeout time.Duration
	Logger      *slog.Logger
	// Ready, when set, receives the address the server listens on (for
	// tests and scripts that listen on port 0).
	Ready func(net.Addr)
}

// Server is the SSH console server. Create it with New; its Serve is what
// daemon.Config.SSH takes.
type Server struct {
	cfg Config
	log *slog.Logger
}

// New checks cfg: the authorized_keys file must hold at least one key and
// parse, and the host key is loaded, or created when missing.
func New(cfg Config) (*Server, error) {
	if cfg.Listen == "" {
		return nil, errors.New("ssh console: a listen address is required")
	}
	if cfg.AuthorizedKeys == "" {
		return nil, errors.New("ssh console: an authorized_keys file is required (public-key login only)")
	}
	if cfg.HostKey == "" {
		return nil, errors.New("ssh console: a host key path is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	keys, err := ParseAuthorizedKeys(cfg.AuthorizedKeys)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if k.Refused != nil {
			cfg.Logger.Warn("ssh authorized key refused", "authorized_keys", cfg.AuthorizedKeys, "line", k.Line,
				"key", gossh.FingerprintSHA256(k.Key), "err", k.Refused)
		}
	}
	if err := os.MkdirAll(filepath.Dir(cfg.HostKey), 0o700); err != nil {
		return nil, fmt.Errorf("ssh console: host key: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	// The host key is made now rather than at the first Serve, so that a
	// directory it cannot be written to is reported at start.
	if _, err := s.newSSHServer(nil, ""); err != nil {
		return nil, err
	}
	return s, nil
}

// Serve listens and serves sessions until ctx ends, each with a console
// of the daemon whose API is at api. It is what daemon.Config.SSH takes.
func (s *Server) Serve(ctx context.Context, api net.Addr) error {
	base := "http://" + dialable(api)
	var opts []client.Option
	if s.cfg.Token != "" {
		opts = append(opts, client.WithToken(s.cfg.Token))
	}
	c, err := client.New(base, opts...)
	if err != nil {
		return fmt.Errorf("ssh console: %w", err)
	}
	srv, err := s.newSSHServer(c, base)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("ssh listen: %w", err)
	}
	s.log.Info("ssh console listening", "addr", ln.Addr().String(), "authorized_keys", s.cfg.AuthorizedKeys)
	if s.cfg.Ready != nil {
		s.cfg.Ready(ln.Addr())
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("ssh console: %w", err)
	case <-ctx.Done():
	}
	// Close ends every session: each console's program quits with its
	// session's context.
	srv.Close()
	if err := <-done; err != nil && !errors.Is(err, ssh.ErrServerClosed) {
		return fmt.Errorf("ssh console: %w", err)
	}
	return nil
}

// newSSHServer builds the wish server: the host key, public-key login
// against the authorized_keys file, and a console per session.
func (s *Server) newSSHServer(c *client.Client, base string) (*ssh.Server, error) {
	opts := []ssh.Option{
		wish.WithHostKeyPath(s.cfg.HostKey),
		wish.WithPublicKeyAuth(s.authorized),
		wish.WithMiddleware(
			// Middlewares run last to first: the console's program, then
			// closing its streams, then the log line of the session.
			s.closeConsole,
			bm.MiddlewareWithProgramHandler(s.program(c, base), termenv.Ascii),
			s.logSession,
		),
	}
	if s.cfg.IdleTimeout > 0 {
		opts = append(opts, wish.WithIdleTimeout(s.cfg.IdleTimeout))
	}
	srv, err := wish.NewServer(opts...)
	if err != nil {
		return nil, fmt.Errorf("ssh console: %w", err)
	}
	return srv, nil
}

// authorized lets in the keys of the authorized_keys file, read at each
// login, as their options allow: the first line with the key that lets
// the client in is the one its sessions follow (no-pty), as with sshd.
func (s *Server) authorized(ctx ssh.Context, key ssh.PublicKey) bool {
	keys, err := ParseAuthorizedKeys(s.cfg.AuthorizedKeys)
	if err != nil && len(keys) == 0 {
		s.log.Warn("ssh login refused: authorized keys unreadable", "err", err)
		return false
	}
	addr, now := remoteAddr(ctx.RemoteAddr()), time.Now()
	var why []string
	for _, k := range keys {
		if !ssh.KeysEqual(k.Key, key) {
			continue
		}
		ok, reason := k.allows(addr, now)
		if ok {
			ctx.SetValue(authorizedKeyKey{}, k)
			return true
		}
		why = append(why, fmt.Sprintf("line %d: %s", k.Line, reason))
	}
	if len(why) == 0 {
		s.log.Info("ssh login refused: unknown key", "user", ctx.User(), "remote", ctx.RemoteAddr().String(),
			"key", gossh.FingerprintSHA256(key))
		return false
	}
	s.log.Info("ssh login refused: key options", "user", ctx.User(), "remote", ctx.RemoteAddr().String(),
		"key", gossh.FingerprintSHA256(key), "reason", strings.Join(why, "; "))
	return false
}

// authorizedKeyKey holds, in a connection's context, the authorized_keys
// entry that let it in.
type authorizedKeyKey struct{}

// consoleKey holds a session's console model in its context.
type consoleKey struct{}

// program makes the console of one session: its own model, drawn with a
// renderer of that session's terminal, in the alternate screen.
func (s *Server) program(c *client.Client, base string) bm.ProgramHandler {
	return func(sess ssh.Session) *tea.Program {
		if k, ok := sess.Context().Value(authorizedKeyKey{}).(AuthorizedKey); ok && k.NoPTY {
			s.log.Info("ssh console session refused: the key may not open a terminal", "user", sess.User(),
				"remote", sess.RemoteAddr().String(), "line", k.Line)
			wish.Fatalln(sess, "this key may not open a terminal (no-pty, or restrict without pty, in authorized_keys), and the console needs one")
			return nil
		}
		if _, _, ok := sess.Pty(); !ok {
			wish.Fatalln(sess, "the console needs a terminal: ssh -t")
			return nil
		}
		m, err := tui.New(tui.Options{Client: c, Address: base, Renderer: bm.MakeRenderer(sess)})
		if err != nil {
			wish.Fatalln(sess, err)
			return nil
		}
		sess.Context().SetValue(consoleKey{}, m)
		opts := append(bm.MakeOptions(sess), tea.WithAltScreen())
		return tea.NewProgram(m, opts...)
	}
}

// closeConsole ends the streams of the session's console once its
// program has returned.
func (s *Server) closeConsole(next ssh.Handler) ssh.Handler {
	return func(sess ssh.Session) {
		if m, ok := sess.Context().Value(consoleKey{}).(*tui.Model); ok {
			m.Close()
		}
		next(sess)
	}
}

// logSession logs each session's start and end.
func (s *Server) logSession(next ssh.Handler) ssh.Handler {
	return func(sess ssh.Session) {
		start := time.Now()
		pty, _, _ := sess.Pty()
		s.log.Info("ssh console session", "user", sess.User(), "remote", sess.RemoteAddr().String(),
			"term", pty.Term, "width", pty.Window.Width, "height", pty.Window.Height)
		next(sess)
		s.log.Info("ssh console session ended", "user", sess.User(), "remote", sess.RemoteAddr().String(),
			"duration", time.Since(start).Round(time.Millisecond).String())
	}
}

// dialable is an address the console can dial for the API's listen
// address: loopback for an unspecified host.
func dialable(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
