package tui

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/charmbracelet/x/exp/teatest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
)

// quit quits the program and returns its final model.
func quit(t *testing.T, tm *teatest.TestModel) *Model {
	t.Helper()
	tm.Send(press("q"))
	return tm.FinalModel(t, teatest.WithFinalTimeout(waitLimit)).(*Model)
}

// TestDeviceDetail opens a device from the filtered table and sees its
// capabilities, its app and the telemetry its app reports.
func TestDeviceDetail(t *testing.T) {
	tm := newTestModel(t, fleet(t))
	waitScreen(t, tm, "devices 2/2 online", "apps 1/1 running")
	tm.Type("/dev-b")
	tm.Send(press("enter"))
	waitScreen(t, tm, "Devices (1/2) /dev-b")
	tm.Send(press("enter"))
	waitScreen(t, tm, "Device dev-b", "nrf52840-dk  emulated on sim Running", "wasm, wasi, ble, thread", "running", "temperature=")
	tm.Send(press("esc"))
	waitScreen(t, tm, "Devices (1/2) /dev-b")
	tm.Send(press("esc")) // clears the filter
	waitScreen(t, tm, "Devices (2)")
	quit(t, tm)
}

// TestEventsView shows the live stream, with telemetry on request.
func TestEventsView(t *testing.T) {
	tm := newTestModel(t, fleet(t))
	waitScreen(t, tm, "devices 2/2 online")
	tm.Type(":ev")
	tm.Send(press("enter"))
	waitScreen(t, tm, "Events (", "telemetry hidden", "Device/dev-")
	tm.Type("t")
	waitScreen(t, tm, "following", "temperature=")
	tm.Type("/online")
	tm.Send(press("enter"))
	waitScreen(t, tm, "/online")
	m := quit(t, tm)
	v := m.active().(*eventsView)
	if len(v.rows) == 0 {
		t.Fatal("no event matches /online")
	}
	for _, e := range v.rows {
		if !strings.Contains(strings.ToLower(string(e.Type)+" "+eventSubject(e)+" "+eventDetail(e)), "online") {
			t.Errorf("event %+v passed the filter /online", e)
		}
	}
}

// TestConsoleAttach attaches to a device's board console, types help and
// sees the shell answer, then detaches.
func TestConsoleAttach(t *testing.T) {
	tm := newTestModel(t, fleet(t))
	waitScreen(t, tm, "devices 2/2 online")
	tm.Type("/dev-b")
	tm.Send(press("enter"))
	waitScreen(t, tm, "Devices (1/2) /dev-b")
	tm.Type("c")
	waitScreen(t, tm, "console dev-b", "attached")
	tm.Type("help")
	tm.Send(press("enter"))
	waitScreen(t, tm, "commands: status, apps, uptime, help")
	tm.Send(press("ctrl+]"))
	waitScreen(t, tm, "Devices (1/2) /dev-b")
	m := quit(t, tm)
	if len(m.stack) != 1 {
		t.Errorf("after detaching, %d views are open, want 1", len(m.stack))
	}
}

// TestConsoleBoardOff attaches to a device whose board is off, sees so,
// and is attached once the board starts.
func TestConsoleBoardOff(t *testing.T) {
	d := startDaemon(t)
	ctx := context.Background()
	if _, err := d.c.CreateDevice(ctx, emulated("dev-off", "mps2-an385", nil, false)); err != nil {
		t.Fatal(err)
	}
	tm := newTestModel(t, d)
	waitScreen(t, tm, "dev-off")
	tm.Type("c")
	waitScreen(t, tm, "console dev-off", "board is off")
	if _, err := d.c.StartEmulation(ctx, "dev-off"); err != nil {
		t.Fatal(err)
	}
	waitScreen(t, tm, "attached")
	tm.Type("status")
	tm.Send(press("enter"))
	waitScreen(t, tm, "device dev-off board mps2-an385")
	tm.Send(press("ctrl+]"))
	waitScreen(t, tm, "Devices (1)")
	quit(t, tm)
}

// TestAppActions pauses, resumes, stops and rolls back an application
// from its list, each after a y/n question, and checks the daemon.
func TestAppActions(t *testing.T) {
	d := startDaemon(t)
	ctx := context.Background()
	wasm, err := os.ReadFile(filepath.Join("..", "testdata", "apps", "sensor.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	mod, err := d.c.UploadModule(ctx, bytes.NewReader(wasm))
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.c.CreateApplication(ctx, &v1alpha1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: "blinky"},
		Spec: v1alpha1.ApplicationSpec{
			Module: v1alpha1.ModuleRef{SHA256: mod.SHA256}, Version: "1",
			Target: v1alpha1.Target{Devices: []string{"nowhere"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	app := func() *v1alpha1.Application {
		a, err := d.c.GetApplication(ctx, "blinky")
		if err != nil {
			t.Fatal(err)
		}
		return a
	}

	tm := newTestModel(t, d)
	waitScreen(t, tm, "gateways 1/1 up")
	tm.Type(":apps")
	tm.Send(press("enter"))
	waitScreen(t, tm, "blinky")

	tm.Type("p")
	waitScreen(t, tm, "pause application blinky? [y/n]")
	tm.Type("n")
	waitScreen(t, tm, "cancelled")
	if app().Spec.Paused {
		t.Fatal("paused although the question was answered n")
	}

	tm.Type("p")
	waitScreen(t, tm, "pause application blinky? [y/n]")
	tm.Type("y")
	waitScreen(t, tm, "pause blinky: done")
	if !app().Spec.Paused {
		t.Fatal("not paused after y")
	}
	// The cache has the paused app: p now resumes.
	tm.Type("p")
	waitScreen(t, tm, "resume application blinky? [y/n]")
	tm.Type("y")
	waitScreen(t, tm, "resume blinky: done")
	if app().Spec.Paused {
		t.Fatal("still paused after resume")
	}

	tm.Type("s")
	waitScreen(t, tm, "stop application blinky? [y/n]")
	tm.Type("y")
	waitScreen(t, tm, "stop blinky: done")
	if !app().Spec.Stopped {
		t.Fatal("not stopped after y")
	}

	tm.Type("b")
	waitScreen(t, tm, "roll application blinky back from version 1? [y/n]")
	tm.Type("y")
	waitScreen(t, tm, "rollback blinky: ")
	quit(t, tm)
}

// TestReconnect stops the daemon under the console, which shows it
// unreachable, and starts it again, which the console finds by itself.
func TestReconnect(t *testing.T) {
	d := startDaemon(t)
	tm := newTestModel(t, d)
	waitScreen(t, tm, "gateways 1/1 up", "Devices (0)")
	before := d.addr
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	waitScreen(t, tm, "daemon unreachable")

	host := strings.TrimPrefix(before, "http://")
	d2, err := runDaemon(d.dataDir, host)
	if err != nil {
		t.Fatalf("restart the daemon on %s: %v", host, err)
	}
	t.Cleanup(func() {
		if err := d2.stop(); err != nil {
			t.Errorf("daemon: %v", err)
		}
	})
	waitScreen(t, tm, " Devices (0)")
	m := quit(t, tm)
	if m.banner != "" || !m.connected {
		t.Errorf("after the restart: banner %q, connected %v", m.banner, m.connected)
	}
	info, err := d2.c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !m.info.Started.Equal(info.Started) {
		t.Errorf("the console knows the daemon started at %v, want %v", m.info.Started, info.Started)
	}
}
