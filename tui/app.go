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
	sh     *shared
	name   string
	keys   appKeys
	deploy deployKeys
	open   key.Binding
	nav    listKeys
	width  int
	height int
	cols   []column
	cursor int
	offset int
}

func newAppView(sh *shared, name string) *appView {
	return &appView{sh: sh, name: name, keys: newAppKeys(), deploy: newDeployKeys(), nav: newListKeys(),
		open: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "open the device"))}
}

func (v *appView) Init() tea.Cmd { return nil }

func (v *appView) SetSize(w, h int) {
	v.width, v.height = w, h
	v.cols = layoutColumns(rolloutColumns, w)
	v.Sync()
}

func (v *appView) Title() string { return "Application " + v.name }

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
	rows := a.Status.Devices
	if c, moved := v.nav.move(s, v.cursor, v.page(a), len(rows)); moved {
		v.cursor = c
		v.Sync()
		return v, nil
	}
	if matches(s, v.deploy.Deploy) {
		return v, send(pushMsg{newDeployForm(v.sh, a.Name)})
	}
	if matches(s, v.open) && v.cursor < len(rows) {
		return v, send(pushMsg{newDeviceView(v.sh, rows[v.cursor].Device)})
	}
	return v, v.keys.action(v.sh, s, a)
}

// Sync keeps the cursor on a device of the rollout and on screen.
func (v *appView) Sync() {
	a := v.app()
	if a == nil {
		return
	}
	n := len(a.Status.Devices)
	v.cursor = max(0, min(v.cursor, n-1))
	v.offset = scrollWindow(v.offset, v.cursor, v.page(a), n)
}

// page is the number of device rows below the head and column titles.
func (v *appView) page(a *v1alpha1.Application) int {
	head := strings.Count(renderAppHead(v.sh.styles, a, v.sh.now(), v.width), "\n")
	return max(1, v.height-head-2)
}

func (v *appView) View() string {
	st := v.sh.styles
	a := v.app()
	if a == nil {
		return padLines(st.dim.Render("  application "+v.name+" is gone"), v.width, v.height)
	}
	now := v.sh.now()
	head := renderAppHead(st, a, now, v.width)
	var b strings.Builder
	b.WriteString(head)
	b.WriteString("\n" + fit(tableHeader(st, v.cols, "", false), v.width))
	rows := a.Status.Devices
	page := max(1, v.height-strings.Count(head, "\n")-2)
	end := min(len(rows), v.offset+page)
	for i := min(v.offset, end); i < end; i++ {
		b.WriteString("\n" + withGutter(st, rolloutRow(st, rows[i], a.Spec.Module.Size, v.cols, now), i == v.cursor, v.width))
	}
	if len(rows) == 0 {
		b.WriteString("\n" + st.dim.Render("  no device targeted yet"))
	}
	return padLines(b.String(), v.width, v.height)
}
