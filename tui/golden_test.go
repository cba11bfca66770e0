package tui

import (
	"context"
	"fmt"
	"testing"

	"github.com/charmbracelet/x/exp/teatest"

	"wasmbed.io/wasmbed/crds/v1alpha1"
)

// The golden tests run the console under teatest at 80x24 and at 160x48
// with the ASCII color profile against the shared fleet: a real daemon
// with two emulated devices running the sensor app. Each waits for what it
// needs to see, quits, and compares the last screen with
// testdata/<TestName>/<W>x<H>.golden; go test ./tui/... -update rewrites
// them. Values that change from run to run are masked (see mask in
// harness_test.go); each test says which.

// TestGoldenDevices shows the devices view once both devices are online.
func TestGoldenDevices(t *testing.T) {
	atGoldenSizes(t, func(t *testing.T, size termSize) {
		tm := newTestModelSize(t, fleet(t), size)
		waitScreen(t, tm, "devices 2/2 online", "apps 1/1 running")
		quitAndGolden(t, tm, size, maskDurations)
	})
}

// TestGoldenAppsJump jumps to the applications with :apps and shows the
// rollout.
func TestGoldenAppsJump(t *testing.T) {
	atGoldenSizes(t, func(t *testing.T, size termSize) {
		tm := newTestModelSize(t, fleet(t), size)
		waitScreen(t, tm, "devices 2/2 online", "apps 1/1 running")
		tm.Type(":apps")
		tm.Send(press("enter"))
		waitScreen(t, tm, "Applications (1)", "2/2")
		quitAndGolden(t, tm, size, maskDurations)
	})
}

// TestGoldenAppDetail opens the application and shows each device's part
// of the rollout.
func TestGoldenAppDetail(t *testing.T) {
	atGoldenSizes(t, func(t *testing.T, size termSize) {
		tm := newTestModelSize(t, fleet(t), size)
		waitScreen(t, tm, "devices 2/2 online", "apps 1/1 running")
		tm.Type(":app")
		tm.Send(press("enter"))
		waitScreen(t, tm, "Applications (1)")
		tm.Send(press("enter"))
		waitScreen(t, tm, "Application sensor", "dev-b")
		quitAndGolden(t, tm, size, maskDurations)
	})
}

// TestGoldenHelp shows the help of the devices view, made from its keys.
func TestGoldenHelp(t *testing.T) {
	atGoldenSizes(t, func(t *testing.T, size termSize) {
		tm := newTestModelSize(t, fleet(t), size)
		waitScreen(t, tm, "devices 2/2 online")
		tm.Type("?")
		waitScreen(t, tm, "Help", "sort by cert")
		quitAndGolden(t, tm, size, maskDurations)
	})
}

// TestGoldenFilter filters the devices by a label.
func TestGoldenFilter(t *testing.T) {
	atGoldenSizes(t, func(t *testing.T, size termSize) {
		tm := newTestModelSize(t, fleet(t), size)
		waitScreen(t, tm, "devices 2/2 online")
		tm.Type("/room=office")
		tm.Send(press("enter"))
		waitScreen(t, tm, "Devices (1/2) /room=office")
		quitAndGolden(t, tm, size, maskDurations)
	})
}

// TestGoldenTopology shows the fleet as a tree.
func TestGoldenTopology(t *testing.T) {
	atGoldenSizes(t, func(t *testing.T, size termSize) {
		tm := newTestModelSize(t, fleet(t), size)
		waitScreen(t, tm, "devices 2/2 online", "apps 1/1 running")
		tm.Type(":topology")
		tm.Send(press("enter"))
		waitScreen(t, tm, "gw-test  up", "2/2 apps running")
		quitAndGolden(t, tm, size, maskDurations)
	})
}

