package tui

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
)

// deviceAppLine is one app of a device as the detail view shows it: what
// the device reports in its status, completed by its latest app or
// progress event.
type deviceAppLine struct {
	name, version, state, reason string
	progress                     string // "45%" while transferring
}

// deviceApps merges the apps of the device's status with what device
// events told since, sorted by name.
func deviceApps(d *v1alpha1.Device, l *deviceLive) []deviceAppLine {
	byName := map[string]*deviceAppLine{}
	for _, a := range d.Status.Apps {
		byName[a.Name] = &deviceAppLine{name: a.Name, version: a.Version, state: a.State, reason: a.Reason}
	}
	if l != nil {
		for name, ev := range l.apps {
			line := byName[name]
			if line == nil {
				line = &deviceAppLine{name: name, version: ev.Version, state: ev.State, reason: ev.Reason}
				byName[name] = line
			}
			if inTransfer(ev) && (line.version == ev.Version || line.version == "") {
				line.state = "transferring"
				line.progress = percent(ev.Sent, ev.Total)
			}
		}
	}
	out := make([]deviceAppLine, 0, len(byName))
	for _, k := range sortedKeys(byName) {
		out = append(out, *byName[k])
	}
	return out
}

// renderDevice is the text of the device detail view at width: the
// device's state, capabilities, apps, last telemetry and recent events.
func renderDevice(st *styles, d *v1alpha1.Device, l *deviceLive, now time.Time, width int) string {
	var b strings.Builder
	field := func(name, value string) {
		b.WriteString(fit("  "+st.dim.Render(fmt.Sprintf("%-12s", name))+value, width) + "\n")
	}
	section := func(name string) { b.WriteString("\n" + st.section.Render(name) + "\n") }

	phase := st.state(string(devicePhase(d)))
	if l != nil && l.known && !l.since.IsZero() {
		if l.online {
			phase += st.dim.Render(" (online " + ageOf(l.since, now) + ")")
		} else if l.reason != "" {
			phase += st.dim.Render(" (" + l.reason + ")")
		}
	}
	field("Phase", phase)
	board := d.Spec.Board
	if em := d.Spec.Emulation; em != nil {
		backend := em.Backend
		if backend == "" {
			backend = "sim"
		}
		board += st.dim.Render("  emulated on " + backend)
		if bs := d.Status.Board; bs != nil {
			board += " " + st.state(bs.State)
			if bs.Reason != "" {
				board += st.dim.Render(": " + bs.Reason)
			}
		} else if !em.Enabled {
			board += " " + st.state("Stopped")
		}
	}
	field("Board", board)
	gw := deviceGateway(d)
	if gw == "" {
		gw = "-"
	}
	field("Gateway", gw)
	field("Last seen", age(d.Status.LastSeen, now)+" ago   RTT "+rtt(d.Status.RTTMicros))
	if h := rttHistory(d, l); len(h) > 0 && d.Status.RTTMicros > 0 {
		field("RTT trend", rttTrend(h, st.ascii()))
	} else if len(h) > 0 {
		// No round trip now (a restarted board, an offline device): the
		// samples are the past, not the trend of the RTT above.
		field("RTT earlier", staleTrend(h, st.ascii())+st.dim.Render("; none now"))
	}
	if d.Status.Firmware != "" {
		field("Firmware", d.Status.Firmware)
	}
	cert, _ := expiry(d.Status.CertificateExpiry, now)
	field("Certificate", cert+" left")
	field("Labels", labelString(d.Labels))
	for _, c := range d.Status.Conditions {
		v := st.state(map[bool]string{true: "Ready", false: "Failed"}[c.Status == "True"])
		if c.Status != "True" && c.Status != "False" {
			v = string(c.Status)
		}
		field(c.Type, conditionText(st, v, c))
	}

	section("Capabilities")
	if len(d.Status.Capabilities) == 0 {
		b.WriteString(st.dim.Render("  none reported") + "\n")
	} else {
		b.WriteString(fit("  "+strings.Join(d.Status.Capabilities, ", "), width) + "\n")
	}

	section("Apps")
	apps := deviceApps(d, l)
	if len(apps) == 0 {
		b.WriteString(st.dim.Render("  none") + "\n")
	} else {
		cols := layoutColumns([]column{
			{title: "APP", min: 10}, {title: "VERSION", width: 10}, {title: "STATE", width: 18},
			{title: "REASON", width: 30, prio: 1},
		}, width)
		b.WriteString(tableHeader(st, cols, "", false) + "\n")
		for _, a := range apps {
			state := st.state(a.state)
			if a.progress != "" {
				state += " " + a.progress
			}
			b.WriteString("  " + tableRow(cols, map[string]string{"APP": a.name, "VERSION": a.version, "STATE": state, "REASON": a.reason}) + "\n")
		}
	}

	if l != nil && len(l.telem) > 0 {
		section("Telemetry")
		for _, app := range sortedKeys(l.telem) {
			t := l.telem[app]
			var vals []string
			for _, k := range sortedKeys(t.values) {
				vals = append(vals, k+"="+strconv.FormatFloat(t.values[k], 'g', 6, 64))
			}
			b.WriteString(fit("  "+app+"  "+strings.Join(vals, " ")+st.dim.Render("  "+ageOf(t.time, now)+" ago"), width) + "\n")
		}
	}

	section("Recent events")
	if l == nil || len(l.recent) == 0 {
		b.WriteString(st.dim.Render("  none yet") + "\n")
	} else {
		cols := layoutColumns(eventColumns, width)
		for i := len(l.recent) - 1; i >= 0; i-- {
			b.WriteString("  " + eventRow(st, l.recent[i], cols) + "\n")
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// conditionText is a condition's status, as the caller words it, then
// its reason and message, dim.
func conditionText(st *styles, status string, c metav1.Condition) string {
	if c.Reason != "" {
		status += st.dim.Render(" " + c.Reason)
	}
	if c.Message != "" {
		status += st.dim.Render(": " + c.Message)
	}
	return status
}

// Sparkline levels, lowest first: block characters, and digits where the
// terminal draws no colors.
var (
	sparkBlocks = []rune("▁▂▃▄▅▆▇█")
	sparkASCII  = []rune("01234567")
)

// sparkline draws one character per sample, scaled between the samples'
// minimum (the lowest level) and maximum (the highest); samples all equal
// draw at the lowest level. ascii draws digits 0-7 instead of blocks.
func sparkline(samples []int64, ascii bool) string {
	if len(samples) == 0 {
		return ""
	}
	levels := sparkBlocks
	if ascii {
		levels = sparkASCII
	}
	lo, hi := samples[0], samples[0]
	for _, v := range samples[1:] {
		lo, hi = min(lo, v), max(hi, v)
	}
	top := int64(len(levels) - 1)
	out := make([]rune, len(samples))
	for i, v := range samples {
		var lvl int64
		if hi > lo {
			// Rounded to the nearest level.
			lvl = ((v-lo)*top*2 + (hi - lo)) / ((hi - lo) * 2)
		}
		out[i] = levels[lvl]
	}
	return string(out)
}

// rttTrend is the device detail's round-trip line: the sparkline of the
// samples (microseconds, oldest first) and the last one in milliseconds.
func rttTrend(samples []int64, ascii bool) string {
	if len(samples) == 0 {
		return "-"
	}
	last := samples[len(samples)-1]
	return sparkline(samples, ascii) + "  last " + strconv.FormatFloat(float64(last)/1000, 'f', 2, 64) + "ms"
}

// staleTrend is the round-trip line of a device that has no round trip
// now: the samples it had, and the last of them as what it was.
func staleTrend(samples []int64, ascii bool) string {
	last := samples[len(samples)-1]
	return sparkline(samples, ascii) + "  was " + strconv.FormatFloat(float64(last)/1000, 'f', 2, 64) + "ms"
}

// deviceView is one device in detail, scrollable.
type deviceView struct {
	sh      *shared
	name    string
	console key.Binding
	acts    deviceActionKeys
	vp      viewport.Model
	width   int
	poll    int // this view's live poll, so that a view opened again polls once
}

func newDeviceView(sh *shared, name string) *deviceView {
	v := &deviceView{sh: sh, name: name, vp: viewport.New(0, 0), acts: newDeviceActionKeys(),
		console: key.NewBinding(key.WithKeys("c"), key.WithHelp("c", "console: attach to the board")),
		poll:    int(polls.Add(1))}
	v.Sync()
	return v
}

// Init starts the live poll, which lasts while the view is open.
func (v *deviceView) Init() tea.Cmd { return livePollCmd(v.poll) }

func (v *deviceView) Poll() int { return v.poll }

func (v *deviceView) SetSize(w, h int) {
	v.width, v.vp.Width, v.vp.Height = w, w, h
	v.Sync()
}

func (v *deviceView) Title() string { return "Device " + v.name }

func (v *deviceView) Keys() []key.Binding {
	keys := append([]key.Binding{v.console}, v.acts.list()...)
	return append(keys, v.vp.KeyMap.Up, v.vp.KeyMap.Down, v.vp.KeyMap.PageUp, v.vp.KeyMap.PageDown)
}

func (v *deviceView) Sync() {
	d := v.sh.cache.devices[v.name]
	if d == nil {
		v.vp.SetContent(v.sh.styles.dim.Render("  device " + v.name + " is gone"))
		return
	}
	v.vp.SetContent(renderDevice(v.sh.styles, d, v.sh.cache.live[v.name], v.sh.now(), v.width))
}

func (v *deviceView) Update(msg tea.Msg) (view, tea.Cmd) {
	switch msg := msg.(type) {
	case livePollMsg:
		if msg.id == v.poll && v.sh.client != nil {
			return v, liveDeviceCmd(v.sh.client, v.poll, v.name)
		}
		return v, nil
	case liveDeviceMsg:
		if msg.id != v.poll {
			return v, nil
		}
		if msg.dev != nil {
			v.sh.cache.putDevice(msg.dev)
			v.Sync()
		}
		return v, livePollCmd(v.poll)
	}
	if km, ok := msg.(tea.KeyMsg); ok && matches(km.String(), v.console) {
		return v, send(pushMsg{newConsoleView(v.sh, v.name)})
	}
	if km, ok := msg.(tea.KeyMsg); ok {
		if d := v.sh.cache.devices[v.name]; d != nil {
			if cmd := v.acts.action(v.sh, km.String(), d); cmd != nil {
				return v, cmd
			}
		}
	}
	var cmd tea.Cmd
	v.vp, cmd = v.vp.Update(msg)
	return v, cmd
}

func (v *deviceView) View() string { return padLines(v.vp.View(), v.width, v.vp.Height) }
