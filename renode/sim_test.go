package renode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"wasmbed.io/wasmbed/gateway/pki"
)

// The sim tests run the real wasmbed-device, built once per test binary
// into a directory TestMain removes.
var deviceBin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if deviceBin.dir != "" {
		os.RemoveAll(deviceBin.dir)
	}
	os.Exit(code)
}

func deviceBinary(t *testing.T) string {
	t.Helper()
	deviceBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "wasmbed-renode-test-")
		if err != nil {
			deviceBin.err = err
			return
		}
		deviceBin.dir = dir
		path := filepath.Join(dir, "wasmbed-device")
		cmd := exec.Command("go", "build", "-o", path, "./cmd/wasmbed-device")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			deviceBin.err = fmt.Errorf("go build ./cmd/wasmbed-device: %v\n%s", err, out)
			return
		}
		deviceBin.path = path
	})
	if deviceBin.err != nil {
		t.Fatal(deviceBin.err)
	}
	return deviceBin.path
}

// newSim makes a Sim on dir whose boards are all stopped when the test ends.
func newSim(t *testing.T, dir string, backoff time.Duration) *Sim {
	t.Helper()
	s, err := NewSim(SimConfig{DeviceBinary: deviceBinary(t), Dir: dir, RestartBackoff: backoff})
	if err != nil {
		t.Fatalf("NewSim: %v", err)
	}
	t.Cleanup(func() {
		s.mu.Lock()
		var devices []string
		for d := range s.boards {
			devices = append(devices, d)
		}
		s.mu.Unlock()
		for _, d := range devices {
			pid, _ := strconv.Atoi(s.Status(d).ID)
			if err := s.Stop(context.Background(), d); err != nil {
				t.Errorf("cleanup: Stop(%s) = %v", d, err)
			}
			if pid > 0 && syscall.Kill(pid, 0) != syscall.ESRCH {
				t.Errorf("cleanup: board %s (pid %d) still exists", d, pid)
			}
		}
	})
	return s
}

// runSim runs s.Run until the test ends and checks it returns nil.
func runSim(t *testing.T, s *Sim) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	})
}

// testIdentity is a device identity from a real CA.
type testIdentity struct{ cert, key, ca []byte }

func newIdentity(t *testing.T, device string) testIdentity {
	t.Helper()
	ca, err := pki.Open(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatalf("pki.Open: %v", err)
	}
	cert, key, err := ca.ProvisionDevice(device)
	if err != nil {
		t.Fatalf("ProvisionDevice: %v", err)
	}
	return testIdentity{cert, key, ca.CACertPEM()}
}

// deadAddress is a loopback address nobody listens on: the device just
// keeps retrying its gateway.
func deadAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func testSpec(t *testing.T, device, board string) Spec {
	t.Helper()
	b, err := LookupBoard(board)
	if err != nil {
		t.Fatal(err)
	}
	id := newIdentity(t, device)
	return Spec{
		Device: device, Board: b, Gateway: deadAddress(t), ServerName: "gateway.test",
		CertPEM: id.cert, KeyPEM: id.key, CAPEM: id.ca,
		Labels: map[string]string{"room": "lab"},
	}
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitConsole(t *testing.T, c *Console, text string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%q on the console", text), func() bool {
		return bytes.Contains(c.History(), []byte(text))
	})
}

func runningPID(t *testing.T, s *Sim, device string) int {
	t.Helper()
	var pid int
	waitFor(t, device+" running", func() bool {
		st := s.Status(device)
		pid, _ = strconv.Atoi(st.ID)
		return st.State == Running && pid > 0
	})
	return pid
}

func gone(pid int) bool { return syscall.Kill(pid, 0) == syscall.ESRCH }

