package tui

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/exp/teatest"
	"github.com/muesli/termenv"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon"
	"wasmbed.io/wasmbed/daemon/client"
)

// waitLimit bounds every wait on the daemon, the devices and the screen.
const waitLimit = 90 * time.Second

// Terminal size of the golden tests.
const (
	termWidth  = 80
	termHeight = 24
)

var (
	binDir       string // built binaries
	deviceBinary string // wasmbed-device, which the sim boards run
)

// TestMain builds the wasmbed-device binary the sim boards run, fixes the
// color profile and the terminal type, and stops the shared fleet after
// the tests.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wasmbed-tui-test-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	deviceBinary = filepath.Join(dir, "wasmbed-device")
	build := exec.Command("go", "build", "-o", deviceBinary, "./cmd/wasmbed-device")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build wasmbed-device: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	os.Setenv("TERM", "xterm-256color")
	os.Unsetenv("NO_COLOR")
	// The boards the daemon starts log in UTC whatever the machine's
	// zone, so that their consoles look the same everywhere.
	os.Setenv("TZ", "UTC")
	lipgloss.SetColorProfile(termenv.Ascii)
	lipgloss.SetHasDarkBackground(true)

	code := m.Run()
	stopFleet()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testDaemon is a real daemon running in the test process on loopback.
type testDaemon struct {
	c       *client.Client
	addr    string // http://host:port
	dataDir string
	cancel  context.CancelFunc
	done    chan error
	once    sync.Once
	stopErr error
}

// runDaemon starts a daemon on dataDir with its API on apiListen
// (127.0.0.1:0 for any port).
func runDaemon(dataDir, apiListen string) (*testDaemon, error) {
	ready := make(chan net.Addr, 1)
	ctx, cancel := context.WithCancel(context.Background())
	d := &testDaemon{dataDir: dataDir, cancel: cancel, done: make(chan error, 1)}
	go func() {
		d.done <- daemon.Run(ctx, daemon.Config{
			DataDir: dataDir, APIListen: apiListen, GatewayListen: "127.0.0.1:0",
			GatewayName: "gw-test", DeviceBinary: deviceBinary, Resync: time.Second,
			HeartbeatInterval: 500 * time.Millisecond,
			Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
			Ready:             func(a, _ net.Addr) { ready <- a },
		})
	}()
	select {
	case a := <-ready:
		d.addr = "http://" + a.String()
		c, err := client.New(d.addr)
		if err != nil {
			cancel()
			return nil, err
		}
		d.c = c
		return d, nil
	case err := <-d.done:
		cancel()
		return nil, fmt.Errorf("daemon did not start: %v", err)
	}
}

// startDaemon starts a daemon for one test, stopped when it ends.
func startDaemon(t *testing.T) *testDaemon {
	t.Helper()
	d, err := runDaemon(t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.stop(); err != nil {
			t.Errorf("daemon: %v", err)
		}
	})
	return d
}

// stop shuts the daemon down and reports how it stopped; safe twice.
func (d *testDaemon) stop() error {
	d.once.Do(func() {
		d.cancel()
		select {
		case err := <-d.done:
			d.stopErr = err
		case <-time.After(waitLimit):
			d.stopErr = fmt.Errorf("did not stop within %s", waitLimit)
		}
	})
	return d.stopErr
}

// eventually polls cond until it holds or waitLimit passes.
func eventually(t testing.TB, what string, cond func() (bool, error)) {
	t.Helper()
	if err := poll(what, cond); err != nil {
		t.Fatal(err)
	}
}

func poll(what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(waitLimit)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("never: %s (last: %v)", what, last)
		}
		<-tick.C
	}
}

// emulated is a device on an emulated sim board.
func emulated(name, board string, labels map[string]string, enabled bool) *v1alpha1.Device {
	return &v1alpha1.Device{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       v1alpha1.DeviceSpec{Board: board, Emulation: &v1alpha1.Emulation{Backend: "sim", Enabled: enabled}},
	}
}

// The shared fleet: one daemon with two emulated devices running the
// sensor app, started by the first test that needs it and stopped by
// TestMain. Tests only look at it; tests that change things start a
// daemon of their own.
var (
	fleetOnce sync.Once
	fleetD    *testDaemon
	fleetErr  error
)

