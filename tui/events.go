package tui

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"wasmbed.io/wasmbed/daemon/api"
)

// eventColumns are the columns of the events view.
var eventColumns = []column{
	{title: "TIME", width: 8, prio: 2},
	{title: "TYPE", width: 9},
	{title: "SUBJECT", width: 20, prio: 1},
	{title: "DETAIL", min: 10},
}

// eventSubject is what an event is about: Kind/name for a resource, else
// the device or name it carries.
func eventSubject(e api.Event) string {
	switch {
	case e.Type == api.EventResource:
		return e.Kind + "/" + e.Name
	case e.Device != "":
		return e.Device
	}
	return e.Name
}

// eventDetail says what happened, in a line.
func eventDetail(e api.Event) string {
	app := func() string {
		if e.App == nil {
			return ""
		}
		s := e.App.Name
		if e.App.Version != "" {
			s += " v" + e.App.Version
		}
		return s
	}
	switch e.Type {
	case api.EventResource:
		return strings.ToLower(e.Action)
	case api.EventOnline:
		return "online"
	case api.EventOffline:
		if e.Reason != "" {
			return "offline: " + e.Reason
		}
		return "offline"
	case api.EventApp:
		s := app()
		if e.App != nil {
			s += " " + e.App.State
			if e.App.Reason != "" {
				s += ": " + e.App.Reason
			}
		}
		return s
	case api.EventProgress:
		if e.App == nil {
			return "transfer"
		}
		s := app() + " transfer " + byteSize(int64(e.App.Sent))
		if e.App.Total > 0 {
			s += "/" + byteSize(int64(e.App.Total)) + " " + percent(e.App.Sent, e.App.Total)
		} else if e.App.State != "" {
			s += " " + e.App.State
		}
		return s
	case api.EventTelemetry:
		var b strings.Builder
		if e.App != nil {
			b.WriteString(e.App.Name)
		}
		for _, k := range sortedKeys(e.Values) {
			fmt.Fprintf(&b, " %s=%s", k, strconv.FormatFloat(e.Values[k], 'g', 6, 64))
		}
		return strings.TrimSpace(b.String())
	}
	if e.Type == api.EventLog {
		// What a Kubernetes Event says: its reason, message and count.
		s := e.Message
		if e.Reason != "" && e.Message != "" {
			s = e.Reason + ": " + e.Message
		} else if e.Reason != "" {
			s = e.Reason
		}
		if e.Count > 1 {
			s += fmt.Sprintf(" (×%d)", e.Count)
		}
		return s
	}
	if e.Message != "" {
		return e.Message
	}
	return e.Reason
}

// eventHealth is the color of an event's type.
func eventHealth(e api.Event) health {
	switch e.Type {
	case api.EventOnline:
		return healthOK
	case api.EventOffline:
		return healthBad
	case api.EventApp:
		if e.App != nil {
			return healthOf(e.App.State)
		}
	case api.EventProgress:
		return healthWarn
	case api.EventLog:
		if e.Level == "Warning" {
			return healthBad
		}
	}
	return healthNeutral
}

// eventRow renders one event as a row of the laid-out columns: local
// time of day, type, subject, detail.
func eventRow(st *styles, e api.Event, cols []column) string {
	t := "-"
	if !e.Time.IsZero() {
		t = e.Time.Local().Format("15:04:05")
	}
	return tableRow(cols, map[string]string{
		"TIME":    t,
		"TYPE":    st.health(eventHealth(e), string(e.Type)),
		"SUBJECT": eventSubject(e),
		"DETAIL":  eventDetail(e),
	})
}

type eventsKeys struct {
	Telemetry, Follow key.Binding
}

// eventsView is the live event stream, newest at the bottom. It follows
// new events until the cursor moves up, and again from the bottom.
type eventsView struct {
	sh *shared
	rowList[api.Event]
	keys  eventsKeys
	width int
	cols  []column

	filter    filter
	telemetry bool // show telemetry events, which come often

	builtAt uint64
	dirty   bool
	follow  bool
}

func newEventsView(sh *shared) *eventsView {
	return &eventsView{
		sh: sh, rowList: newRowList[api.Event](1), dirty: true, follow: true,
		keys: eventsKeys{
			Telemetry: key.NewBinding(key.WithKeys("t"), key.WithHelp("t", "telemetry: show or hide")),
			Follow:    key.NewBinding(key.WithKeys("f"), key.WithHelp("f", "follow new events")),
		},
	}
}

func (v *eventsView) Init() tea.Cmd { return nil }

func (v *eventsView) SetSize(w, h int) {
	v.width = w
	v.cols = layoutColumns(eventColumns, w)
	v.setHeight(h)
	v.place()
}

func (v *eventsView) Title() string {
	t := fmt.Sprintf("Events (%d)", len(v.rows))
	if !v.filter.empty() {
		t += " /" + v.filter.raw
	}
	if !v.telemetry {
		t += " telemetry hidden"
	}
	if v.follow {
		t += " following"
	}
	return t
}

func (v *eventsView) Keys() []key.Binding { return []key.Binding{v.keys.Telemetry, v.keys.Follow} }

func (v *eventsView) Filter() string { return v.filter.raw }

func (v *eventsView) SetFilter(s string) {
	v.filter = parseFilter(s)
	v.dirty = true
	v.Sync()
}

func (v *eventsView) Sync() {
	c := v.sh.cache
	if !v.dirty && v.builtAt == c.rev {
		return
	}
	rows := v.rows[:0]
	for _, e := range c.eventLog() {
		if e.Type == api.EventTelemetry && !v.telemetry {
			continue
		}
		if !v.filter.empty() && !v.filter.match(nil, field{"type", string(e.Type)}, field{"subject", eventSubject(e)}, field{"detail", eventDetail(e)}) {
			continue
		}
		rows = append(rows, e)
	}
	v.builtAt, v.dirty = c.rev, false
	v.settle(rows, nil)
	v.place()
}

// place puts the cursor on the newest event when following.
func (v *eventsView) place() {
	if v.follow {
		v.toBottom()
	}
}

func (v *eventsView) Update(msg tea.Msg) (view, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok {
		return v, nil
	}
	s := km.String()
	if v.moveBy(s) {
		v.follow = v.atBottom()
		return v, nil
	}
	switch {
	case matches(s, v.keys.Telemetry):
		v.telemetry = !v.telemetry
		v.dirty = true
		v.Sync()
	case matches(s, v.keys.Follow):
		v.follow = true
		v.place()
	}
	return v, nil
}

func (v *eventsView) View() string {
	st := v.sh.styles
	var b strings.Builder
	b.WriteString(fit(tableHeader(st, v.cols, "", false), v.width))
	start, end := v.visible()
	for i := start; i < end; i++ {
		b.WriteByte('\n')
		b.WriteString(withGutter(st, eventRow(st, v.rows[i], v.cols), i == v.cursor && !v.follow, v.width))
	}
	if len(v.rows) == 0 && v.page() > 0 {
		b.WriteString("\n" + st.dim.Render("  no events yet"))
	}
	return padLines(b.String(), v.width, v.height)
}