func TestSimBoard(t *testing.T) {
	dir := t.TempDir()
	s := newSim(t, dir, 0)
	runSim(t, s)
	ctx := context.Background()
	spec := testSpec(t, "dev-1", "stm32f746g-disco")

	if st := s.Status("dev-1"); st.State != Stopped || st.Backend != "sim" {
		t.Fatalf("Status before Start = %+v, want Stopped on sim", st)
	}
	if _, err := s.Console("dev-1"); !errors.Is(err, ErrNoBoard) {
		t.Fatalf("Console before Start = %v, want ErrNoBoard", err)
	}
	if err := s.Start(ctx, spec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	pid := runningPID(t, s, "dev-1")
	if st := s.Status("dev-1"); st.Device != "dev-1" || st.Started.IsZero() {
		t.Errorf("Status = %+v, want device dev-1 and a start time", st)
	}

	t.Run("identity and pid file", func(t *testing.T) {
		for name, want := range map[string][]byte{"device.crt": spec.CertPEM, "device.key": spec.KeyPEM, "ca.crt": spec.CAPEM} {
			path := filepath.Join(dir, "dev-1", name)
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s: %v, content matches: %v", name, err, bytes.Equal(got, want))
				continue
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
				t.Errorf("%s mode %v, want 0600", name, fi.Mode().Perm())
			}
		}
		if got, err := readPIDFile(filepath.Join(dir, "dev-1", PIDFile)); err != nil || got != pid {
			t.Errorf("pid file = %d, %v; want %d", got, err, pid)
		}
	})

	t.Run("board process", func(t *testing.T) {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			t.Fatal(err)
		}
		args := strings.Join(strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")[1:], " ")
		for _, want := range []string{
			"--name dev-1", "--board stm32f746g-disco", "--gateway " + spec.Gateway,
			"--server-name gateway.test", "--state-dir " + filepath.Join(dir, "dev-1"),
			"--capabilities wasm,wasi,ethernet", "--firmware sim/stm32f746g-disco",
		} {
			if !strings.Contains(args, want) {
				t.Errorf("command line %q lacks %q", args, want)
			}
		}
		if d, ok := inspectBoard(pid); !ok || d != s.id {
			t.Errorf("inspectBoard(%d) = %q, %v; want %q, true", pid, d, ok, s.id)
		}
		if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
			t.Errorf("process group %d, %v; want its own (%d)", pgid, err, pid)
		}
	})

	c, err := s.Console("dev-1")
	if err != nil {
		t.Fatalf("Console: %v", err)
	}
	t.Run("console shows the device logs", func(t *testing.T) {
		waitConsole(t, c, "session ended")
		waitConsole(t, c, "retry")
	})

	t.Run("console input reaches the shell", func(t *testing.T) {
		_, live, cancel := c.Subscribe()
		defer cancel()
		if err := c.Input([]byte("help\r")); err != nil {
			t.Fatalf("Input: %v", err)
		}
		// The shell echoes what it reads (the terminal itself is raw and
		// does not), then answers.
		var got []byte
		echoWait := time.After(10 * time.Second)
		deadline := time.After(30 * time.Second)
		for !bytes.Contains(got, []byte("commands:")) {
			select {
			case p, ok := <-live:
				if !ok {
					t.Fatalf("console ended; got %q", got)
				}
				got = append(got, p...)
			case <-echoWait:
				if !bytes.Contains(got, []byte("help")) {
					t.Skip("wasmbed-device does not read console input from its standard input (no echo of typed input)")
				}
			case <-deadline:
				t.Fatalf("no shell answer to help; console after input: %q", got)
			}
		}
	})

	t.Run("start is idempotent", func(t *testing.T) {
		if err := s.Start(ctx, spec); err != nil {
			t.Fatalf("second Start: %v", err)
		}
		if got := runningPID(t, s, "dev-1"); got != pid {
			t.Errorf("second Start changed the pid from %d to %d", pid, got)
		}
	})

	t.Run("stop", func(t *testing.T) {
		if err := s.Stop(ctx, "dev-1"); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if st := s.Status("dev-1"); st.State != Stopped {
			t.Errorf("Status after Stop = %+v, want Stopped", st)
		}
		if !gone(pid) {
			t.Errorf("process %d still exists after Stop", pid)
		}
		if _, err := os.Stat(filepath.Join(dir, "dev-1", PIDFile)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pid file after Stop: %v, want it removed", err)
		}
		if err := c.Input([]byte("x")); !errors.Is(err, ErrBoardOff) {
			t.Errorf("Input after Stop = %v, want ErrBoardOff", err)
		}
		if last, err := s.Console("dev-1"); err != nil || !bytes.Contains(last.History(), []byte("session ended")) {
			t.Errorf("Console after Stop = %v; want the last run's scrollback", err)
		}
		if err := s.Stop(ctx, "dev-1"); err != nil {
			t.Errorf("second Stop = %v", err)
		}
		if err := s.Stop(ctx, "never-started"); err != nil {
			t.Errorf("Stop of an unknown device = %v", err)
		}
	})

	t.Run("start again", func(t *testing.T) {
		if err := s.Start(ctx, spec); err != nil {
			t.Fatalf("Start after Stop: %v", err)
		}
		if got := runningPID(t, s, "dev-1"); got == pid {
			t.Errorf("Start after Stop kept pid %d", pid)
		}
	})
}

