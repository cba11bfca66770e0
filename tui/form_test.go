package tui

import (
	"context"
	"path/filepath"
	"testing"

	"wasmbed.io/wasmbed/crds/v1alpha1"
)

// TestFormDevice creates an emulated device with the form, issues an
// enrollment token for it, and stops and starts its board, each confirmed,
// against a daemon of its own.
func TestFormDevice(t *testing.T) {
	d := startDaemon(t)
	ctx := context.Background()
	tm := newTestModel(t, d)
	waitScreen(t, tm, "Devices (0)")

	tm.Type("n")
	waitScreen(t, tm, "New device", "< on >", "< sim >")
	tm.Send(press("ctrl+s"))
	waitScreen(t, tm, "name is required")
	tm.Type("form-dev")
	tm.Send(press("tab")) // board: the first of the catalog
	tm.Send(press("tab"))
	tm.Type("room=lab, fleet=f")
	tm.Send(press("tab")) // emulation on
	tm.Send(press("tab")) // backend sim
	tm.Send(press("enter"))
	waitScreen(t, tm, "create device form-dev (", "emulated on sim)? [y/n]")
	tm.Type("y")
	waitScreen(t, tm, "create device form-dev: done", "form-dev")
	dev, err := d.c.GetDevice(ctx, "form-dev")
	if err != nil {
		t.Fatal(err)
	}
	if dev.Labels["room"] != "lab" || dev.Labels["fleet"] != "f" || dev.Spec.Board == "" {
		t.Errorf("device = %+v %+v, want labels room=lab fleet=f and a board", dev.Labels, dev.Spec)
	}
	if em := dev.Spec.Emulation; em == nil || em.Backend != "sim" || !em.Enabled {
		t.Errorf("emulation = %+v, want sim, enabled", dev.Spec.Emulation)
	}

	// An enrollment token, shown once with the CA to trust.
	tm.Type("t")
	waitScreen(t, tm, "issue an enrollment token for device form-dev? [y/n]")
	tm.Type("y")
	waitScreen(t, tm, "Enrollment token for form-dev", "--ca-file", "BEGIN CERTIFICATE")
	tm.Send(press("esc"))
	waitScreen(t, tm, "Devices (1)")

	// Stop the board, then start it again.
	tm.Type("e")
	waitScreen(t, tm, "stop the board of device form-dev on sim? [y/n]")
	tm.Type("y")
	waitScreen(t, tm, "stop emulation of form-dev: done")
	eventually(t, "emulation stopped", func() (bool, error) {
		dev, err := d.c.GetDevice(ctx, "form-dev")
		return err == nil && !dev.Spec.Emulation.Enabled, err
	})
	tm.Type("e")
	waitScreen(t, tm, "start the board of device form-dev on sim? [y/n]")
	tm.Type("n")
	waitScreen(t, tm, "cancelled")
	tm.Type("e")
	waitScreen(t, tm, "start the board of device form-dev on sim? [y/n]")
	tm.Type("y")
	waitScreen(t, tm, "start emulation of form-dev: done")
	dev, err = d.c.GetDevice(ctx, "form-dev")
	if err != nil || !dev.Spec.Emulation.Enabled {
		t.Errorf("after start: %v, emulation %+v", err, dev.Spec.Emulation)
	}
	quit(t, tm)
}

// TestFormDeploy deploys a module from a file: first a new application,
// then a new version of it, each confirmed.
func TestFormDeploy(t *testing.T) {
	d := startDaemon(t)
	ctx := context.Background()
	wasm, err := filepath.Abs(filepath.Join("..", "testdata", "apps", "sensor.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	tm := newTestModel(t, d)
	waitScreen(t, tm, "Devices (0)")
	tm.Type(":apps")
	tm.Send(press("enter"))
	waitScreen(t, tm, "Applications (0)")

	tm.Type("d")
	waitScreen(t, tm, "Deploy a module")
	tm.Type("form-app")
	tm.Send(press("tab"))
	tm.Type("1")
	tm.Send(press("tab"))
	tm.Type(wasm)
	tm.Send(press("enter")) // not the last field: next
	tm.Send(press("enter")) // the selector, empty: a new app needs one
	waitScreen(t, tm, "a new application needs a selector")
	tm.Type("room=lab")
	tm.Send(press("enter"))
	waitScreen(t, tm, "create application form-app version 1 from", "[y/n]")
	tm.Type("y")
	waitScreen(t, tm, "deploy form-app 1: done", "Applications (1)")
	a, err := d.c.GetApplication(ctx, "form-app")
	if err != nil {
		t.Fatal(err)
	}
	if a.Spec.Version != "1" || len(a.Spec.Module.SHA256) != 64 || a.Spec.Target.Selector == nil || a.Spec.Target.Selector.MatchLabels["room"] != "lab" {
		t.Errorf("application spec = %+v", a.Spec)
	}
	sha := a.Spec.Module.SHA256

	// The selected application's name and selector are filled in.
	tm.Type("d")
	waitScreen(t, tm, "Deploy a module", "form-app", "room=lab")
	tm.Send(press("tab"))
	tm.Type("2")
	tm.Send(press("tab"))
	tm.Type(wasm)
	tm.Send(press("ctrl+s"))
	waitScreen(t, tm, "update application form-app from version 1 to 2 with", "[y/n]")
	tm.Type("y")
	waitScreen(t, tm, "deploy form-app 2: done")
	a, err = d.c.GetApplication(ctx, "form-app")
	if err != nil {
		t.Fatal(err)
	}
	if a.Spec.Version != "2" || a.Spec.Module.SHA256 != sha || a.Spec.Target.Selector.MatchLabels["room"] != "lab" {
		t.Errorf("after update: spec = %+v", a.Spec)
	}
	if a.Status.Phase == v1alpha1.AppFailed {
		t.Errorf("application failed: %+v", a.Status)
	}

	// esc leaves the form without doing anything.
	tm.Type("d")
	waitScreen(t, tm, "Deploy a module")
	tm.Send(press("esc"))
	waitScreen(t, tm, "cancelled")
	quit(t, tm)
}