// Names in the shared fleet.
const (
	devA     = "dev-a"
	devB     = "dev-b"
	fleetApp = "sensor"
)

func fleet(t *testing.T) *testDaemon {
	t.Helper()
	fleetOnce.Do(func() { fleetD, fleetErr = startFleet() })
	if fleetErr != nil {
		t.Fatalf("fleet: %v", fleetErr)
	}
	return fleetD
}

func startFleet() (*testDaemon, error) {
	dir, err := os.MkdirTemp("", "wasmbed-tui-fleet-")
	if err != nil {
		return nil, err
	}
	d, err := runDaemon(dir, "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	fleetD = d // stopped by stopFleet whatever happens next
	return d, populateFleet(d.c)
}

// newFleet starts a fleet like the shared one for one test, stopped when
// it ends. Tests whose screens show the event history use one: the
// shared fleet's history is trimmed after a while (the daemon keeps the
// last 4096 events), theirs holds every event from the start.
func newFleet(t *testing.T) *testDaemon {
	t.Helper()
	d := startDaemon(t)
	if err := populateFleet(d.c); err != nil {
		t.Fatalf("fleet: %v", err)
	}
	return d
}

// populateFleet creates the fleet's two emulated devices and, once both
// are online, the sensor app targeting them, and waits until the app
// runs on both with their round trips measured. The app comes after the
// devices so that its rollout always goes dev-a then dev-b, and the
// events it causes come in the same order every time.
func populateFleet(c *client.Client) error {
	ctx := context.Background()
	for _, dev := range []*v1alpha1.Device{
		emulated(devA, "mps2-an385", map[string]string{"fleet": "test", "room": "lab"}, true),
		emulated(devB, "nrf52840-dk", map[string]string{"fleet": "test", "room": "office"}, true),
	} {
		if _, err := c.CreateDevice(ctx, dev); err != nil {
			return err
		}
	}
	err := poll("both devices online", func() (bool, error) {
		list, err := c.ListDevices(ctx, "")
		if err != nil {
			return false, err
		}
		for _, dev := range list.Items {
			if dev.Status.Phase != v1alpha1.DeviceOnline {
				return false, fmt.Errorf("%s is %s", dev.Name, dev.Status.Phase)
			}
		}
		return len(list.Items) == 2, nil
	})
	if err != nil {
		return err
	}
	wasm, err := os.ReadFile(filepath.Join("..", "testdata", "apps", "sensor.wasm"))
	if err != nil {
		return err
	}
	mod, err := c.UploadModule(ctx, bytes.NewReader(wasm))
	if err != nil {
		return err
	}
	_, err = c.CreateApplication(ctx, &v1alpha1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: fleetApp},
		Spec: v1alpha1.ApplicationSpec{
			Module: v1alpha1.ModuleRef{SHA256: mod.SHA256}, Version: "1",
			Target:  v1alpha1.Target{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"fleet": "test"}}},
			Rollout: v1alpha1.Rollout{BatchSize: 1, HealthySeconds: 1},
			Limits:  v1alpha1.Limits{PeriodMillis: 1000},
		},
	})
	if err != nil {
		return err
	}
	return poll("fleet online and running the app", func() (bool, error) {
		a, err := c.GetApplication(ctx, fleetApp)
		if err != nil {
			return false, err
		}
		if a.Status.Phase != v1alpha1.AppRunning || a.Status.Running != 2 {
			return false, fmt.Errorf("app %s running %d", a.Status.Phase, a.Status.Running)
		}
		list, err := c.ListDevices(ctx, "")
		if err != nil {
			return false, err
		}
		for _, dev := range list.Items {
			if dev.Status.Phase != v1alpha1.DeviceOnline || len(dev.Status.Apps) != 1 || dev.Status.Apps[0].State != "running" {
				return false, fmt.Errorf("%s is %s with apps %+v", dev.Name, dev.Status.Phase, dev.Status.Apps)
			}
			// A round trip is measured after the first heartbeat; wait
			// for it so that the RTT column is not sometimes empty.
			if dev.Status.RTTMicros <= 0 {
				return false, fmt.Errorf("%s has no round trip yet", dev.Name)
			}
		}
		return len(list.Items) == 2, nil
	})
}

