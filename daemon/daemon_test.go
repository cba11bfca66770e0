package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
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
	"wasmbed.io/wasmbed/daemon/api"
	"wasmbed.io/wasmbed/daemon/client"
	"wasmbed.io/wasmbed/daemon/controller"
)

const waitLimit = 90 * time.Second

var deviceBinary string

// TestMain builds the real wasmbed-device binary the sim boards run. Run
// as a child of TestDescriptorExhaustion, it is a daemon instead.
func TestMain(m *testing.M) {
	if dir := os.Getenv(limitedDaemonEnv); dir != "" {
		os.Exit(runLimitedDaemon(dir))
	}
	dir, err := os.MkdirTemp("", "wasmbedd-test-")
	if err != nil {
		panic(err)
	}
	deviceBinary = filepath.Join(dir, "wasmbed-device")
	build := exec.Command("go", "build", "-o", deviceBinary, "./cmd/wasmbed-device")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build wasmbed-device: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// instance is a real daemon running in the test process on loopback.
type instance struct {
	t      *testing.T
	name   string // its gateway
	addr   string // its API's host:port
	c      *client.Client
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// startDaemon starts a real daemon on loopback with its data in dataDir;
// mutate, when given, changes the configuration first. With -v the
// daemon's logs go to the test output.
func startDaemon(t *testing.T, dataDir string, mutate ...func(*daemon.Config)) *instance {
	t.Helper()
	ready := make(chan net.Addr, 1)
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{t: t, cancel: cancel, done: make(chan error, 1)}
	cfg := daemon.Config{
		DataDir: dataDir, APIListen: "127.0.0.1:0", GatewayListen: "127.0.0.1:0",
		GatewayName: "gw-test", DeviceBinary: deviceBinary, Resync: time.Second,
		HeartbeatInterval: 500 * time.Millisecond,
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
		Ready:             func(a, _ net.Addr) { ready <- a },
	}
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	for _, m := range mutate {
		m(&cfg)
	}
	in.name = cfg.GatewayName
	go func() { in.done <- daemon.Run(ctx, cfg) }()
	select {
	case a := <-ready:
		in.addr = a.String()
		c, err := client.New("http://" + a.String())
		if err != nil {
			t.Fatal(err)
		}
		in.c = c
	case err := <-in.done:
		t.Fatalf("daemon did not start: %v", err)
	}
	t.Cleanup(in.stop)
	return in
}

// stop shuts the daemon down and checks it stopped cleanly; safe twice.
func (in *instance) stop() {
	in.once.Do(func() {
		in.cancel()
		select {
		case err := <-in.done:
			if err != nil {
				in.t.Errorf("daemon Run = %v", err)
			}
		case <-time.After(waitLimit):
			in.t.Errorf("daemon did not stop")
		}
	})
}

func eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	eventuallyWithin(t, waitLimit, what, cond)
}

// eventuallyWithin is eventually with a wait limit of its own.
func eventuallyWithin(t *testing.T, limit time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("never: %s (last error %v)", what, last)
}

// uploadApp uploads testdata/apps/file through c and returns its sha256.
func uploadApp(t *testing.T, c *client.Client, file string) string {
	t.Helper()
	m, err := c.UploadModule(context.Background(), bytes.NewReader(readApp(t, file)))
	if err != nil {
		t.Fatal(err)
	}
	return m.SHA256
}

func readApp(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "apps", file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDaemon drives the real daemon through its API: emulated devices come
// online, a module rolls out with progress on the event stream, a console
// is read, a failing update rolls back by itself, and a restart finds
// everything as it was.
func TestDaemon(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	d := startDaemon(t, dataDir)
	c := d.c

	events, err := c.Events(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()

	names := []string{"dev-a", "dev-b", "dev-c"}
	boards := []string{"mps2-an385", "stm32f746g-disco", "nrf52840-dk"}
	for i, n := range names {
		_, err := c.CreateDevice(ctx, &v1alpha1.Device{
			ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{"fleet": "test"}},
			Spec:       v1alpha1.DeviceSpec{Board: boards[i], Emulation: &v1alpha1.Emulation{Backend: "sim", Enabled: true}},
		})
		if err != nil {
			t.Fatalf("CreateDevice %s = %v", n, err)
		}
	}
	allOnline := func() (bool, error) {
		list, err := c.ListDevices(ctx, "fleet=test")
		if err != nil {
			return false, err
		}
		for _, d := range list.Items {
			if d.Status.Phase != v1alpha1.DeviceOnline {
				return false, fmt.Errorf("%s is %s", d.Name, d.Status.Phase)
			}
		}
		return len(list.Items) == 3, nil
	}
	eventually(t, "three devices online", allOnline)
	eventually(t, "metrics count the sessions and phases", func() (bool, error) {
		m, err := c.Metrics(ctx)
		if err != nil {
			return false, err
		}
		text := string(m)
		return strings.Contains(text, "wasmbed_gateway_sessions 3") && strings.Contains(text, `wasmbed_devices{phase="Online"} 3`), nil
	})

	v1, err := c.UploadModule(ctx, bytes.NewReader(readApp(t, "sensor.wasm")))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateApplication(ctx, &v1alpha1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: "sensor"},
		Spec: v1alpha1.ApplicationSpec{
			Module: v1alpha1.ModuleRef{SHA256: v1.SHA256}, Version: "1",
			Target:  v1alpha1.Target{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"fleet": "test"}}},
			Rollout: v1alpha1.Rollout{BatchSize: 2, HealthySeconds: 1},
			Limits:  v1alpha1.Limits{PeriodMillis: 100},
		},
	})
	if err != nil {
		t.Fatalf("CreateApplication = %v", err)
	}

	// Per-device progress and running state arrive on the event stream.
	progress, running := map[string]bool{}, map[string]bool{}
	for len(running) < 3 {
		e, err := events.Next()
		if err != nil {
			t.Fatalf("event stream: %v", err)
		}
		switch {
		case e.Type == api.EventProgress && e.App.Name == "sensor":
			progress[e.Device] = true
		case e.Type == api.EventApp && e.App.Name == "sensor" && e.App.State == "running":
			running[e.Device] = true
		}
	}
	if len(progress) != 3 {
		t.Errorf("progress events for %v, want all three devices", progress)
	}
	eventually(t, "application Running", func() (bool, error) {
		a, err := c.GetApplication(ctx, "sensor")
		if err != nil {
			return false, err
		}
		return a.Status.Phase == v1alpha1.AppRunning && a.Status.Running == 3, fmt.Errorf("phase %s", a.Status.Phase)
	})

	// The board console carries the app's output, and typed input reaches
	// the board's shell.
	con, err := c.Console(ctx, "dev-a")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SendConsole(ctx, "dev-a", []byte("apps\r")); err != nil {
		t.Fatal(err)
	}
	got := readUntil(t, con, "sensor v1 tick")
	con.Close()
	if !strings.Contains(got, "sensor v1 tick") {
		t.Fatalf("console = %q", got)
	}

	// A failing update (a module that traps) is aborted: the devices
	// return to the stable version 1, and the spec stays as written.
	bad, err := c.UploadModule(ctx, bytes.NewReader(readApp(t, "trap.wasm")))
	if err != nil {
		t.Fatal(err)
	}
	v2 := updateApp(t, c, "sensor", func(app *v1alpha1.Application) {
		app.Spec.Module, app.Spec.Version = v1alpha1.ModuleRef{SHA256: bad.SHA256}, "2"
	})
	eventually(t, "rollout of 2 aborted, back on 1", func() (bool, error) {
		a, err := c.GetApplication(ctx, "sensor")
		if err != nil {
			return false, err
		}
		ab := a.Status.Aborted
		return ab != nil && ab.Version == "2" && ab.RolledBackTo == "1" && a.Status.Phase == v1alpha1.AppRolledBack && a.Status.Running == 3,
			fmt.Errorf("phase %s aborted %+v running %d", a.Status.Phase, ab, a.Status.Running)
	})
	a, err := c.GetApplication(ctx, "sensor")
	if err != nil || a.Spec.Version != "2" || a.Generation != v2.Generation || a.Status.StableRevision != "1" {
		t.Fatalf("after the abort: spec version %s generation %d stable %q, %v; want the spec as written (2, generation %d) and stable 1",
			a.Spec.Version, a.Generation, a.Status.StableRevision, err, v2.Generation)
	}
	rows, err := c.ListApplicationDevices(ctx, "sensor", "")
	if err != nil || len(rows.Items) != 3 {
		t.Fatalf("ListApplicationDevices = %+v, %v; want 3 rows", rows, err)
	}
	for _, r := range rows.Items {
		if r.Version != "1" || r.Target != "1" || r.State != controller.RolloutRunning {
			t.Errorf("row %+v, want version 1 running, target 1", r)
		}
	}

	// Restart: every resource is there and the devices come back online
	// running version 1.
	d.stop()
	d = startDaemon(t, dataDir)
	c = d.c
	eventually(t, "devices online after restart", func() (bool, error) {
		if ok, err := allOnline(); !ok {
			return false, err
		}
		for _, n := range names {
			dev, err := c.GetDevice(ctx, n)
			if err != nil {
				return false, err
			}
			if len(dev.Status.Apps) != 1 || dev.Status.Apps[0].Version != "1" || dev.Status.Apps[0].State != "running" {
				return false, fmt.Errorf("%s apps %+v", n, dev.Status.Apps)
			}
		}
		return true, nil
	})
	a, err = c.GetApplication(ctx, "sensor")
	if err != nil || a.Spec.Version != "2" || a.Status.Aborted == nil || len(a.Status.History) < 2 {
		t.Fatalf("after restart application = %+v, %v", a, err)
	}
	mods, err := c.ListModules(ctx)
	if err != nil || len(mods) != 2 {
		t.Fatalf("after restart modules = %v, %v; want 2", mods, err)
	}

	// Deleting a device stops its board and revokes it.
	if err := c.DeleteDevice(ctx, "dev-c"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetDevice(ctx, "dev-c"); !errors.Is(err, &api.Error{Reason: api.ReasonNotFound}) {
		t.Fatalf("GetDevice after delete = %v, want NotFound", err)
	}
}

