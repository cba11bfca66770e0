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

// keys sends tmux key names (Enter, C-]) or text that has none.
func (s *tmuxServer) keys(keys ...string) {
	s.t.Helper()
	if out, err := s.run(append([]string{"send-keys", "-t", "tui"}, keys...)...); err != nil {
		s.t.Fatalf("tmux send-keys %q: %v: %s", keys, err, out)
	}
}

// typed sends text as typed, no key names looked up in it.
func (s *tmuxServer) typed(text string) {
	s.t.Helper()
	if out, err := s.run("send-keys", "-t", "tui", "-l", text); err != nil {
		s.t.Fatalf("tmux send-keys -l %q: %v: %s", text, err, out)
	}
}

// rowsOf counts the lines of screen that show name as a word.
func rowsOf(screen, name string) int {
	n := 0
	for _, line := range strings.Split(screen, "\n") {
		for _, f := range strings.Fields(line) {
			if f == name {
				n++
				break
			}
		}
	}
	return n
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
// for the device rows, jumps to the applications and back, filters the
// devices down to one, opens it, attaches to its board's console, types
// help and sees the shell answer, detaches with ctrl+], and quits with q.
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
	// The shell around the program writes its exit status to a file:
	// tmux may mark the pane dead (its terminal closed) without ever
	// reporting the status when the process exits as the terminal closes.
	statusFile := filepath.Join(dir, "status")
	cmdline := fmt.Sprintf("env NO_COLOR=1 '%s' --daemon '%s'; echo $? >'%s'", bin, d.addr, statusFile)
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

	// Views: the applications, then the devices again.
	s.keys(":apps", "Enter")
	s.waitFor("the applications", func(screen string) bool {
		return strings.Contains(screen, "Applications (1)") && strings.Contains(screen, "sensor")
	})
	s.keys(":devices", "Enter")
	s.waitFor("the devices again", func(screen string) bool {
		return strings.Contains(screen, "Devices (2)") && rowsOf(screen, "dev-a") == 1 && rowsOf(screen, "dev-b") == 1
	})

	// Filter: only dev-b's row is left.
	s.keys("/")
	s.typed("dev-b")
	s.keys("Enter")
	screen = s.waitFor("only dev-b under /dev-b", func(screen string) bool {
		return strings.Contains(screen, "Devices (1/2) /dev-b") && rowsOf(screen, "dev-b") == 1
	})
	if n := rowsOf(screen, "dev-a"); n != 0 {
		t.Errorf("dev-a shows on %d rows under /dev-b:\n%s", n, screen)
	}

	// The device in detail, with its round trips drawn in ASCII (no
	// colors here).
	s.keys("Enter")
	screen = s.waitFor("dev-b in detail", func(screen string) bool {
		return strings.Contains(screen, "Device dev-b") && strings.Contains(screen, "Phase") && strings.Contains(screen, "RTT trend")
	})
	if strings.ContainsAny(screen, "▁▂▃▄▅▆▇█") {
		t.Errorf("the RTT trend draws blocks with NO_COLOR:\n%s", screen)
	}

	// Its console: the board's shell answers help; ctrl+] detaches back
	// to the device.
	s.keys("c")
	s.waitFor("the console attached", func(screen string) bool {
		return strings.Contains(screen, "console dev-b") && strings.Contains(screen, "attached")
	})
	s.typed("help")
	s.keys("Enter")
	s.waitFor("the shell's help", func(screen string) bool { return strings.Contains(screen, "commands:") })
	s.keys("C-]")
	s.waitFor("dev-b in detail after detaching", func(screen string) bool {
		return strings.Contains(screen, "Device dev-b") && !strings.Contains(screen, "console dev-b")
	})

	s.keys("q")
	deadline := time.Now().Add(waitLimit)
	for {
		out, err := os.ReadFile(statusFile)
		if err == nil && strings.HasSuffix(string(out), "\n") {
			if status := strings.TrimSpace(string(out)); status != "0" {
				t.Errorf("wasmbed-tui exited with status %s; the pane shows:\n%s", status, s.screen())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("wasmbed-tui did not exit after q; the pane shows:\n%s", s.screen())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for s.format("#{pane_dead}") != "1" {
		if time.Now().After(deadline) {
			t.Fatalf("the pane's shell did not end after wasmbed-tui; the pane shows:\n%s", s.screen())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The alternate screen is left: what the shell showed before is back
	// and the program printed nothing on exit.
	if got := strings.TrimSpace(s.screen()); strings.Contains(got, "Device dev-b") || strings.Contains(got, "commands:") {
		t.Errorf("the console's screen stayed after exit:\n%s", got)
	}
}
