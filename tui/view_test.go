package tui

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/api"
	"wasmbed.io/wasmbed/daemon/client"
)

func TestKeyBytes(t *testing.T) {
	for _, tc := range []struct {
		k    tea.KeyMsg
		want string
	}{
		{tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("h")}, "h"},
		{tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("é")}, "é"},
		{tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("x"), Alt: true}, "\x1bx"},
		{tea.KeyMsg{Type: tea.KeySpace}, " "},
		{tea.KeyMsg{Type: tea.KeyEnter}, "\r"},
		{tea.KeyMsg{Type: tea.KeyTab}, "\t"},
		{tea.KeyMsg{Type: tea.KeyBackspace}, "\x7f"},
		{tea.KeyMsg{Type: tea.KeyCtrlC}, "\x03"},
		{tea.KeyMsg{Type: tea.KeyCtrlD}, "\x04"},
		{tea.KeyMsg{Type: tea.KeyEsc}, "\x1b"},
		{tea.KeyMsg{Type: tea.KeyUp}, "\x1b[A"},
		{tea.KeyMsg{Type: tea.KeyLeft}, "\x1b[D"},
		{tea.KeyMsg{Type: tea.KeyF1}, ""},
	} {
		if got := string(keyBytes(tc.k)); got != tc.want {
			t.Errorf("keyBytes(%v) = %q, want %q", tc.k, got, tc.want)
		}
	}
}

func TestScrollback(t *testing.T) {
	for _, tc := range []struct {
		name   string
		chunks []string
		want   string
	}{
		{"lines", []string{"boot\r\nready\r\n", "dev-a> "}, "boot\nready\ndev-a> "},
		{"echo and backspace", []string{"dev-a> helpp", "\x7f", "\r\n"}, "dev-a> help\n"},
		{"colors dropped", []string{"\x1b[32mok\x1b[0m\r\n"}, "ok\n"},
		{"tabs", []string{"a\tb\r\n"}, "a       b\n"},
		{"rune split across reads", []string{"temp 21\xc2", "\xb0C\r\n"}, "temp 21°C\n"},
		{"other controls dropped", []string{"a\x07b\x00c"}, "abc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s scrollback
			for _, c := range tc.chunks {
				s.write([]byte(c))
			}
			if got := s.String(); got != tc.want {
				t.Errorf("scrollback = %q, want %q", got, tc.want)
			}
		})
	}

	var s scrollback
	for i := range maxScrollback + 10 {
		s.write(fmt.Appendf(nil, "line %d\r\n", i))
	}
	if len(s.lines) != maxScrollback || s.lines[0] != "line 10" {
		t.Errorf("scrollback keeps %d lines from %q, want %d from line 10", len(s.lines), s.lines[0], maxScrollback)
	}
}

func TestPromptEdit(t *testing.T) {
	var p prompt
	p.open(promptFilter, "room=")
	for _, k := range []tea.KeyMsg{
		{Type: tea.KeyRunes, Runes: []rune("lab")},
		{Type: tea.KeySpace, Runes: []rune(" ")},
		{Type: tea.KeyRunes, Runes: []rune("mpx")},
		{Type: tea.KeyBackspace},
		{Type: tea.KeyRunes, Runes: []rune("s")},
	} {
		p.edit(k)
	}
	if got := p.String(); got != "room=lab mps" {
		t.Errorf("prompt = %q, want %q", got, "room=lab mps")
	}
	p.edit(tea.KeyMsg{Type: tea.KeyCtrlW})
	if got := p.View(); got != "/room=lab _" {
		t.Errorf("prompt after ctrl+w = %q", got)
	}
	p.edit(tea.KeyMsg{Type: tea.KeyCtrlU})
	if got := p.String(); got != "" {
		t.Errorf("prompt after ctrl+u = %q", got)
	}
}