func TestSimRestartsFailedBoard(t *testing.T) {
	// A backoff long enough for the poll below to see Failed.
	s := newSim(t, t.TempDir(), 2*time.Second)
	runSim(t, s)
	if err := s.Start(context.Background(), testSpec(t, "dev-2", "esp32-devkitc")); err != nil {
		t.Fatalf("Start: %v", err)
	}
	pid := runningPID(t, s, "dev-2")
	c, _ := s.Console("dev-2")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "dev-2 failed", func() bool { return s.Status("dev-2").State == Failed })
	if st := s.Status("dev-2"); !strings.Contains(st.Reason, "killed") {
		t.Errorf("Status.Reason = %q, want the exit status", st.Reason)
	}
	waitFor(t, "dev-2 restarted", func() bool {
		st := s.Status("dev-2")
		return st.State == Running && st.ID != strconv.Itoa(pid)
	})
	if !gone(pid) {
		t.Errorf("killed process %d still exists", pid)
	}
	c2, _ := s.Console("dev-2")
	if c2 != c {
		t.Error("restart replaced the console; want one scrollback across restarts")
	}
	waitConsole(t, c, "board exited (signal: killed)")
}

func TestSimStopDuringBackoff(t *testing.T) {
	s := newSim(t, t.TempDir(), time.Hour)
	if err := s.Start(context.Background(), testSpec(t, "dev-3", "frdm-k64f")); err != nil {
		t.Fatalf("Start: %v", err)
	}
	pid := runningPID(t, s, "dev-3")
	syscall.Kill(pid, syscall.SIGKILL)
	waitFor(t, "dev-3 failed", func() bool { return s.Status("dev-3").State == Failed })
	if err := s.Start(context.Background(), testSpec(t, "dev-3", "frdm-k64f")); err != nil {
		t.Errorf("Start of a board waiting to restart = %v, want nil", err)
	}
	if err := s.Stop(context.Background(), "dev-3"); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if st := s.Status("dev-3"); st.State != Stopped {
		t.Errorf("Status after Stop = %+v, want Stopped", st)
	}
}

