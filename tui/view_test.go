package tui

import (
	"fmt"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"wasmbed.io/wasmbed/crds/v1alpha1"
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