// bigFleet is a root model whose cache holds n devices made from the
// real device in testdata, showing the devices view at 80x24, with no
// daemon behind it (nothing here does I/O).
func bigFleet(tb testing.TB, n int) *Model {
	tb.Helper()
	c, err := client.New("http://127.0.0.1:1")
	if err != nil {
		tb.Fatal(err)
	}
	base := load[v1alpha1.Device](tb, "device.json")
	now := base.Status.LastSeen.Add(time.Minute)
	m, err := New(Options{Client: c, Address: "http://127.0.0.1:3001", Now: func() time.Time { return now }})
	if err != nil {
		tb.Fatal(err)
	}
	devs := make([]v1alpha1.Device, n)
	boards := []string{"mps2-an385", "nrf52840-dk", "stm32f746g-disco", "esp32-devkitc"}
	for i := range devs {
		d := base.DeepCopy()
		d.Name = fmt.Sprintf("dev-%05d", i)
		d.Spec.Board = boards[i%len(boards)]
		d.Status.RTTMicros = int64(100 + i%5000)
		if i%7 == 0 {
			d.Status.Phase = v1alpha1.DeviceOffline
		}
		devs[i] = *d
	}
	m.sh.cache.reset(devs, nil, nil, true)
	m.connected, m.updated = true, now
	m.Update(tea.WindowSizeMsg{Width: termWidth, Height: termHeight})
	m.refresh()
	return m
}

// TestDevicesViewVirtualized checks that a screen of a large fleet holds
// one screen of rows, and that moving and sorting work on all of them.
func TestDevicesViewVirtualized(t *testing.T) {
	m := bigFleet(t, 10000)
	screen := m.View()
	lines := strings.Split(screen, "\n")
	if len(lines) != termHeight {
		t.Fatalf("screen has %d lines, want %d", len(lines), termHeight)
	}
	rows := termHeight - 5 // header 2, title, column titles, footer
	if !strings.Contains(screen, "> dev-00000 ") || !strings.Contains(screen, fmt.Sprintf(" dev-%05d ", rows-1)) || strings.Contains(screen, fmt.Sprintf(" dev-%05d ", rows)) {
		t.Errorf("first screen does not show exactly dev-00000 to dev-%05d:\n%s", rows-1, screen)
	}
	if !strings.Contains(lines[1], "devices 8571/10000 online") {
		t.Errorf("header: %q", lines[1])
	}

	m.Update(press("G"))
	if screen := m.View(); !strings.Contains(screen, "> dev-09999 ") {
		t.Errorf("after G the cursor is not on the last device:\n%s", screen)
	}
	m.Update(press("T")) // by round trip: 100µs first
	m.Update(press("g"))
	if screen := m.View(); !strings.Contains(screen, "> dev-00000 ") || !strings.Contains(screen, "RTT↑") {
		t.Errorf("sorted by RTT, the first row is not dev-00000:\n%s", screen)
	}
	m.Update(press("T")) // again: reversed, 5099µs first, names reversed too
	m.Update(press("g"))
	if screen := m.View(); !strings.Contains(screen, "> dev-09999 ") || !strings.Contains(screen, "RTT↓") {
		t.Errorf("reverse RTT order does not start at dev-09999:\n%s", screen)
	}
}

// BenchmarkDevicesView measures one frame of the devices view (header,
// title, a screen of rows, footer) at 80x24 over a large cache.
func BenchmarkDevicesView(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			m := bigFleet(b, n)
			b.ReportAllocs()
			for b.Loop() {
				_ = m.View()
			}
		})
	}
}

// BenchmarkDevicesSync measures rebuilding the devices table (filter and
// sort) after the cache changed, which happens at most once per refresh.
func BenchmarkDevicesSync(b *testing.B) {
	m := bigFleet(b, 10000)
	v := m.views["devices"].(*devicesView)
	b.ReportAllocs()
	for b.Loop() {
		v.dirty = true
		v.Sync()
	}
}