// A new daemon on the same directory stops the boards an earlier one left.
func TestSimRunCleansLeftovers(t *testing.T) {
	dir := t.TempDir()
	// The earlier daemon: its board must not come back by itself once killed.
	old := newSim(t, dir, time.Hour)
	if err := old.Start(context.Background(), testSpec(t, "dev-4", "nrf52840-dk")); err != nil {
		t.Fatalf("Start: %v", err)
	}
	pid := runningPID(t, old, "dev-4")

	// A stale pid file, and one naming a process that is not a board.
	if err := os.MkdirAll(filepath.Join(dir, "stale"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "stale", PIDFile), []byte("999999999\n"), 0o600)
	if err := os.MkdirAll(filepath.Join(dir, "other"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "other", PIDFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)

	s := newSim(t, dir, 0)
	runSim(t, s)
	waitFor(t, "the leftover board to be stopped", func() bool { return !alive(pid) })
	waitFor(t, "the earlier daemon to see its board fail", func() bool { return old.Status("dev-4").State == Failed })
	for _, d := range []string{"dev-4", "stale", "other"} {
		waitFor(t, d+"'s pid file removed", func() bool {
			_, err := os.Stat(filepath.Join(dir, d, PIDFile))
			return errors.Is(err, os.ErrNotExist)
		})
	}
	if st := s.Status("dev-4"); st.State != Stopped {
		t.Errorf("new daemon Status(dev-4) = %+v, want Stopped until started", st)
	}

	// The new daemon starts the board again, and its own board survives a
	// second scan.
	if err := s.Start(context.Background(), testSpec(t, "dev-4", "nrf52840-dk")); err != nil {
		t.Fatalf("Start: %v", err)
	}
	newPID := runningPID(t, s, "dev-4")
	s.cleanLeftovers()
	if !alive(newPID) || s.Status("dev-4").State != Running {
		t.Errorf("cleanLeftovers stopped this daemon's own board")
	}
}

func TestSimRunStopsBoards(t *testing.T) {
	s := newSim(t, t.TempDir(), 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var pids []int
	for _, d := range []string{"dev-5", "dev-6"} {
		if err := s.Start(context.Background(), testSpec(t, d, "mps2-an385")); err != nil {
			t.Fatalf("Start(%s): %v", d, err)
		}
		pids = append(pids, runningPID(t, s, d))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	for _, pid := range pids {
		if !gone(pid) {
			t.Errorf("board %d still exists after Run returned", pid)
		}
	}
	err := s.Start(context.Background(), testSpec(t, "dev-7", "mps2-an385"))
	if !errors.Is(err, ErrBackendClosed) {
		t.Errorf("Start after Run = %v, want ErrBackendClosed", err)
	}
}

func TestSimStartRejects(t *testing.T) {
	s := newSim(t, t.TempDir(), 0)
	good := testSpec(t, "dev-8", "stm32f4-disco")
	tests := []struct {
		name string
		edit func(*Spec)
	}{
		{"bad device name", func(s *Spec) { s.Device = "Dev_8" }},
		{"no board", func(s *Spec) { s.Board = Board{} }},
		{"no gateway", func(s *Spec) { s.Gateway = "" }},
		{"no certificate", func(s *Spec) { s.CertPEM = nil }},
		{"no key", func(s *Spec) { s.KeyPEM = nil }},
		{"no CA", func(s *Spec) { s.CAPEM = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := good
			tt.edit(&spec)
			if err := s.Start(context.Background(), spec); err == nil {
				t.Errorf("Start(%s) = nil, want an error", tt.name)
			}
			if st := s.Status(spec.Device); st.State != Stopped {
				t.Errorf("Status after a refused Start = %+v, want Stopped", st)
			}
		})
	}
}

func TestNewSim(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "wasmbed-device")
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o600)
	tests := []struct {
		name string
		cfg  SimConfig
		ok   bool
	}{
		{"binary given", SimConfig{DeviceBinary: deviceBinary(t), Dir: t.TempDir()}, true},
		{"no dir", SimConfig{DeviceBinary: deviceBinary(t)}, false},
		{"missing binary", SimConfig{DeviceBinary: filepath.Join(t.TempDir(), "nope"), Dir: t.TempDir()}, false},
		{"binary not executable", SimConfig{DeviceBinary: notExec, Dir: t.TempDir()}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSim(tt.cfg)
			if (err == nil) != tt.ok {
				t.Errorf("NewSim(%+v) = %v, want ok %v", tt.cfg, err, tt.ok)
			}
		})
	}
	t.Run("binary from PATH", func(t *testing.T) {
		t.Setenv("PATH", filepath.Dir(deviceBinary(t)))
		s, err := NewSim(SimConfig{Dir: t.TempDir()})
		if err != nil {
			t.Fatalf("NewSim with wasmbed-device in PATH: %v", err)
		}
		if s.bin != deviceBinary(t) {
			t.Errorf("found %s, want %s", s.bin, deviceBinary(t))
		}
	})
	t.Run("binary nowhere", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		if _, err := NewSim(SimConfig{Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "wasmbed-device") {
			t.Errorf("NewSim without a binary = %v, want an error naming wasmbed-device", err)
		}
	})
}
