package tui

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/api"
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

	// An enrollment token of a lifetime the daemon refuses: its reason
	// shows in the footer, with the lifetime asked for in seconds.
	tm.Type("t")
	waitScreen(t, tm, "Issue an enrollment token for form-dev", "lifetime", "1h")
	tm.Send(press("ctrl+u"))
	tm.Type("soon")
	tm.Send(press("enter"))
	waitScreen(t, tm, `lifetime "soon": want a duration such as 30m, 8h or 7d`)
	tm.Send(press("ctrl+u"))
	tm.Type("8d")
	tm.Send(press("enter"))
	waitScreen(t, tm, "issue an enrollment token for device form-dev, valid for 8d? [y/n]")
	tm.Type("y")
	// The footer wraps the reason, longer than the screen is wide.
	waitScreen(t, tm, "error: token for form-dev: ttlSeconds must be at most 604800 (7 days), not", "691200")
	// One of two hours, shown once with the CA to trust.
	tm.Type("t")
	waitScreen(t, tm, "Issue an enrollment token for form-dev")
	tm.Send(press("ctrl+u"))
	tm.Type("2h")
	tm.Send(press("enter"))
	waitScreen(t, tm, "issue an enrollment token for device form-dev, valid for 2h? [y/n]")
	tm.Type("y")
	waitScreen(t, tm, "Enrollment token for form-dev", "Valid once, for", "--ca-file", "BEGIN CERTIFICATE")
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

	// Its labels, edited: the form holds the current ones, checks what
	// is typed, and replaces them all.
	tm.Type("l")
	waitScreen(t, tm, "Labels of device form-dev", "fleet=f,room=lab")
	tm.Send(press("ctrl+u"))
	tm.Type("room")
	tm.Send(press("enter"))
	waitScreen(t, tm, `label "room": want key=value`)
	tm.Type("=office, owner=ops")
	tm.Send(press("enter"))
	waitScreen(t, tm, "set the labels of device form-dev to owner=ops,room=office? [y/n]")
	tm.Type("y")
	waitScreen(t, tm, "set the labels of form-dev: done")
	dev, err = d.c.GetDevice(ctx, "form-dev")
	if err != nil || len(dev.Labels) != 2 || dev.Labels["room"] != "office" || dev.Labels["owner"] != "ops" {
		t.Errorf("labels after the edit: %v, %v; want owner=ops,room=office", dev.Labels, err)
	}
	if dev.Spec.Emulation == nil || !dev.Spec.Emulation.Enabled || dev.Spec.Board == "" {
		t.Errorf("the label edit changed the spec: %+v", dev.Spec)
	}

	// Deleted, after a no and a yes; the table follows.
	tm.Send(press("ctrl+d"))
	waitScreen(t, tm, "delete device form-dev and stop its emulated board? [y/n]")
	tm.Type("n")
	waitScreen(t, tm, "cancelled")
	if _, err := d.c.GetDevice(ctx, "form-dev"); err != nil {
		t.Fatalf("after n: %v", err)
	}
	tm.Send(press("ctrl+d"))
	waitScreen(t, tm, "delete device form-dev and stop its emulated board? [y/n]")
	tm.Type("y")
	waitScreen(t, tm, "delete device form-dev: done", "Devices (0)")
	if _, err := d.c.GetDevice(ctx, "form-dev"); !errors.Is(err, &api.Error{Reason: api.ReasonNotFound}) {
		t.Errorf("after the delete, GetDevice = %v, want not found", err)
	}
	quit(t, tm)
}