// TestColorsKeepWidths renders a screen with colors on: the escape
// sequences are there, and every line still fills exactly the width.
func TestColorsKeepWidths(t *testing.T) {
	lipgloss.SetColorProfile(termenv.TrueColor)
	defer lipgloss.SetColorProfile(termenv.Ascii)
	m := bigFleet(t, 50)
	screen := m.View()
	if !strings.Contains(screen, "\x1b[") {
		t.Fatal("no colors in the screen with the TrueColor profile")
	}
	for i, line := range strings.Split(screen, "\n") {
		if w := visibleWidth(line); w != termWidth {
			t.Errorf("line %d is %d columns wide, want %d: %q", i, w, termWidth, line)
		}
	}
}

// navFleet is a root model over a cache of gateways gw and gw-tui and
// four devices: dev-1 on gw, dev-2 and gw-named on gw-tui, and dev-4 on
// none; no daemon behind it.
func navFleet(t *testing.T) *Model {
	t.Helper()
	m := bigFleet(t, 0)
	base := load[v1alpha1.Device](t, "device.json")
	var devs []v1alpha1.Device
	for _, d := range []struct{ name, gw string }{{"dev-1", "gw"}, {"dev-2", "gw-tui"}, {"gw-named", "gw-tui"}, {"dev-4", ""}} {
		dev := base.DeepCopy()
		dev.Name, dev.Spec.Gateway, dev.Status.Gateway = d.name, d.gw, d.gw
		devs = append(devs, *dev)
	}
	gwBase := load[v1alpha1.Gateway](t, "gateway.json")
	var gws []v1alpha1.Gateway
	for _, name := range []string{"gw", "gw-tui"} {
		g := gwBase.DeepCopy()
		g.Name = name
		gws = append(gws, *g)
	}
	m.sh.cache.reset(devs, nil, gws, true)
	m.refresh()
	return m
}

// do runs cmd, which must answer at once (no ticks, no I/O), and hands
// its message to m.
func do(m *Model, cmd tea.Cmd) {
	if cmd != nil {
		m.Update(cmd())
	}
}

// deviceNames are the names of the devices view's rows.
func deviceNames(m *Model) []string {
	var names []string
	for _, d := range m.views["devices"].(*devicesView).rows {
		names = append(names, d.Name)
	}
	return names
}

// TestGatewayDevices opens a gateway's devices from the gateways view:
// exactly the devices on it, not those of gw-tui nor those named after
// it.
func TestGatewayDevices(t *testing.T) {
	m := navFleet(t)
	do(m, m.key(press(":")))
	for _, r := range "gw" {
		m.Update(press(string(r)))
	}
	do(m, m.key(press("enter")))
	if _, ok := m.active().(*gatewaysView); !ok {
		t.Fatalf(":gw opened %T", m.active())
	}
	do(m, m.key(press("enter"))) // the cursor is on gw
	if got := deviceNames(m); strings.Join(got, " ") != "dev-1" {
		t.Errorf("the devices of gw are %v, want [dev-1]", got)
	}
	if title := m.active().Title(); title != "Devices (1/4) /gateway:gw" {
		t.Errorf("title %q", title)
	}
}

