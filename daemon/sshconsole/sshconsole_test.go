package sshconsole_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon"
	"wasmbed.io/wasmbed/daemon/client"
	"wasmbed.io/wasmbed/daemon/sshconsole"
)

const waitLimit = 60 * time.Second

// need returns the path of a program the test drives, or skips.
func need(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (apt-get install %s)", name, pkg)
	}
	return p
}

// keygen makes an ed25519 key pair at path and path.pub.
func keygen(t *testing.T, bin, path string) {
	t.Helper()
	if out, err := exec.Command(bin, "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
}

// logBuffer collects a logger's lines; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startDaemon runs a daemon in the test with the SSH console on a
// loopback port, logging to log, and returns the console's address and a
// client of the API.
func startDaemon(t *testing.T, dataDir, authorizedKeys string, log *slog.Logger) (string, *client.Client) {
	t.Helper()
	// The sim backend wants a device binary; no board runs here.
	fake := filepath.Join(t.TempDir(), "wasmbed-device")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	sshReady := make(chan net.Addr, 1)
	srv, err := sshconsole.New(sshconsole.Config{
		Listen: "127.0.0.1:0", AuthorizedKeys: authorizedKeys,
		HostKey: filepath.Join(dataDir, sshconsole.HostKeyFile),
		Ready:   func(a net.Addr) { sshReady <- a },
		Logger:  log,
	})
	if err != nil {
		t.Fatal(err)
	}
	apiReady := make(chan net.Addr, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.Config{
			DataDir: dataDir, APIListen: "127.0.0.1:0", GatewayListen: "127.0.0.1:0",
			GatewayName: "gw-test", DeviceBinary: fake, SSH: srv.Serve,
			Logger: slog.New(slog.DiscardHandler),
			Ready:  func(a, _ net.Addr) { apiReady <- a },
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("daemon: %v", err)
			}
		case <-time.After(waitLimit):
			t.Errorf("the daemon did not stop within %s", waitLimit)
		}
	})
	var apiAddr, sshAddr net.Addr
	for apiAddr == nil || sshAddr == nil {
		select {
		case apiAddr = <-apiReady:
		case sshAddr = <-sshReady:
		case err := <-done:
			t.Fatalf("daemon did not start: %v", err)
		case <-time.After(waitLimit):
			t.Fatal("the daemon and its SSH console did not listen")
		}
	}
	c, err := client.New("http://" + apiAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	return sshAddr.String(), c
}

