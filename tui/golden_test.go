package tui

import (
	"testing"
)

// The golden tests run the console under teatest at 80x24 and at 160x48
// with the ASCII color profile against the shared fleet: a real daemon
// with two emulated devices running the sensor app. Each waits for what it
// needs to see, quits, and compares the last screen (durations masked)
// with testdata/<TestName>/<W>x<H>.golden; go test ./tui/... -update
// rewrites them.

// TestGoldenDevices shows the devices view once both devices are online.
func TestGoldenDevices(t *testing.T) {
	atGoldenSizes(t, func(t *testing.T, size termSize) {
		tm := newTestModelSize(t, fleet(t), size)
		waitScreen(t, tm, "devices 2/2 online", "apps 1/1 running")
		quitAndGolden(t, tm, size)
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
		quitAndGolden(t, tm, size)
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
		quitAndGolden(t, tm, size)
	})
}

// TestGoldenHelp shows the help of the devices view, made from its keys.
func TestGoldenHelp(t *testing.T) {
	atGoldenSizes(t, func(t *testing.T, size termSize) {
		tm := newTestModelSize(t, fleet(t), size)
		waitScreen(t, tm, "devices 2/2 online")
		tm.Type("?")
		waitScreen(t, tm, "Help", "sort by cert")
		quitAndGolden(t, tm, size)
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
		quitAndGolden(t, tm, size)
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
		quitAndGolden(t, tm, size)
	})
}