// TestConsoleResizeFollows shrinks the terminal under a console that
// follows the board's output (tmux resize-window 80x24 to 60x20): it
// still shows the newest line after the resize and as the board prints
// more. Scrolled back, it stays where it was and says so.
func TestConsoleResizeFollows(t *testing.T) {
	m := bigFleet(t, 1)
	v := newConsoleView(m.sh, "dev-00000")
	m.push(v) // its attach Cmd is not run: the test feeds the session
	v.id = m.sh.nextID()
	print := func(from, to int) {
		var b strings.Builder
		for i := from; i < to; i++ {
			fmt.Fprintf(&b, "line %d\r\n", i)
		}
		m.Update(consoleDataMsg{id: v.id, data: []byte(b.String())})
	}
	lastLine := func() string {
		lines := strings.Split(strings.TrimRight(m.View(), " \n"), "\n")
		return strings.TrimSpace(lines[len(lines)-1])
	}
	print(0, 100)
	if got := lastLine(); got != "line 99" {
		t.Fatalf("at 80x24 the last line is %q, want line 99", got)
	}
	m.Update(tea.WindowSizeMsg{Width: 60, Height: 20})
	if got := lastLine(); got != "line 99" {
		t.Errorf("after the resize the last line is %q, want line 99", got)
	}
	print(100, 105)
	if got := lastLine(); got != "line 104" {
		t.Errorf("after more output the last line is %q, want line 104", got)
	}
	if strings.Contains(m.View(), "scrolled back") {
		t.Errorf("at the bottom the console says it is scrolled back:\n%s", m.View())
	}

	// Scrolled back, a resize and more output leave it there.
	m.Update(press("pgup"))
	m.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	print(105, 110)
	if got := lastLine(); strings.HasPrefix(got, "line 10") && len(got) == len("line 109") {
		t.Errorf("scrolled back, the console jumped to the newest line %q", got)
	}
	if !strings.Contains(m.View(), "scrolled back") {
		t.Errorf("scrolled back, the console does not say so:\n%s", m.View())
	}
}

// footerOf is the last line of m's screen.
func footerOf(m *Model) string {
	lines := strings.Split(m.View(), "\n")
	return lines[len(lines)-1]
}

// helpOf is the help m opens over its active view; it is closed again.
func helpOf(t *testing.T, m *Model) string {
	t.Helper()
	m.Update(press("?"))
	h, ok := m.active().(*helpView)
	if !ok {
		t.Fatalf("? opened %T", m.active())
	}
	text := h.View()
	m.Update(press("esc"))
	return text
}

// TestFilterOffered: / is advertised (footer, help) only where the view
// has a filter. The device detail has none; the application detail
// filters its devices, and what is typed after / goes to the filter, not
// to the view's keys (d would open the deploy form).
func TestFilterOffered(t *testing.T) {
	m := navFleet(t)
	app := load[v1alpha1.Application](t, "application.json")
	m.sh.cache.putApp(app)
	m.refresh()
	if !strings.Contains(footerOf(m), "</> filter") || !strings.Contains(helpOf(t, m), "filter: ") {
		t.Errorf("the devices view does not offer its filter: %q", footerOf(m))
	}

	do(m, m.key(press("enter")))
	if _, ok := m.active().(*deviceView); !ok {
		t.Fatalf("enter opened %T", m.active())
	}
	if f := footerOf(m); strings.Contains(f, "</>") || !strings.Contains(f, "<esc> back") {
		t.Errorf("the device detail's footer: %q", f)
	}
	if h := helpOf(t, m); strings.Contains(h, "filter: ") {
		t.Errorf("the device detail's help offers a filter:\n%s", h)
	}

	m.Update(press("esc"))
	do(m, m.jump("apps", nil))
	do(m, m.key(press("enter")))
	v, ok := m.active().(*appView)
	if !ok {
		t.Fatalf("enter opened %T", m.active())
	}
	m.Update(appDevicesMsg{id: v.poll, rows: load[v1alpha1.DeviceRolloutList](t, "application-devices.json").Items})
	if !strings.Contains(footerOf(m), "</> filter") || !strings.Contains(helpOf(t, m), "filter: ") {
		t.Errorf("the application detail does not offer its filter: %q", footerOf(m))
	}
	for _, k := range []string{"/", "d", "e", "v", "-", "b"} {
		do(m, m.key(press(k)))
	}
	m.Update(press("enter"))
	if m.active() != v {
		t.Fatalf("typing a filter opened %T", m.active())
	}
	if len(v.rows) != 1 || v.rows[0].Device != "dev-b" || v.Title() != "Application sensor /dev-b" {
		t.Errorf("filtered on dev-b: rows %+v, title %q", v.rows, v.Title())
	}
	m.Update(press("esc"))
	if len(v.rows) != 2 || m.active() != v {
		t.Errorf("esc did not clear the filter first: %d rows, %T", len(v.rows), m.active())
	}
}

