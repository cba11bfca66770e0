package tui

import (
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"wasmbed.io/wasmbed/crds/v1alpha1"
)

// appView is one application in detail: its spec and rollout, then one
// row per targeted device with its state and reason. The cursor moves
// over the devices; enter opens one.
type appView struct {
	sh *shared
	rowList[v1alpha1.DeviceRollout]
	name   string
	keys   appKeys
	deploy deployKeys
	open   key.Binding
	width  int
	cols   []column
	filter filter // over the devices
}

func newAppView(sh *shared, name string) *appView {
	return &appView{sh: sh, name: name, rowList: newRowList[v1alpha1.DeviceRollout](0), keys: newAppKeys(), deploy: newDeployKeys(),
		open: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "open the device"))}
}

func (v *appView) Init() tea.Cmd { return nil }

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

// Sync takes the rollout's devices from the cache, keeping the cursor on
// the same device, and sizes the list below the head and column titles.
func (v *appView) Sync() {
	a := v.app()
	if a == nil {
		v.settle(v.rows[:0], nil)
		return
	}
	// The rows are the view's own copy: the cache's objects are never
	// written to.
	var current string
	if r, ok := v.selected(); ok {
		current = r.Device
	}
	v.head = strings.Count(renderAppHead(v.sh.styles, a, v.sh.now(), v.width), "\n") + 2
	rows := v.rows[:0]
	for _, r := range a.Status.Devices {
		if v.filter.matchRollout(r) {
			rows = append(rows, r)
		}
	}
	v.settle(rows, func(r v1alpha1.DeviceRollout) bool { return r.Device == current })
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
		b.WriteString("\n" + withGutter(st, rolloutRow(st, v.rows[i], a.Spec.Module.Size, v.cols, now), i == v.cursor, v.width))
	}
	switch {
	case len(v.rows) > 0:
	case !v.filter.empty():
		b.WriteString("\n" + st.dim.Render("  no device matches /"+v.filter.raw))
	default:
		b.WriteString("\n" + st.dim.Render("  no device targeted yet"))
	}
	return padLines(b.String(), v.width, v.height)
}