func stopFleet() {
	if fleetD == nil {
		return
	}
	if err := fleetD.stop(); err != nil {
		fmt.Fprintf(os.Stderr, "fleet daemon: %v\n", err)
	}
	os.RemoveAll(fleetD.dataDir)
}

// goldenAddress is the address the golden tests' header shows, whatever
// port the daemon has.
const goldenAddress = "http://daemon.test"

// fixedNow is the clock of the golden tests: ages and the time since the
// last update do not move while a test runs.
func fixedNow() func() time.Time {
	t0 := time.Now()
	return func() time.Time { return t0 }
}

// newTestModel runs the console against d at 80x24 under teatest.
func newTestModel(t *testing.T, d *testDaemon) *teatest.TestModel {
	t.Helper()
	return newTestModelSize(t, d, termSize{termWidth, termHeight})
}

// termSize is a terminal's size in cells.
type termSize struct{ w, h int }

func (s termSize) String() string { return fmt.Sprintf("%dx%d", s.w, s.h) }

// goldenSizes are the sizes every golden test runs at: the smallest the
// console is made for, and a large one.
var goldenSizes = []termSize{{termWidth, termHeight}, {160, 48}}

// atGoldenSizes runs f as a subtest at each of the golden sizes; the
// golden file of each is testdata/<TestName>/<W>x<H>.golden.
func atGoldenSizes(t *testing.T, f func(t *testing.T, size termSize)) {
	for _, size := range goldenSizes {
		t.Run(size.String(), func(t *testing.T) { f(t, size) })
	}
}

// newTestModelSize runs the console against d at size under teatest.
func newTestModelSize(t *testing.T, d *testDaemon, size termSize) *teatest.TestModel {
	t.Helper()
	m, err := New(Options{Client: d.c, Address: goldenAddress, Now: fixedNow()})
	if err != nil {
		t.Fatal(err)
	}
	return teatest.NewTestModel(t, m, teatest.WithInitialTermSize(size.w, size.h))
}

// waitScreen waits until the program's output shows every one of texts.
// The output is a stream of frames that repaint only changed lines, so
// texts are looked for in everything printed since the last wait.
func waitScreen(t *testing.T, tm *teatest.TestModel, texts ...string) {
	t.Helper()
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
		for _, s := range texts {
			if !bytes.Contains(b, []byte(s)) {
				return false
			}
		}
		return true
	}, teatest.WithDuration(waitLimit), teatest.WithCheckInterval(20*time.Millisecond))
}

// Masks of the golden tests. A frame holds values that differ from run
// to run however long a test waits: ages and round trips, times of day,
// the ports the daemon and the boards got from the kernel, the values the
// sensor app reports. Each mask replaces one kind of value, and only it,
// with a fixed token; a golden test applies the ones its screen needs.
type mask func(string) string

// durationCell matches a duration as the tables show it (ages, round
// trips, certificate lifetimes) with the spaces before it.
var durationCell = regexp.MustCompile(` *\b[0-9]+(\.[0-9]+)?(µs|ms|s|m|h|d|y)\b`)

// maskDurations replaces every duration with a "~" right-aligned in the
// same width, so that a frame does not depend on when the daemon last
// heard from a device, how long a heartbeat took or when a certificate
// was issued. Durations sit in fixed-width cells, so the width of a match
// does not change from run to run.
func maskDurations(s string) string {
	return durationCell.ReplaceAllStringFunc(s, func(m string) string {
		return strings.Repeat(" ", len([]rune(m))-1) + "~"
	})
}

// clockTime matches a time of day (15:04:05) and a timestamp
// (2006-01-02T15:04:05.000Z) as the events and the boards' logs show
// them; loopbackPort matches a loopback address with its port.
var (
	clockTime    = regexp.MustCompile(`\b([0-9]{4}-[0-9]{2}-[0-9]{2}T)?[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z?\b`)
	loopbackPort = regexp.MustCompile(`\b127\.0\.0\.1:[0-9]+\b`)
)