// readUntil reads a stream until it holds want or the wait limit passes.
func readUntil(t *testing.T, r io.Reader, want string) string {
	t.Helper()
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := make([]byte, 4096)
		for !strings.Contains(buf.String(), want) {
			n, err := r.Read(b)
			buf.Write(b[:n])
			if err != nil {
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatalf("stream never showed %q", want)
	}
	return buf.String()
}

// TestStopLimit runs a daemon with a part that ignores the stop (an SSH
// hook that never returns): the stop gives up on it after StopLimit and
// names it, rather than hang.
func TestStopLimit(t *testing.T) {
	hang := make(chan struct{})
	defer close(hang)
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.Config{
			DataDir: t.TempDir(), APIListen: "127.0.0.1:0", GatewayListen: "127.0.0.1:0",
			DeviceBinary: deviceBinary, StopLimit: 100 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Ready:  func(_, _ net.Addr) { close(ready) },
			SSH: func(context.Context, net.Addr) error {
				<-hang
				return nil
			},
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("daemon did not start: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "still running") || !strings.Contains(err.Error(), "ssh console") {
			t.Errorf("Run = %v, want a stop error naming the ssh console", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("the daemon's stop hung")
	}
}

// appState returns the state device reports for app, "" when none.
func appState(c *client.Client, device, app string) (string, error) {
	d, err := c.GetDevice(context.Background(), device)
	if err != nil {
		return "", err
	}
	for _, a := range d.Status.Apps {
		if a.Name == app {
			return a.State, nil
		}
	}
	return "", nil
}

// TestStrayAppsRemoved: a device that leaves an app's target has the app
// removed (not listed, its module deleted from the board), and so does
// every device once the app is deleted. A deleted device's board state
// goes with it.
func TestStrayAppsRemoved(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	in := startDaemon(t, dir)
	c := in.c
	sensorOn(t, c, "st-a", "st-b")
	reports := func(device, state string) {
		t.Helper()
		eventually(t, fmt.Sprintf("%s reports sensor %q", device, state), func() (bool, error) {
			s, err := appState(c, device, "sensor")
			return s == state, err
		})
	}
	modules := func(device string) []string {
		mods, _ := filepath.Glob(filepath.Join(dir, "boards", device, "modules", "*.wasm"))
		return mods
	}
	reports("st-a", "running")
	reports("st-b", "running")
	if len(modules("st-b")) != 1 {
		t.Fatalf("st-b holds modules %v, want sensor's", modules("st-b"))
	}

	updateApp(t, c, "sensor", func(app *v1alpha1.Application) { app.Spec.Target.Devices = []string{"st-a"} })
	reports("st-b", "")
	reports("st-a", "running")
	if mods := modules("st-b"); len(mods) != 0 {
		t.Errorf("after removal st-b still holds %v", mods)
	}

	if err := c.DeleteApplication(ctx, "sensor"); err != nil {
		t.Fatal(err)
	}
	reports("st-a", "")
	if mods := modules("st-a"); len(mods) != 0 {
		t.Errorf("after the app's deletion st-a still holds %v", mods)
	}

	if err := c.DeleteDevice(ctx, "st-a"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "st-a's board state deleted", func() (bool, error) {
		_, err := os.Stat(filepath.Join(dir, "boards", "st-a"))
		return errors.Is(err, fs.ErrNotExist), nil
	})
}

// sensorOn creates an emulated sim board for each device named and the
// sensor app (version 1) targeting all of them at once.
func sensorOn(t *testing.T, c *client.Client, devices ...string) {
	t.Helper()
	ctx := context.Background()
	for _, n := range devices {
		if _, err := c.CreateDevice(ctx, &v1alpha1.Device{
			ObjectMeta: metav1.ObjectMeta{Name: n},
			Spec:       v1alpha1.DeviceSpec{Board: "mps2-an385", Emulation: &v1alpha1.Emulation{Backend: "sim", Enabled: true}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	mod, err := c.UploadModule(ctx, bytes.NewReader(readApp(t, "sensor.wasm")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateApplication(ctx, &v1alpha1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: "sensor"},
		Spec: v1alpha1.ApplicationSpec{
			Module: v1alpha1.ModuleRef{SHA256: mod.SHA256}, Version: "1",
			Target:  v1alpha1.Target{Devices: devices},
			Rollout: v1alpha1.Rollout{BatchSize: int32(len(devices))},
		},
	}); err != nil {
		t.Fatal(err)
	}
}

// updateApp changes the named app's spec with change and updates it,
// again on a fresh copy when the controller wrote its status in between.
func updateApp(t *testing.T, c *client.Client, name string, change func(*v1alpha1.Application)) *v1alpha1.Application {
	t.Helper()
	ctx := context.Background()
	for {
		app, err := c.GetApplication(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		change(app)
		out, err := c.UpdateApplication(ctx, app)
		if errors.Is(err, &api.Error{Reason: api.ReasonConflict}) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
}

// TestStopWithStalledClient stops a daemon while a client has sent part of
// an upload and stalls: the stop cuts it and still ends cleanly.
func TestStopWithStalledClient(t *testing.T) {
	in := startDaemon(t, t.TempDir())
	conn, err := net.Dial("tcp", in.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/v1/modules HTTP/1.1\r\nHost: x\r\nContent-Type: application/wasm\r\nContent-Length: 100000\r\n\r\n\x00asm\x01\x00\x00\x00")
	// A request answered after it means the daemon has read the upload's
	// header by then, in practice.
	if _, err := in.c.Info(context.Background()); err != nil {
		t.Fatal(err)
	}
	in.stop() // fails the test unless Run returns nil
}
