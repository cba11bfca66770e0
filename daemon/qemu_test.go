//go:build linux

package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon"
	"wasmbed.io/wasmbed/daemon/api"
	"wasmbed.io/wasmbed/daemon/controller"
)

// buildMCU builds the firmware for the qemu backend, or skips t when the
// tools are missing.
func buildMCU(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"arm-none-eabi-gcc", "qemu-system-arm", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm): %v", tool, err)
		}
	}
	build := t.TempDir()
	if out, err := exec.Command("make", "-C", filepath.Join("..", "firmware", "mcu"), "BUILD="+build).CombinedOutput(); err != nil {
		t.Fatalf("make firmware: %v\n%s", err, out)
	}
	return filepath.Join(build, "wasmbed-mcu.elf")
}

// TestDaemonRolloutEdges takes an app through the edges of its life on a
// sim board and the QEMU microcontroller at once: v1 runs and is stable;
// v2 (refused: an import the ABI lacks) and v3 (traps at start) are each
// rolled back to v1 automatically, with the spec left as written, and
// nothing more is sent once the devices are back; v4 (good) rolls out and
// becomes stable; deleting the app removes it from both devices; and the
// microcontroller, whose two app slots the app no longer holds, takes two
// new apps.
func TestDaemonRolloutEdges(t *testing.T) {
	firmware := buildMCU(t)
	d := startDaemon(t, t.TempDir(), func(cfg *daemon.Config) { cfg.MCUFirmware = firmware })
	c, ctx := d.c, context.Background()
	sent := watchTransfers(t, c)
	for name, backend := range map[string]string{"edge-mcu": "qemu", "edge-sim": "sim"} {
		if _, err := c.CreateDevice(ctx, &v1alpha1.Device{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"fleet": "edge"}},
			Spec:       v1alpha1.DeviceSpec{Board: "mps2-an385", Emulation: &v1alpha1.Emulation{Backend: backend, Enabled: true}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.CreateApplication(ctx, &v1alpha1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: "sensor"},
		Spec: v1alpha1.ApplicationSpec{
			Module: v1alpha1.ModuleRef{SHA256: uploadApp(t, c, "sensor.wasm")}, Version: "1",
			Target:  v1alpha1.Target{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"fleet": "edge"}}},
			Rollout: v1alpha1.Rollout{BatchSize: 2, HealthySeconds: 2},
			Limits:  v1alpha1.Limits{PeriodMillis: 100},
		},
	}); err != nil {
		t.Fatal(err)
	}
	waitApp(t, c, "v1 running on both, stable", func(a *v1alpha1.Application) bool {
		return a.Status.Phase == v1alpha1.AppRunning && a.Status.StableRevision == "1" && a.Status.Running == 2
	})

	for _, broken := range []struct{ version, file string }{{"2", "badimport.wasm"}, {"3", "trap.wasm"}} {
		sha := uploadApp(t, c, broken.file)
		written := updateApp(t, c, "sensor", func(app *v1alpha1.Application) {
			app.Spec.Module, app.Spec.Version = v1alpha1.ModuleRef{SHA256: sha}, broken.version
		})
		waitApp(t, c, "v"+broken.version+" rolled back to v1 on both", func(a *v1alpha1.Application) bool {
			ab := a.Status.Aborted
			return ab != nil && ab.Generation == written.Generation && ab.RolledBackTo == "1" &&
				a.Status.Running == 2 && a.Status.CurrentRevision == "1"
		})
		before := sent.count()
		time.Sleep(3 * time.Second)
		a, err := c.GetApplication(ctx, "sensor")
		if err != nil {
			t.Fatal(err)
		}
		if after := sent.count(); after != before || a.Generation != written.Generation || a.Status.Phase != v1alpha1.AppRolledBack {
			t.Errorf("v%s: %d transfers after the devices were back, generation %d (want %d), phase %s",
				broken.version, after-before, a.Generation, written.Generation, a.Status.Phase)
		}
		rows, err := c.ListApplicationDevices(ctx, "sensor", controller.RolloutRunning)
		if err != nil || len(rows.Items) != 2 || rows.Items[0].Version != "1" || rows.Items[1].Version != "1" {
			t.Errorf("v%s: running rows %+v, %v; want both devices on 1", broken.version, rows, err)
		}
	}

	v4 := uploadApp(t, c, "sensor-v2.wasm")
	updateApp(t, c, "sensor", func(app *v1alpha1.Application) {
		app.Spec.Module, app.Spec.Version = v1alpha1.ModuleRef{SHA256: v4}, "4"
	})
	waitApp(t, c, "v4 running on both, stable", func(a *v1alpha1.Application) bool {
		return a.Status.Phase == v1alpha1.AppRunning && a.Status.StableRevision == "4" && a.Status.Running == 2 && a.Status.Aborted == nil
	})

	if err := c.DeleteApplication(ctx, "sensor"); err != nil {
		t.Fatal(err)
	}
	for _, dev := range []string{"edge-mcu", "edge-sim"} {
		eventually(t, "sensor gone from "+dev, func() (bool, error) {
			s, err := appState(c, dev, "sensor")
			return s == "", fmt.Errorf("%s reports sensor %q (%v)", dev, s, err)
		})
	}

	// Both of the microcontroller's slots are free again: two apps run.
	for _, app := range []struct{ name, file string }{{"first", "sensor.wasm"}, {"second", "sensor-v2.wasm"}} {
		if _, err := c.CreateApplication(ctx, &v1alpha1.Application{
			ObjectMeta: metav1.ObjectMeta{Name: app.name},
			Spec: v1alpha1.ApplicationSpec{
				Module: v1alpha1.ModuleRef{SHA256: uploadApp(t, c, app.file)}, Version: "1",
				Target: v1alpha1.Target{Devices: []string{"edge-mcu"}},
				Limits: v1alpha1.Limits{PeriodMillis: 100},
			},
		}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the microcontroller runs two new apps", func() (bool, error) {
		dev, err := c.GetDevice(ctx, "edge-mcu")
		if err != nil {
			return false, err
		}
		states := map[string]string{}
		for _, a := range dev.Status.Apps {
			states[a.Name] = a.State + " " + a.Reason
		}
		return len(states) == 2 && states["first"] == "running " && states["second"] == "running ", fmt.Errorf("apps %v", states)
	})
}