// hashDigits replaces every digit of the matches of re with '#', which
// keeps their width.
func hashDigits(re *regexp.Regexp, s string) string {
	return re.ReplaceAllStringFunc(s, func(m string) string {
		return strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return '#'
			}
			return r
		}, m)
	})
}

// maskClock replaces the digits of times of day and timestamps with '#':
// the events' times and the boards' log lines. Both have a fixed width.
func maskClock(s string) string { return hashDigits(clockTime, s) }

// maskLoopbackPorts replaces the port of 127.0.0.1:NNNNN with #####: the
// gateway's endpoint, which the kernel picks. Ports from the kernel's
// ephemeral range all have five digits, so the width does not change.
func maskLoopbackPorts(s string) string {
	return loopbackPort.ReplaceAllStringFunc(s, func(m string) string {
		host, port, _ := strings.Cut(m, ":")
		return host + ":" + strings.Repeat("#", len(port))
	})
}

// Values of free text: a duration anywhere ("online 12s", "29d left",
// "last 0.54ms"), the digits of an RTT sparkline (the ASCII profile draws
// its levels as 0-7, one per sample), and a telemetry value.
var (
	freeDuration = regexp.MustCompile(`\b[0-9]+(\.[0-9]+)?(µs|ms|s|m|h|d|y)\b`)
	sparkDigits  = regexp.MustCompile(`(RTT trend +)[0-7]+`)
	telemetryVal = regexp.MustCompile(`=-?[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?\b`)
)

// maskDetail masks the values of the device detail, where they sit in
// free text rather than in cells of a fixed width: durations, the RTT
// sparkline (whose length is the number of heartbeats seen) and telemetry
// values each become "~", and each line is padded back to the width it
// had. Times of day in its events table keep their width (maskClock).
func maskDetail(s string) string {
	lines := strings.Split(maskClock(s), "\n")
	for i, l := range lines {
		w := visibleWidth(l)
		l = sparkDigits.ReplaceAllString(l, "${1}~")
		l = freeDuration.ReplaceAllString(l, "~")
		l = telemetryVal.ReplaceAllString(l, "=~")
		lines[i] = l + strings.Repeat(" ", max(0, w-visibleWidth(l)))
	}
	return strings.Join(lines, "\n")
}

// quitAndGolden quits the program with q and compares its last screen,
// with masks applied, against testdata/<TestName>.golden.
func quitAndGolden(t *testing.T, tm *teatest.TestModel, size termSize, masks ...mask) {
	t.Helper()
	requireGolden(t, quit(t, tm), size, masks...)
}

// requireGolden compares the model's screen, with masks applied, against
// testdata/<TestName>.golden; the screen must fill size exactly.
func requireGolden(t *testing.T, m *Model, size termSize, masks ...mask) {
	t.Helper()
	screen := m.View()
	if got := strings.Count(screen, "\n") + 1; got != size.h {
		t.Errorf("screen has %d lines, want %d", got, size.h)
	}
	for i, line := range strings.Split(screen, "\n") {
		if w := visibleWidth(line); w != size.w {
			t.Errorf("line %d is %d columns wide, want %d: %q", i, w, size.w, line)
		}
	}
	for _, mk := range masks {
		screen = mk(screen)
	}
	teatest.RequireEqualOutput(t, []byte(screen+"\n"))
}

// keyTypes are the named keys the tests press.
var keyTypes = map[string]tea.KeyType{
	"enter": tea.KeyEnter, "esc": tea.KeyEsc, "ctrl+]": tea.KeyCtrlCloseBracket,
	"backspace": tea.KeyBackspace, "tab": tea.KeyTab, "shift+tab": tea.KeyShiftTab,
	"right": tea.KeyRight, "down": tea.KeyDown, "up": tea.KeyUp, "pgup": tea.KeyPgUp,
	"ctrl+s": tea.KeyCtrlS, "ctrl+d": tea.KeyCtrlD, "ctrl+u": tea.KeyCtrlU,
}

// press is a key press as the terminal sends it: a named key, or runes.
func press(s string) tea.KeyMsg {
	if t, ok := keyTypes[s]; ok {
		return tea.KeyMsg{Type: t}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)}
}