// TestFormGateway registers a gateway with the form, first with an
// endpoint the daemon refuses (its reason shows in full in the footer),
// then a good one, and deletes it again.
func TestFormGateway(t *testing.T) {
	d := startDaemon(t)
	ctx := context.Background()
	tm := newTestModel(t, d)
	waitScreen(t, tm, "gateways 1/1 up")
	tm.Type(":gw")
	tm.Send(press("enter"))
	waitScreen(t, tm, "Gateways (1)", "gw-test")

	tm.Type("n")
	waitScreen(t, tm, "New gateway", "endpoint", "capacity")
	tm.Send(press("ctrl+s"))
	waitScreen(t, tm, "name is required")
	tm.Type("gw-lab")
	tm.Send(press("tab"))
	tm.Type("lab-gateway")
	tm.Send(press("tab"))
	tm.Send(press("enter"))
	waitScreen(t, tm, "create gateway gw-lab at lab-gateway? [y/n]")
	tm.Type("y")
	// The daemon's reason is longer than the screen is wide: the footer
	// wraps it rather than cut it.
	waitScreen(t, tm, "error: create gateway gw-lab: spec.endpoint", `e.g. "gw.example.com:4423"`)
	if _, err := d.c.GetGateway(ctx, "gw-lab"); !errors.Is(err, &api.Error{Reason: api.ReasonNotFound}) {
		t.Fatalf("a refused gateway exists: %v", err)
	}

	tm.Type("n")
	waitScreen(t, tm, "New gateway")
	tm.Type("gw-lab")
	tm.Send(press("tab"))
	tm.Type("lab-gateway:8081")
	tm.Send(press("tab"))
	tm.Type("many")
	tm.Send(press("enter"))
	waitScreen(t, tm, `capacity "many": want a number of devices, 0 or more`)
	tm.Send(press("ctrl+u"))
	tm.Type("5")
	tm.Send(press("enter"))
	waitScreen(t, tm, "create gateway gw-lab at lab-gateway:8081 for at most 5 devices? [y/n]")
	tm.Type("y")
	waitScreen(t, tm, "create gateway gw-lab: done", "Gateways (2)")
	gw, err := d.c.GetGateway(ctx, "gw-lab")
	if err != nil || gw.Spec.Endpoint != "lab-gateway:8081" || gw.Spec.Capacity != 5 {
		t.Fatalf("gateway gw-lab = %+v, %v; want lab-gateway:8081 for 5", gw.Spec, err)
	}

	// gw-lab sorts first.
	tm.Type("g")
	tm.Send(press("ctrl+d"))
	waitScreen(t, tm, "delete gateway gw-lab? [y/n]")
	tm.Type("y")
	waitScreen(t, tm, "delete gateway gw-lab: done", "Gateways (1)")
	if _, err := d.c.GetGateway(ctx, "gw-lab"); !errors.Is(err, &api.Error{Reason: api.ReasonNotFound}) {
		t.Errorf("after the delete, GetGateway = %v, want not found", err)
	}
	m := quit(t, tm)
	if _, err := d.c.GetGateway(ctx, "gw-test"); err != nil {
		t.Errorf("the daemon's own gateway: %v", err)
	}
	if m.footerH != 1 {
		t.Errorf("the footer takes %d lines after the error went, want 1", m.footerH)
	}
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

	// Deleted from its detail, after a yes.
	tm.Send(press("enter"))
	waitScreen(t, tm, "Application form-app")
	tm.Send(press("ctrl+d"))
	waitScreen(t, tm, "delete application form-app? [y/n]")
	tm.Type("y")
	waitScreen(t, tm, "delete application form-app: done", "application form-app is gone")
	if _, err := d.c.GetApplication(ctx, "form-app"); !errors.Is(err, &api.Error{Reason: api.ReasonNotFound}) {
		t.Errorf("after the delete, GetApplication = %v, want not found", err)
	}
	tm.Send(press("esc"))
	waitScreen(t, tm, "Applications (0)")
	quit(t, tm)
}

func TestParseLifetime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
		out  string // formatLifetime(want)
	}{
		{"1h", time.Hour, true, "1h"},
		{"90m", 90 * time.Minute, true, "1h30m"},
		{"45s", 45 * time.Second, true, "45s"},
		{"7d", 7 * 24 * time.Hour, true, "7d"},
		{"48h", 48 * time.Hour, true, "2d"},
		{"1h0m30s", time.Hour + 30*time.Second, true, "1h0m30s"},
		{"", 0, false, ""},
		{"0s", 0, false, ""},
		{"-1h", 0, false, ""},
		{"soon", 0, false, ""},
		{"1.5d", 0, false, ""},
		{"d", 0, false, ""},
	} {
		got, err := parseLifetime(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseLifetime(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
			continue
		}
		if tc.ok {
			if s := formatLifetime(got); s != tc.out {
				t.Errorf("formatLifetime(%v) = %q, want %q", got, s, tc.out)
			}
		}
	}
}

// TestFooterError shows an action's error in the footer: marked as one,
// wrapped over as many lines as it needs (three at most), the view above
// it made shorter so that the screen keeps its height, and back to one
// line at the next key.
func TestFooterError(t *testing.T) {
	m := bigFleet(t, 30)
	reason := strings.Repeat("the daemon says why at length ", 8)
	m.Update(actionDoneMsg{what: "create gateway gw-x", err: &api.Error{Reason: api.ReasonInvalid, Message: reason}})
	screen := m.View()
	lines := strings.Split(screen, "\n")
	if len(lines) != termHeight {
		t.Fatalf("screen has %d lines, want %d:\n%s", len(lines), termHeight, screen)
	}
	if m.footerH != maxStatusLines {
		t.Errorf("footer takes %d lines, want %d", m.footerH, maxStatusLines)
	}
	foot := lines[termHeight-maxStatusLines:]
	if !strings.HasPrefix(foot[0], " error: create gateway gw-x: the daemon says why") || !strings.HasSuffix(strings.TrimSpace(foot[2]), ellipsis) {
		t.Errorf("footer:\n%s", strings.Join(foot, "\n"))
	}
	for i, l := range lines {
		if w := visibleWidth(l); w != termWidth {
			t.Errorf("line %d is %d columns wide", i, w)
		}
	}
	m.Update(press("j"))
	if lines := strings.Split(m.View(), "\n"); m.footerH != 1 || len(lines) != termHeight || strings.Contains(m.View(), "error:") {
		t.Errorf("after a key the footer takes %d lines, the screen %d", m.footerH, len(lines))
	}
}