// TestGoldenGateways shows the gateways once the daemon's gateway counts
// both devices (it counts them at its heartbeat, every ten seconds). Its
// endpoint's port is the kernel's pick, masked.
func TestGoldenGateways(t *testing.T) {
	d := fleet(t)
	eventually(t, "gw-test up with both devices", func() (bool, error) {
		g, err := d.c.GetGateway(context.Background(), "gw-test")
		if err != nil {
			return false, err
		}
		return g.Status.Online && g.Status.ConnectedDevices == 2, fmt.Errorf("online %v, %d devices", g.Status.Online, g.Status.ConnectedDevices)
	})
	atGoldenSizes(t, func(t *testing.T, size termSize) {
		tm := newTestModelSize(t, d, size)
		waitScreen(t, tm, "devices 2/2 online", "apps 1/1 running")
		tm.Type(":gw")
		tm.Send(press("enter"))
		waitScreen(t, tm, "Gateways (1)", "gw-test")
		quitAndGolden(t, tm, size, maskDurations, maskLoopbackPorts)
	})
}

// TestGoldenEvents shows where the rollout started the app, filtered on
// "running": dev-a, then dev-b once dev-a passed its health gate, on a
// fleet of its own so that the history holds them. The rest of the stream
// cannot make a stable frame: status updates at every heartbeat and
// telemetry keep coming, and the gateway's transfer progress and the
// device's own reports of a deploy interleave differently from run to
// run. The times are masked.
func TestGoldenEvents(t *testing.T) {
	d := newFleet(t)
	atGoldenSizes(t, func(t *testing.T, size termSize) {
		tm := newTestModelSize(t, d, size)
		waitScreen(t, tm, "devices 2/2 online", "apps 1/1 running")
		tm.Type(":events")
		tm.Send(press("enter"))
		waitScreen(t, tm, "Events (")
		tm.Type("/running")
		tm.Send(press("enter"))
		waitScreen(t, tm, "Events (2) /running telemetry hidden following")
		quitAndGolden(t, tm, size, maskClock)
	})
}

// TestGoldenDeviceDetail opens dev-a once its app has reported telemetry,
// on a fleet of its own so that its recent events are all there. Ages,
// round trips, the RTT sparkline, telemetry values and times are masked.
func TestGoldenDeviceDetail(t *testing.T) {
	d := newFleet(t)
	atGoldenSizes(t, func(t *testing.T, size termSize) {
		tm := newTestModelSize(t, d, size)
		waitScreen(t, tm, "devices 2/2 online", "apps 1/1 running")
		tm.Send(press("enter")) // the cursor is on dev-a
		waitScreen(t, tm, "Device dev-a", "RTT trend", "temperature=")
		quitAndGolden(t, tm, size, maskDetail)
	})
}

// TestGoldenConsole attaches to the console of a board that runs no app
// (an app's log lines would keep coming), types help and shows the
// shell's answer under the board's first log line. Each size has a daemon
// of its own: a board's console keeps what was typed before. The log
// line's time and the gateway's port are masked.
func TestGoldenConsole(t *testing.T) {
	atGoldenSizes(t, func(t *testing.T, size termSize) {
		d := startDaemon(t)
		ctx := context.Background()
		if _, err := d.c.CreateDevice(ctx, emulated("dev-c", "mps2-an385", nil, true)); err != nil {
			t.Fatal(err)
		}
		eventually(t, "dev-c online", func() (bool, error) {
			dev, err := d.c.GetDevice(ctx, "dev-c")
			return err == nil && dev.Status.Phase == v1alpha1.DeviceOnline, err
		})
		tm := newTestModelSize(t, d, size)
		waitScreen(t, tm, "devices 1/1 online")
		tm.Type("c")
		waitScreen(t, tm, "console dev-c", "attached", "session up")
		tm.Type("help")
		tm.Send(press("enter"))
		waitScreen(t, tm, "commands: status, apps, uptime, help", "dev-c> ")
		// Every key goes to the board, q too: the test ends the program.
		if err := tm.Quit(); err != nil {
			t.Fatal(err)
		}
		m := tm.FinalModel(t, teatest.WithFinalTimeout(waitLimit)).(*Model)
		m.Close()
		requireGolden(t, m, size, maskClock, maskLoopbackPorts)
	})
}