// TestDaemonQEMU runs a microcontroller board end to end: the daemon
// starts the Wasmbed firmware in qemu-system-arm (mps2-an385) on the qemu
// backend; the board comes online through its serial link, gets the sensor
// app rolled out (telemetry arrives, its console shows the output), an
// update and a rollback; a looping app is stopped by its budget while the
// board stays up; deleting the device leaves nothing running.
func TestDaemonQEMU(t *testing.T) {
	firmware := buildMCU(t)
	dataDir := t.TempDir()
	d := startDaemon(t, dataDir, func(cfg *daemon.Config) { cfg.MCUFirmware = firmware })
	c, ctx := d.c, context.Background()

	boards, err := c.Boards(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range boards {
		if runsQEMU := strings.Contains(strings.Join(b.Backends, ","), "qemu"); runsQEMU != (b.Name == "mps2-an385") {
			t.Errorf("board %s lists backends %v", b.Name, b.Backends)
		}
	}

	events, err := c.Events(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	if _, err := c.CreateDevice(ctx, &v1alpha1.Device{
		ObjectMeta: metav1.ObjectMeta{Name: "mcu-a", Labels: map[string]string{"fleet": "mcu"}},
		Spec:       v1alpha1.DeviceSpec{Board: "mps2-an385", Emulation: &v1alpha1.Emulation{Backend: "qemu", Enabled: true}},
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "mcu-a online on its qemu board", func() (bool, error) {
		dev, err := c.GetDevice(ctx, "mcu-a")
		if err != nil {
			return false, err
		}
		b := dev.Status.Board
		return dev.Status.Phase == v1alpha1.DeviceOnline && b != nil && b.Backend == "qemu" && strings.HasPrefix(dev.Status.Firmware, "wasmbed-mcu"),
			fmt.Errorf("phase %s board %+v", dev.Status.Phase, b)
	})

	v1, err := c.UploadModule(ctx, bytes.NewReader(readApp(t, "sensor.wasm")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateApplication(ctx, &v1alpha1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: "sensor"},
		Spec: v1alpha1.ApplicationSpec{
			Module: v1alpha1.ModuleRef{SHA256: v1.SHA256}, Version: "1",
			Target: v1alpha1.Target{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"fleet": "mcu"}}},
			Limits: v1alpha1.Limits{PeriodMillis: 100},
		},
	}); err != nil {
		t.Fatal(err)
	}
	appAt := func(name, version string) {
		t.Helper()
		eventually(t, name+" "+version+" running on mcu-a", func() (bool, error) {
			a, err := c.GetApplication(ctx, name)
			if err != nil {
				return false, err
			}
			return a.Status.Phase == v1alpha1.AppRunning && a.Spec.Version == version && a.Status.Running == 1,
				fmt.Errorf("phase %s version %s running %d failed %+v", a.Status.Phase, a.Spec.Version, a.Status.Running, a.Status.FailedDevices)
		})
	}
	appAt("sensor", "1")
	for {
		e, err := events.Next()
		if err != nil {
			t.Fatalf("event stream: %v", err)
		}
		if e.Type == api.EventTelemetry && e.Device == "mcu-a" && len(e.Values) > 0 {
			break
		}
	}
	con, err := c.Console(ctx, "mcu-a")
	if err != nil {
		t.Fatal(err)
	}
	readUntil(t, con, "sensor v1 tick")
	con.Close()

	// An update, then a rollback.
	v2, err := c.UploadModule(ctx, bytes.NewReader(readApp(t, "sensor-v2.wasm")))
	if err != nil {
		t.Fatal(err)
	}
	app, err := c.GetApplication(ctx, "sensor")
	if err != nil {
		t.Fatal(err)
	}
	app.Spec.Module, app.Spec.Version = v1alpha1.ModuleRef{SHA256: v2.SHA256}, "2"
	if _, err := c.UpdateApplication(ctx, app); err != nil {
		t.Fatal(err)
	}
	appAt("sensor", "2")
	if _, err := c.RollbackApplication(ctx, "sensor"); err != nil {
		t.Fatal(err)
	}
	appAt("sensor", "1")

	// A looping app: its budget stops it; the board and the sensor run on.
	loop, err := c.UploadModule(ctx, bytes.NewReader(readApp(t, "loop.wasm")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateApplication(ctx, &v1alpha1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: "loop"},
		Spec: v1alpha1.ApplicationSpec{
			Module: v1alpha1.ModuleRef{SHA256: loop.SHA256}, Version: "1",
			Target: v1alpha1.Target{Devices: []string{"mcu-a"}},
			Limits: v1alpha1.Limits{CallTimeoutMillis: 100, PeriodMillis: 100},
		},
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "loop stopped by its budget, the board still online", func() (bool, error) {
		dev, err := c.GetDevice(ctx, "mcu-a")
		if err != nil {
			return false, err
		}
		states := map[string]string{}
		for _, a := range dev.Status.Apps {
			states[a.Name] = a.State + " " + a.Reason
		}
		return dev.Status.Phase == v1alpha1.DeviceOnline && strings.HasPrefix(states["loop"], "failed time limit") &&
			strings.HasPrefix(states["sensor"], "running"), fmt.Errorf("apps %v", states)
	})

	if err := c.DeleteDevice(ctx, "mcu-a"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "no qemu left", func() (bool, error) {
		pids := processesUnder(filepath.Join(dataDir, "qemu"))
		return len(pids) == 0, fmt.Errorf("processes %v", pids)
	})
}
