package tui

import (
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/api"
)

// appView is one application in detail: its spec and rollout, then one
// row per targeted device with the version it runs, the one it is meant
// to run, its state and reason. The status only counts the devices, so
// the view reads them from the daemon while it is open: at once, every
// livePoll, and again when the application changes. The cursor moves
// over the devices; enter opens one.
type appView struct {
	sh *shared
	rowList[rolloutLine]
	name   string
	keys   appKeys
	deploy deployKeys
	open   key.Binding
	width  int
	cols   []column
	filter filter // over the devices

	poll    int                      // this view's live poll
	devices []v1alpha1.DeviceRollout // as last read, sorted by device
	read    bool                     // the devices were read once
	readErr error                    // why the last read failed
	reading bool                     // a read is on its way
	again   bool                     // the application changed while it was: read again
}

func newAppView(sh *shared, name string) *appView {
	return &appView{sh: sh, name: name, rowList: newRowList[rolloutLine](0), keys: newAppKeys(), deploy: newDeployKeys(),
		open: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "open the device")),
		poll: int(polls.Add(1))}
}

// Init reads the devices and starts the live poll, which lasts while the
// view is open.
func (v *appView) Init() tea.Cmd { return tea.Batch(v.readDevices(), livePollCmd(v.poll)) }

func (v *appView) Poll() int { return v.poll }

// Watch reads the devices again when the application changed: its status
// counts them by state and version, so a device that moves on shows
// there. A change seen while a read is on its way is read after it, as
// that read may have missed it.
func (v *appView) Watch(e api.Event) tea.Cmd {
	if e.Type != api.EventResource || e.Kind != v1alpha1.KindApplication || e.Name != v.name {
		return nil
	}
	if v.reading {
		v.again = true
		return nil
	}
	return v.readDevices()
}

// readDevices reads the devices, unless a read is on its way already.
func (v *appView) readDevices() tea.Cmd {
	if v.reading || v.sh.client == nil {
		return nil
	}
	v.reading = true
	return appDevicesCmd(v.sh.client, v.poll, v.name)
}

// took keeps the devices read, or why they could not be (those read
// before stay on screen; the banner says when the daemon is out of
// reach), and reads again when the application changed meanwhile.
func (v *appView) took(msg appDevicesMsg) tea.Cmd {
	v.reading, v.readErr = false, msg.err
	if msg.err == nil {
		v.devices, v.read = msg.rows, true
	}
	v.Sync()
	if v.again {
		v.again = false
		return v.readDevices()
	}
	return nil
}

func (v *appView) SetSize(w, h int) {
	v.width = w
	v.cols = layoutColumns(rolloutColumns, w)
	v.height = h
	v.Sync()
}

func (v *appView) Title() string {
	if v.filter.empty() {
		return "Application " + v.name
	}
	return "Application " + v.name + " /" + v.filter.raw
}

func (v *appView) Filter() string { return v.filter.raw }

func (v *appView) SetFilter(s string) {
	v.filter = parseFilter(s)
	v.Sync()
}

func (v *appView) Keys() []key.Binding {
	return append(append([]key.Binding{v.open}, v.keys.list()...), v.deploy.Deploy)
}

func (v *appView) app() *v1alpha1.Application { return v.sh.cache.apps[v.name] }

func (v *appView) Update(msg tea.Msg) (view, tea.Cmd) {
	switch msg := msg.(type) {
	case livePollMsg:
		if msg.id != v.poll {
			return v, nil
		}
		// A read still on its way is as fresh as this one would be.
		return v, tea.Batch(v.readDevices(), livePollCmd(v.poll))
	case appDevicesMsg:
		if msg.id != v.poll {
			return v, nil
		}
		return v, v.took(msg)
	}
	km, ok := msg.(tea.KeyMsg)
	a := v.app()
	if !ok || a == nil {
		return v, nil
	}
	s := km.String()
	if v.moveBy(s) {
		return v, nil
	}
	if matches(s, v.deploy.Deploy) {
		return v, send(pushMsg{newDeployForm(v.sh, a.Name)})
	}
	if r, ok := v.selected(); ok && matches(s, v.open) {
		return v, send(pushMsg{newDeviceView(v.sh, r.Device)})
	}
	return v, v.keys.action(v.sh, s, a)
}

// Sync makes the rows from the devices last read, completed by the
// transfers the event stream reports and filtered, keeping the cursor on
// the same device, and sizes the list below the head and column titles.
func (v *appView) Sync() {
	a := v.app()
	if a == nil {
		v.settle(v.rows[:0], nil)
		return
	}
	var current string
	if r, ok := v.selected(); ok {
		current = r.Device
	}
	v.head = strings.Count(renderAppHead(v.sh.styles, a, v.sh.now(), v.width), "\n") + 2
	rows := v.rows[:0]
	for _, r := range v.devices {
		line := rolloutLineOf(r, v.sh.cache.live[r.Device], v.name)
		if v.filter.matchRollout(line.DeviceRollout) {
			rows = append(rows, line)
		}
	}
	v.settle(rows, func(r rolloutLine) bool { return r.Device == current })
}

func (v *appView) View() string {
	st := v.sh.styles
	a := v.app()
	if a == nil {
		return padLines(st.dim.Render("  application "+v.name+" is gone"), v.width, v.height)
	}
	now := v.sh.now()
	var b strings.Builder
	b.WriteString(renderAppHead(st, a, now, v.width))
	b.WriteString("\n" + fit(tableHeader(st, v.cols, "", false), v.width))
	start, end := v.visible()
	for i := start; i < end; i++ {
		b.WriteString("\n" + withGutter(st, rolloutRow(st, v.rows[i], v.cols, now), i == v.cursor, v.width))
	}
	switch {
	case len(v.rows) > 0:
	case !v.read && v.readErr != nil:
		b.WriteString("\n" + st.bad.Render("  devices not read: "+errText(v.readErr)))
	case !v.read:
		b.WriteString("\n" + st.dim.Render("  reading the devices..."))
	case !v.filter.empty():
		b.WriteString("\n" + st.dim.Render("  no device matches /"+v.filter.raw))
	default:
		b.WriteString("\n" + st.dim.Render("  no device targeted yet"))
	}
	return padLines(b.String(), v.width, v.height)
}
