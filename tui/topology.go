package tui

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"wasmbed.io/wasmbed/crds/v1alpha1"
)

// noGateway heads the devices that have no gateway yet.
const noGateway = "(no gateway)"

// topoLine is one line of the topology tree.
type topoLine struct {
	text   string // styled, without the gutter
	device string // the device the line is about; "" for a gateway
}

// topologyLines renders the fleet as a tree: each gateway with its
// counts, its devices under it, and each device's apps under the device,
// colored by health. Devices are those the filter passes; gateways
// without any are shown only when the filter is empty.
func topologyLines(st *styles, c *cache, f filter) []topoLine {
	groups := map[string][]*v1alpha1.Device{}
	for _, d := range c.devices {
		if f.matchDevice(d) {
			g := deviceGateway(d)
			if g == "" {
				g = noGateway
			}
			groups[g] = append(groups[g], d)
		}
	}
	names := make([]string, 0, len(c.gateways)+1)
	for name := range c.gateways {
		if f.empty() || len(groups[name]) > 0 {
			names = append(names, name)
		}
	}
	for name := range groups {
		if _, known := c.gateways[name]; !known && name != noGateway {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	if len(groups[noGateway]) > 0 {
		names = append(names, noGateway)
	}

	var out []topoLine
	for _, name := range names {
		devs := groups[name]
		slices.SortFunc(devs, func(a, b *v1alpha1.Device) int { return cmp.Compare(a.Name, b.Name) })
		online, apps, running := 0, 0, 0
		for _, d := range devs {
			if d.Status.Phase == v1alpha1.DeviceOnline {
				online++
			}
			for _, a := range d.Status.Apps {
				apps++
				if healthOf(a.State) == healthOK {
					running++
				}
			}
		}
		h, state := healthNeutral, ""
		if g := c.gateways[name]; g != nil {
			h, state = healthOK, "up"
			if !g.Status.Online {
				h, state = healthBad, "down"
			}
		}
		if h == healthOK && (online < len(devs) || running < apps) {
			h = healthWarn
		}
		head := name
		if state != "" {
			head += "  " + state
		}
		counts := fmt.Sprintf("  %d/%d devices online, %d/%d apps running", online, len(devs), running, apps)
		out = append(out, topoLine{text: st.health(h, head) + st.dim.Render(counts)})
		for i, d := range devs {
			branch, stem := "├─ ", "│  "
			if i == len(devs)-1 {
				branch, stem = "└─ ", "   "
			}
			phase := devicePhase(d)
			out = append(out, topoLine{
				text:   branch + st.state(d.Name+"  "+string(phase)) + st.dim.Render("  "+d.Spec.Board),
				device: d.Name,
			})
			for j, a := range d.Status.Apps {
				leaf := "├─ "
				if j == len(d.Status.Apps)-1 {
					leaf = "└─ "
				}
				text := a.Name
				if a.Version != "" {
					text += " v" + a.Version
				}
				text += "  " + a.State
				if a.Reason != "" {
					text += ": " + a.Reason
				}
				out = append(out, topoLine{text: stem + leaf + st.health(healthOf(a.State), text), device: d.Name})
			}
		}
	}
	return out
}

// topologyView shows the fleet as a tree; enter opens the device under
// the cursor.
type topologyView struct {
	sh     *shared
	open   key.Binding
	nav    listKeys
	width  int
	height int

	filter  filter
	lines   []topoLine
	builtAt uint64
	dirty   bool
	cursor  int
	offset  int
}

func newTopologyView(sh *shared) *topologyView {
	return &topologyView{sh: sh, nav: newListKeys(), dirty: true,
		open: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "open the device"))}
}

func (v *topologyView) Init() tea.Cmd { return nil }

func (v *topologyView) SetSize(w, h int) {
	v.width, v.height = w, h
	v.offset = scrollWindow(v.offset, v.cursor, v.height, len(v.lines))
}

func (v *topologyView) Title() string {
	t := fmt.Sprintf("Topology (%d gateways, %d devices)", len(v.sh.cache.gateways), len(v.sh.cache.devices))
	if !v.filter.empty() {
		t += " /" + v.filter.raw
	}
	return t
}

func (v *topologyView) Keys() []key.Binding { return []key.Binding{v.open} }

func (v *topologyView) Filter() string { return v.filter.raw }

func (v *topologyView) SetFilter(s string) {
	v.filter = parseFilter(s)
	v.dirty = true
	v.Sync()
}

func (v *topologyView) Sync() {
	c := v.sh.cache
	if !v.dirty && v.builtAt == c.rev {
		return
	}
	v.lines, v.builtAt, v.dirty = topologyLines(v.sh.styles, c, v.filter), c.rev, false
	v.cursor = max(0, min(v.cursor, len(v.lines)-1))
	v.offset = scrollWindow(v.offset, v.cursor, v.height, len(v.lines))
}

func (v *topologyView) Update(msg tea.Msg) (view, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok {
		return v, nil
	}
	s := km.String()
	if c, moved := v.nav.move(s, v.cursor, v.height, len(v.lines)); moved {
		v.cursor = c
		v.offset = scrollWindow(v.offset, v.cursor, v.height, len(v.lines))
		return v, nil
	}
	if matches(s, v.open) && v.cursor < len(v.lines) && v.lines[v.cursor].device != "" {
		return v, send(pushMsg{newDeviceView(v.sh, v.lines[v.cursor].device)})
	}
	return v, nil
}

func (v *topologyView) View() string {
	st := v.sh.styles
	var b strings.Builder
	end := min(len(v.lines), v.offset+v.height)
	for i := v.offset; i < end; i++ {
		if i > v.offset {
			b.WriteByte('\n')
		}
		b.WriteString(withGutter(st, v.lines[i].text, i == v.cursor, v.width))
	}
	if len(v.lines) == 0 {
		b.WriteString(st.dim.Render("  no gateways or devices"))
	}
	return padLines(b.String(), v.width, v.height)
}