// TestEscGoesBack: with no filter to clear and nothing open over the
// view, esc goes back to the view a jump left, as far back as the jumps
// went; details and prompts keep their own esc.
func TestEscGoesBack(t *testing.T) {
	m := navFleet(t)
	name := func() string { return m.active().Title() }
	do(m, m.jump("gateways", nil))
	do(m, m.key(press("enter"))) // gw's devices
	if got := name(); got != "Devices (1/4) /gateway:gw" {
		t.Fatalf("enter on gw shows %q", got)
	}
	do(m, m.key(press("esc")))
	if got := name(); got != "Devices (4)" {
		t.Errorf("the first esc shows %q, want the filter cleared", got)
	}
	do(m, m.key(press("esc")))
	if got := name(); got != "Gateways (2)" {
		t.Errorf("the second esc shows %q, want the gateways", got)
	}
	do(m, m.key(press("esc")))
	if got := name(); got != "Devices (4)" {
		t.Errorf("the third esc shows %q, want the devices the test started in", got)
	}
	do(m, m.key(press("esc")))
	if got := name(); got != "Devices (4)" || len(m.stack) != 1 {
		t.Errorf("with no history esc shows %q (%d views)", got, len(m.stack))
	}

	// :apps from the devices, then esc: the devices.
	for _, k := range []string{":", "a", "p", "p", "s", "enter"} {
		do(m, m.key(press(k)))
	}
	if got := name(); got != "Applications (0)" {
		t.Fatalf(":apps shows %q", got)
	}
	do(m, m.key(press("esc")))
	if got := name(); got != "Devices (4)" {
		t.Errorf("esc after :apps shows %q, want the devices", got)
	}

	// A detail's esc closes it, a prompt's esc closes the prompt, and
	// neither goes further back.
	do(m, m.jump("gateways", nil))
	do(m, m.key(press("enter")))
	do(m, m.key(press("esc"))) // the filter
	do(m, m.key(press("enter")))
	if _, ok := m.active().(*deviceView); !ok {
		t.Fatalf("enter opened %T", m.active())
	}
	do(m, m.key(press("esc")))
	if got := name(); got != "Devices (4)" {
		t.Errorf("esc in the detail shows %q, want the devices", got)
	}
	do(m, m.key(press(":")))
	do(m, m.key(press("esc")))
	if got := name(); got != "Devices (4)" || m.prompt.mode != promptOff {
		t.Errorf("esc in the prompt shows %q", got)
	}
	do(m, m.key(press("esc")))
	if got := name(); got != "Gateways (2)" {
		t.Errorf("esc after the detail shows %q, want the gateways", got)
	}
}