// openForm presses key in m's active view and opens the form it pushes,
// returning the form and the Cmd of its Init (not run).
func openForm(t *testing.T, m *Model, key string) (*form, tea.Cmd) {
	t.Helper()
	cmd := m.key(press(key))
	if cmd == nil {
		t.Fatalf("%q opened nothing", key)
	}
	push, ok := cmd().(pushMsg)
	if !ok {
		t.Fatalf("%q did not push a view", key)
	}
	init := m.push(push.v)
	f, ok := m.active().(*form)
	if !ok {
		t.Fatalf("%q pushed a %T, want a form", key, m.active())
	}
	return f, init
}

// TestFormDeviceNoCatalog opens the New device form while the daemon is
// unreachable: the board catalog fails to load, the keys that move
// between fields still do (they used to focus the board field as a text
// input that was never made, and panic), and submitting says why not.
func TestFormDeviceNoCatalog(t *testing.T) {
	m := bigFleet(t, 3) // its client dials 127.0.0.1:1: refused
	f, init := openForm(t, m, "n")
	msg := init()
	if bm, ok := msg.(boardsMsg); !ok || bm.err == nil {
		t.Fatalf("the catalog loaded from nowhere: %#v", msg)
	}
	m.Update(msg)
	if !strings.Contains(f.View(), "board catalog:") {
		t.Errorf("the form does not say the catalog failed:\n%s", f.View())
	}
	f.fields[0].input.SetValue("lab-3")
	for _, k := range []string{"tab", "down", "enter", "up", "shift+tab"} {
		m.Update(press(k))
	}
	if f.focus != 1 {
		t.Errorf("focus is on field %d, want 1 (board)", f.focus)
	}
	if !strings.Contains(f.View(), "(not loaded)") {
		t.Errorf("the board field does not say the catalog is missing:\n%s", f.View())
	}
	m.Update(press("ctrl+s"))
	if f.question != "" || !strings.Contains(f.err, "no board: the board catalog could not be loaded") {
		t.Errorf("submitted without a board: question %q, error %q", f.question, f.err)
	}
}

// TestFormFooter: at 80 columns every form's footer shows esc, on every
// field, and says what enter does there.
func TestFormFooter(t *testing.T) {
	m := bigFleet(t, 1)
	dev := m.sh.cache.devices["dev-00000"]
	forms := map[string]*form{
		"device":  newDeviceForm(m.sh),
		"token":   newTokenForm(m.sh, dev.Name),
		"labels":  newLabelsForm(m.sh, dev),
		"deploy":  newDeployForm(m.sh, ""),
		"gateway": newGatewayForm(m.sh),
	}
	forms["device"].onMsg(forms["device"], boardsMsg{boards: []api.Board{{Name: "mps2-an385", Backends: []string{"sim"}}}})
	for name, f := range forms {
		f.SetSize(termWidth, termHeight)
		for {
			lines := strings.Split(f.View(), "\n")
			foot := lines[len(lines)-1]
			if w := visibleWidth(foot); w != termWidth {
				t.Errorf("%s form, field %d: the footer is %d columns wide", name, f.focus, w)
			}
			if !strings.Contains(foot, "<esc> cancel") {
				t.Errorf("%s form, field %d: no esc in the footer %q", name, f.focus, foot)
			}
			enter := "<tab/enter> next"
			if !f.hasNext() {
				enter = "<enter> submit"
			}
			if !strings.Contains(foot, enter) {
				t.Errorf("%s form, field %d: the footer %q lacks %q", name, f.focus, foot, enter)
			}
			if !f.move(1) {
				break
			}
		}
	}
}

// TestFormDeviceEmulationHint: the emulation field says what its value
// means, on and off.
func TestFormDeviceEmulationHint(t *testing.T) {
	m := bigFleet(t, 1)
	f := newDeviceForm(m.sh)
	f.SetSize(termWidth, termHeight)
	if !strings.Contains(f.View(), "< on >  the daemon runs the board") {
		t.Errorf("emulation on:\n%s", f.View())
	}
	f.field("emulation").choice = 1
	v := f.View()
	if !strings.Contains(v, "< off >  a real board: it enrolls with a token (t)") || strings.Contains(v, "the daemon runs the board") {
		t.Errorf("emulation off:\n%s", v)
	}
}