// sshArgs are the OpenSSH client's arguments to log in to addr with key,
// touching nothing of the user's configuration or known hosts.
func sshArgs(key, addr string, extra ...string) []string {
	host, port, _ := net.SplitHostPort(addr)
	args := []string{"-F", "/dev/null", "-i", key, "-p", port,
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"}
	args = append(args, extra...)
	return append(args, "user@"+host)
}

// tmux is a tmux server of the test's own socket.
type tmux struct {
	t         *testing.T
	bin, sock string
	conf      string
}

func (s *tmux) run(args ...string) (string, error) {
	out, err := exec.Command(s.bin, append([]string{"-S", s.sock, "-f", s.conf}, args...)...).CombinedOutput()
	return string(out), err
}

func (s *tmux) screen() string {
	out, _ := s.run("capture-pane", "-p", "-t", "console")
	return out
}

func (s *tmux) waitFor(what string, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			s.t.Fatalf("never: %s; the pane shows:\n%s", what, s.screen())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSSHConsole logs in with the OpenSSH client inside a detached tmux
// session at 80x24, sees the devices view, quits with q and sees the
// session end. The key that logs in carries restrict,pty and a from= that
// lets loopback in. Then what authorized_keys refuses is refused: a key
// not in it, a key whose from= excludes 127.0.0.1, a key with no-pty (its
// session is ended with why) and a key with command= (refused when the
// file is loaded, and logged).
func TestSSHConsole(t *testing.T) {
	sshBin := need(t, "ssh", "openssh-client")
	keygenBin := need(t, "ssh-keygen", "openssh-client")
	tmuxBin := need(t, "tmux", "tmux")

	dir := t.TempDir()
	key, stranger := filepath.Join(dir, "id_ed25519"), filepath.Join(dir, "stranger")
	fenced, noPTY, forced := filepath.Join(dir, "fenced"), filepath.Join(dir, "nopty"), filepath.Join(dir, "forced")
	for _, k := range []string{key, stranger, fenced, noPTY, forced} {
		keygen(t, keygenBin, k)
	}
	pub := func(path string) string {
		b, err := os.ReadFile(path + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	authorized := filepath.Join(dir, "authorized_keys")
	lines := "# the console's users\n\n" +
		`restrict,pty,from="127.0.0.0/8,::1" ` + pub(key) +
		`from="!127.0.0.1,*" ` + pub(fenced) +
		"no-pty " + pub(noPTY) +
		`command="uptime" ` + pub(forced)
	if err := os.WriteFile(authorized, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	dataDir := filepath.Join(dir, "data")
	addr, c := startDaemon(t, dataDir, authorized, slog.New(slog.NewTextHandler(&logs, nil)))
	if _, err := os.Stat(filepath.Join(dataDir, sshconsole.HostKeyFile)); err != nil {
		t.Errorf("host key: %v", err)
	}
	// The key with command= is refused as the file is loaded.
	if got := logs.String(); !strings.Contains(got, "ssh authorized key refused") || !strings.Contains(got, "line=6") ||
		!strings.Contains(got, "command= runs a command") {
		t.Errorf("the key with command= was not refused at load; the log:\n%s", got)
	}
	if _, err := c.CreateDevice(context.Background(), &v1alpha1.Device{
		ObjectMeta: metav1.ObjectMeta{Name: "ssh-dev", Labels: map[string]string{"room": "lab"}},
		Spec:       v1alpha1.DeviceSpec{Board: "mps2-an385"},
	}); err != nil {
		t.Fatal(err)
	}

	s := &tmux{t: t, bin: tmuxBin, sock: filepath.Join(dir, "tmux.sock"), conf: filepath.Join(dir, "tmux.conf")}
	if err := os.WriteFile(s.conf, []byte("set -g status off\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.run("kill-server")
		if out, err := s.run("list-sessions"); err == nil {
			t.Errorf("the tmux server still runs after kill-server: %s", out)
		}
	})
	// The pane's shell runs ssh and says how it ended, then waits for
	// kill-server.
	cmdline := sshBin + " -tt " + strings.Join(sshArgs(key, addr), " ") + "; echo ssh exited $?; exec sleep 600"
	if out, err := s.run("new-session", "-d", "-s", "console", "-x", "80", "-y", "24", cmdline); err != nil {
		t.Fatalf("tmux new-session: %v: %s", err, out)
	}
	s.waitFor("the devices view", func() bool {
		sc := s.screen()
		return strings.Contains(sc, "Devices (1)") && strings.Contains(sc, "ssh-dev") &&
			strings.Contains(sc, "NAME") && strings.Contains(sc, "mps2-an385")
	})
	// The console draws at the session's window size: its lines fill the
	// 80 columns of the pane and no more.
	for i, line := range strings.Split(strings.TrimRight(s.screen(), "\n"), "\n") {
		if n := len([]rune(line)); n > 80 {
			t.Errorf("line %d is %d columns wide: %q", i, n, line)
		}
	}
	// A resized window reaches the session's console, which redraws at
	// the new width: the header's right end moves to column 120.
	if out, err := s.run("resize-window", "-t", "console", "-x", "120", "-y", "30"); err != nil {
		t.Fatalf("tmux resize-window: %v: %s", err, out)
	}
	s.waitFor("the console redrawn at 120 columns", func() bool {
		for _, line := range strings.Split(s.screen(), "\n") {
			if strings.Contains(line, "updated") && len([]rune(strings.TrimRight(line, " "))) > 100 {
				return true
			}
		}
		return false
	})
	if out, err := s.run("send-keys", "-t", "console", "q"); err != nil {
		t.Fatalf("send-keys: %v: %s", err, out)
	}
	// The shell around ssh prints its exit status once it has ended.
	s.waitFor("the ssh session to end", func() bool { return strings.Contains(s.screen(), "ssh exited") })
	if sc := s.screen(); !strings.Contains(sc, "ssh exited 0") {
		t.Errorf("ssh did not exit with 0; the pane shows:\n%s", sc)
	}

	// A key not in authorized_keys, one whose from= excludes the
	// client's address and one with command= are refused, and public
	// keys are the only way in.
	for _, k := range []struct{ name, path, log string }{
		{"an unknown key", stranger, "ssh login refused: unknown key"},
		{"a key whose from= excludes 127.0.0.1", fenced, `the client's address is not in from=\"!127.0.0.1,*\"`},
		{"a key with command=", forced, "command= runs a command"},
	} {
		var stderr bytes.Buffer
		cmd := exec.Command(sshBin, append([]string{"-T"}, sshArgs(k.path, addr, "-o", "ConnectTimeout=10")...)...)
		cmd.Stderr = &stderr
		err := cmd.Run()
		if err == nil {
			t.Errorf("ssh with %s succeeded", k.name)
			continue
		}
		if got := stderr.String(); !strings.Contains(got, "Permission denied (publickey)") {
			t.Errorf("ssh with %s: %v: %s; want Permission denied (publickey)", k.name, err, got)
		}
		if got := logs.String(); !strings.Contains(got, k.log) {
			t.Errorf("ssh with %s: the log does not say %q:\n%s", k.name, k.log, got)
		}
	}

	// A key with no-pty logs in, but may not open a terminal: its
	// session says so and ends.
	var out bytes.Buffer
	cmd := exec.Command(sshBin, append([]string{"-tt"}, sshArgs(noPTY, addr, "-o", "ConnectTimeout=10")...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err == nil {
		t.Errorf("ssh with a no-pty key ended well; it said: %s", out.String())
	}
	if got := out.String(); !strings.Contains(got, "this key may not open a terminal") {
		t.Errorf("ssh with a no-pty key said %q, want why it may not open the console", got)
	}
}

// TestNewRefuses checks what New wants before the daemon starts.
func TestNewRefuses(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	bad := filepath.Join(dir, "bad")
	forced := filepath.Join(dir, "forced")
	os.WriteFile(empty, []byte("# nobody\n"), 0o600)
	os.WriteFile(bad, []byte("ssh-ed25519 notbase64!\n"), 0o600)
	// A valid key (its private half thrown away) that a forced command
	// makes unusable here.
	os.WriteFile(forced, []byte(`command="uptime" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII8EG3c4OSU9/SGrijDpnsrB3vWk8pErf1oIkIXhAzhg someone@host`+"\n"), 0o600)
	hostKey := filepath.Join(dir, sshconsole.HostKeyFile)
	for _, tc := range []struct {
		name string
		cfg  sshconsole.Config
		want string
	}{
		{"no listen", sshconsole.Config{AuthorizedKeys: empty, HostKey: hostKey}, "listen address"},
		{"no keys file", sshconsole.Config{Listen: ":0", HostKey: hostKey}, "authorized_keys file is required"},
		{"missing keys file", sshconsole.Config{Listen: ":0", AuthorizedKeys: filepath.Join(dir, "none"), HostKey: hostKey}, "no such file"},
		{"no key in it", sshconsole.Config{Listen: ":0", AuthorizedKeys: empty, HostKey: hostKey}, "no key in it"},
		{"bad key", sshconsole.Config{Listen: ":0", AuthorizedKeys: bad, HostKey: hostKey}, "line 1"},
		{"only keys it refuses", sshconsole.Config{Listen: ":0", AuthorizedKeys: forced, HostKey: hostKey}, "no key the console can honour (line 1: option not honoured: command="},
	} {
		_, err := sshconsole.New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	if _, err := os.Stat(hostKey); err == nil {
		t.Errorf("a refused config wrote the host key")
	}
}
