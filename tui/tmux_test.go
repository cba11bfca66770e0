package tui

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tmuxServer is a tmux server of the test's own (its own socket), so that
// nothing of the user's tmux is touched and killing it leaves nothing
// behind.
type tmuxServer struct {
	t    *testing.T
	bin  string
	sock string
	conf string
}

func (s *tmuxServer) run(args ...string) (string, error) {
	cmd := exec.Command(s.bin, append([]string{"-S", s.sock, "-f", s.conf}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// screen is the visible text of the session's pane.
func (s *tmuxServer) screen() string {
	out, err := s.run("capture-pane", "-p", "-t", "tui")
	if err != nil {
		return "capture-pane: " + err.Error() + ": " + out
	}
	return out
}

// waitFor polls the pane until cond holds.
func (s *tmuxServer) waitFor(what string, cond func(screen string) bool) string {
	s.t.Helper()
	deadline := time.Now().Add(waitLimit)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		screen := s.screen()
		if cond(screen) {
			return screen
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the pane never showed %s; it shows:\n%s", what, screen)
		}
		<-tick.C
	}
}

func (s *tmuxServer) format(f string) string {
	out, err := s.run("display-message", "-p", "-t", "tui", f)
	if err != nil {
		s.t.Fatalf("tmux display-message %s: %v: %s", f, err, out)
	}
	return strings.TrimSpace(out)
}

// TestTmux runs the built wasmbed-tui binary in a detached tmux session
// at 80x24 against the fleet's daemon, as a user would over ssh: it waits
// for the device rows, jumps to the applications, and quits with q.
func TestTmux(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux is not installed (apt-get install tmux); this test drives the wasmbed-tui binary inside it")
	}
	d := fleet(t)
	bin := filepath.Join(binDir, "wasmbed-tui")
	build := exec.Command("go", "build", "-o", bin, "./cmd/wasmbed-tui")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build wasmbed-tui: %v\n%s", err, out)
	}

	dir := t.TempDir()
	s := &tmuxServer{t: t, bin: tmux, sock: filepath.Join(dir, "sock"), conf: filepath.Join(dir, "tmux.conf")}
	// The pane stays after the program exits, so that its exit status
	// and last screen can be read; no status line takes a row.
	if err := os.WriteFile(s.conf, []byte("set -g remain-on-exit on\nset -g status off\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.run("kill-server")
		if out, err := s.run("list-sessions"); err == nil {
			t.Errorf("the tmux server still runs after kill-server: %s", out)
		}
	})
	cmdline := fmt.Sprintf("exec env NO_COLOR=1 %s --daemon %s", bin, d.addr)
	if out, err := s.run("new-session", "-d", "-s", "tui", "-x", "80", "-y", "24", cmdline); err != nil {
		t.Fatalf("tmux new-session: %v: %s", err, out)
	}
	if got := s.format("#{pane_width}x#{pane_height}"); got != "80x24" {
		t.Fatalf("pane is %s, want 80x24", got)
	}

	screen := s.waitFor("dev-a and dev-b online", func(screen string) bool {
		online := 0
		for _, line := range strings.Split(screen, "\n") {
			if (strings.Contains(line, " dev-a ") || strings.Contains(line, " dev-b ")) && strings.Contains(line, "Online") {
				online++
			}
		}
		return online == 2
	})
	if !strings.Contains(screen, "devices 2/2 online") {
		t.Errorf("header does not count both devices online:\n%s", screen)
	}

	if out, err := s.run("send-keys", "-t", "tui", ":apps", "Enter"); err != nil {
		t.Fatalf("send-keys: %v: %s", err, out)
	}
	s.waitFor("the applications", func(screen string) bool {
		return strings.Contains(screen, "Applications (1)") && strings.Contains(screen, "sensor")
	})

	if out, err := s.run("send-keys", "-t", "tui", "q"); err != nil {
		t.Fatalf("send-keys: %v: %s", err, out)
	}
	deadline := time.Now().Add(waitLimit)
	for s.format("#{pane_dead}") != "1" {
		if time.Now().After(deadline) {
			t.Fatalf("wasmbed-tui did not exit after q; the pane shows:\n%s", s.screen())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if status := s.format("#{pane_dead_status}"); status != "0" {
		t.Errorf("wasmbed-tui exited with status %s; the pane shows:\n%s", status, s.screen())
	}
	// The alternate screen is left: what the shell showed before is back
	// and the program printed nothing on exit.
	if got := strings.TrimSpace(s.screen()); strings.Contains(got, "Applications") {
		t.Errorf("the console's screen stayed after exit:\n%s", got)
	}
}