// TestAppDetailReads: the application detail reads its devices when it
// opens, every livePoll while a read is not on its way, and again when
// the application changes (after the read on its way, when one is); its
// poll's messages reach it under a device opened over it, and end once
// it is closed.
func TestAppDetailReads(t *testing.T) {
	m := navFleet(t)
	app := load[v1alpha1.Application](t, "application.json")
	m.sh.cache.putApp(app)
	rows := load[v1alpha1.DeviceRolloutList](t, "application-devices.json").Items
	do(m, m.jump("apps", nil))
	cmd := m.key(press("enter"))
	opened := cmd().(pushMsg)
	v := opened.v.(*appView)
	if m.Update(opened); m.active() != v || !v.reading {
		t.Fatalf("enter opened %T, reading %v", m.active(), v.reading)
	}
	if got := v.View(); !strings.Contains(got, "reading the devices...") {
		t.Errorf("before the first read the view shows:\n%s", got)
	}

	// A failed first read says why; the next one brings the rows.
	m.Update(appDevicesMsg{id: v.poll, err: errors.New("connection refused")})
	if got := v.View(); v.reading || !strings.Contains(got, "devices not read: connection refused") {
		t.Errorf("after a failed read (reading %v) the view shows:\n%s", v.reading, got)
	}
	if cmd := v.Watch(resourceEvent(t, 1, v1alpha1.KindApplication, "MODIFIED", app)); cmd == nil || !v.reading {
		t.Fatal("a change of the application did not read the devices")
	}
	m.Update(appDevicesMsg{id: v.poll, rows: rows})
	if len(v.rows) != 2 || v.reading || !strings.Contains(v.View(), "dev-b") {
		t.Fatalf("after a read: %d rows, reading %v", len(v.rows), v.reading)
	}

	// Events of other objects read nothing; a change while a read is on
	// its way reads once more after it.
	other := app.DeepCopy()
	other.Name = "other"
	for _, e := range []api.Event{
		resourceEvent(t, 2, v1alpha1.KindApplication, "MODIFIED", other),
		resourceEvent(t, 3, v1alpha1.KindDevice, "MODIFIED", load[v1alpha1.Device](t, "device.json")),
		{Seq: 4, Type: api.EventApp, Device: "dev-a", App: &api.AppEvent{Name: "sensor", State: "running"}},
	} {
		if cmd := v.Watch(e); cmd != nil || v.reading {
			t.Errorf("event %s %s/%s read the devices", e.Type, e.Kind, e.Name)
		}
	}
	_, cmd = v.Update(livePollMsg{id: v.poll})
	if cmd == nil || !v.reading {
		t.Fatal("the live poll did not read the devices")
	}
	if cmd := v.Watch(resourceEvent(t, 5, v1alpha1.KindApplication, "MODIFIED", app)); cmd != nil || !v.again {
		t.Fatalf("a change during a read: cmd %v, again %v", cmd != nil, v.again)
	}
	if _, cmd := v.Update(livePollMsg{id: v.poll}); cmd == nil {
		t.Error("a live poll during a read ended the poll")
	}
	if _, cmd := v.Update(appDevicesMsg{id: v.poll, rows: rows[:1]}); cmd == nil || !v.reading || v.again {
		t.Errorf("the read after a change: cmd %v, reading %v, again %v", cmd != nil, v.reading, v.again)
	}
	if len(v.rows) != 1 {
		t.Errorf("after reading one row the view has %d", len(v.rows))
	}
	// A failed read keeps the rows read before.
	m.Update(appDevicesMsg{id: v.poll, err: errors.New("connection refused")})
	if len(v.rows) != 1 || strings.Contains(v.View(), "devices not read") {
		t.Errorf("a failed read after a good one: %d rows, view:\n%s", len(v.rows), v.View())
	}

	// Under a device, the poll goes on; once closed, it ends.
	do(m, m.key(press("enter")))
	if _, ok := m.active().(*deviceView); !ok {
		t.Fatalf("enter opened %T", m.active())
	}
	if m.Update(appDevicesMsg{id: v.poll, rows: rows}); len(v.rows) != 2 {
		t.Errorf("a read under the device view did not reach the application: %d rows", len(v.rows))
	}
	if _, cmd := m.Update(livePollMsg{id: v.poll}); cmd == nil {
		t.Error("the poll under the device view ended")
	}
	m.Update(press("esc"))
	m.Update(press("esc"))
	if _, cmd := m.Update(livePollMsg{id: v.poll}); cmd != nil || len(m.stack) != 1 {
		t.Errorf("the poll outlived the application detail (%d views open)", len(m.stack))
	}
	if cmd := m.watch(resourceEvent(t, 6, v1alpha1.KindApplication, "MODIFIED", app)); cmd != nil {
		t.Error("a change of the application read its devices after the detail closed")
	}
}
