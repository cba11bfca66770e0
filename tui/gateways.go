package tui

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"wasmbed.io/wasmbed/crds/v1alpha1"
)

// gatewayColumns are the columns of the gateways list.
var gatewayColumns = []column{
	{title: "NAME", min: 8},
	{title: "ENDPOINT", width: 21, prio: 3},
	{title: "STATUS", width: 6},
	{title: "DEVICES", width: 7, right: true},
	{title: "CAPACITY", width: 8, prio: 1, right: true},
	{title: "HEARTBEAT", width: 9, prio: 2, right: true},
}

// gatewayRow renders one gateway as a row of the laid-out columns.
func gatewayRow(st *styles, g *v1alpha1.Gateway, cols []column, now time.Time) string {
	status := st.state("down")
	if g.Status.Online {
		status = st.state("up")
	}
	capacity := "-"
	if g.Spec.Capacity > 0 {
		capacity = strconv.Itoa(int(g.Spec.Capacity))
	}
	return tableRow(cols, map[string]string{
		"NAME":      g.Name,
		"ENDPOINT":  g.Spec.Endpoint,
		"STATUS":    status,
		"DEVICES":   strconv.Itoa(int(g.Status.ConnectedDevices)),
		"CAPACITY":  capacity,
		"HEARTBEAT": age(g.Status.LastHeartbeat, now),
	})
}

// gatewaysView lists the gateways; enter shows the devices of one.
type gatewaysView struct {
	sh *shared
	rowList[*v1alpha1.Gateway]
	open  key.Binding
	width int
	cols  []column

	filter  filter
	builtAt uint64
	dirty   bool
}

func newGatewaysView(sh *shared) *gatewaysView {
	return &gatewaysView{sh: sh, rowList: newRowList[*v1alpha1.Gateway](), dirty: true,
		open: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "show the gateway's devices"))}
}

func (v *gatewaysView) Init() tea.Cmd { return nil }

func (v *gatewaysView) SetSize(w, h int) {
	v.width, v.height = w, h
	v.cols = layoutColumns(gatewayColumns, w)
	v.scroll()
}

func (v *gatewaysView) Title() string {
	total := len(v.sh.cache.gateways)
	if v.filter.empty() {
		return fmt.Sprintf("Gateways (%d)", total)
	}
	return fmt.Sprintf("Gateways (%d/%d) /%s", len(v.rows), total, v.filter.raw)
}

func (v *gatewaysView) Keys() []key.Binding { return []key.Binding{v.open} }

func (v *gatewaysView) Filter() string { return v.filter.raw }

func (v *gatewaysView) SetFilter(s string) {
	v.filter = parseFilter(s)
	v.dirty = true
	v.Sync()
}

func (v *gatewaysView) Sync() {
	c := v.sh.cache
	if !v.dirty && v.builtAt == c.rev {
		return
	}
	rows := v.rows[:0]
	for _, g := range c.gateways {
		if v.filter.matchGateway(g) {
			rows = append(rows, g)
		}
	}
	slices.SortFunc(rows, func(a, b *v1alpha1.Gateway) int { return cmp.Compare(a.Name, b.Name) })
	v.builtAt, v.dirty = c.rev, false
	v.settle(rows, nil)
}

func (v *gatewaysView) Update(msg tea.Msg) (view, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok {
		return v, nil
	}
	s := km.String()
	if v.moveBy(s) {
		return v, nil
	}
	if matches(s, v.open) && v.cursor < len(v.rows) {
		f := v.rows[v.cursor].Name
		return v, send(jumpMsg{name: "devices", filter: &f})
	}
	return v, nil
}

func (v *gatewaysView) View() string {
	st := v.sh.styles
	var b strings.Builder
	b.WriteString(fit(tableHeader(st, v.cols, "", false), v.width))
	now := v.sh.now()
	end := min(len(v.rows), v.offset+v.page())
	for i := v.offset; i < end; i++ {
		b.WriteString("\n" + withGutter(st, gatewayRow(st, v.rows[i], v.cols, now), i == v.cursor, v.width))
	}
	if len(v.rows) == 0 && v.page() > 0 {
		b.WriteString("\n" + st.dim.Render("  no gateways"))
	}
	return padLines(b.String(), v.width, v.height)
}
