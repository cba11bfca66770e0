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

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon"
	"wasmbed.io/wasmbed/daemon/api"
)

// TestDaemonQEMU runs a microcontroller board end to end: the daemon
// starts the Wasmbed firmware in qemu-system-arm (mps2-an385) on the qemu
// backend; the board comes online through its serial link, gets the sensor
// app rolled out (telemetry arrives, its console shows the output), an
// update and a rollback; a looping app is stopped by its budget while the
// board stays up; deleting the device leaves nothing running.
func TestDaemonQEMU(t *testing.T) {
	for _, tool := range []string{"arm-none-eabi-gcc", "qemu-system-arm", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm): %v", tool, err)
		}
	}
	build := t.TempDir()
	if out, err := exec.Command("make", "-C", filepath.Join("..", "firmware", "mcu"), "BUILD="+build).CombinedOutput(); err != nil {
		t.Fatalf("make firmware: %v\n%s", err, out)
	}
	dataDir := t.TempDir()
	d := startDaemon(t, dataDir, func(cfg *daemon.Config) { cfg.MCUFirmware = filepath.Join(build, "wasmbed-mcu.elf") })
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
