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
	node   string // the node the line heads, which space folds; "" for an app
}

// Tree markers of nodes that fold: open or folded.
const (
	markOpen   = "▾ "
	markFolded = "▸ "
)

func mark(folded bool) string {
	if folded {
		return markFolded
	}
	return markOpen
}

// topologyLines renders the fleet as a tree: each gateway with its
// counts, its devices under it, and each device's apps under the device,
// colored by health. Devices are those the filter passes; gateways
// without any are shown only when the filter is empty. The nodes in
// folded ("gw/<name>", "dev/<name>") show their line only.
func topologyLines(st *styles, c *cache, f filter, folded map[string]bool) []topoLine {
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
		gwNode := "gw/" + name
		out = append(out, topoLine{text: mark(folded[gwNode]) + st.health(h, head) + st.dim.Render(counts), node: gwNode})
		if folded[gwNode] {
			continue
		}
		for i, d := range devs {
			branch, stem := "├─ ", "│  "
			if i == len(devs)-1 {
				branch, stem = "└─ ", "   "
			}
			phase := devicePhase(d)
			devNode, marker := "dev/"+d.Name, ""
			if len(d.Status.Apps) > 0 {
				marker = mark(folded[devNode])
			}
			out = append(out, topoLine{
				text:   branch + marker + st.state(d.Name+"  "+string(phase)) + st.dim.Render("  "+d.Spec.Board),
				device: d.Name, node: devNode,
			})
			if folded[devNode] {
				continue
			}
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
// the cursor, space folds or unfolds the node under it.
type topologyView struct {
	sh *shared
	rowList[topoLine]
	open, fold key.Binding
	width      int
	folded     map[string]bool

	filter  filter
	builtAt uint64
	dirty   bool
}

func newTopologyView(sh *shared) *topologyView {
	return &topologyView{sh: sh, rowList: newRowList[topoLine](0), dirty: true, folded: map[string]bool{},
		open: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "open the device")),
		fold: key.NewBinding(key.WithKeys(" "), key.WithHelp("space", "fold or unfold a gateway or device"))}
}

func (v *topologyView) Init() tea.Cmd { return nil }

func (v *topologyView) SetSize(w, h int) {
	v.width = w
	v.setHeight(h)
}

func (v *topologyView) Title() string {
	t := fmt.Sprintf("Topology (%d gateways, %d devices)", len(v.sh.cache.gateways), len(v.sh.cache.devices))
	if !v.filter.empty() {
		t += " /" + v.filter.raw
	}
	return t
}

func (v *topologyView) Keys() []key.Binding { return []key.Binding{v.open, v.fold} }

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
	v.builtAt, v.dirty = c.rev, false
	v.settle(topologyLines(v.sh.styles, c, v.filter, v.folded), nil)
}

func (v *topologyView) Update(msg tea.Msg) (view, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok {
		return v, nil
	}
	s := km.String()
	if v.moveBy(s) {
		return v, nil
	}
	l, ok := v.selected()
	switch {
	case ok && matches(s, v.open) && l.device != "":
		return v, send(pushMsg{newDeviceView(v.sh, l.device)})
	case ok && (matches(s, v.fold) || matches(s, v.open)) && l.node != "":
		v.folded[l.node] = !v.folded[l.node]
		v.dirty = true
		v.Sync()
	}
	return v, nil
}

func (v *topologyView) View() string {
	st := v.sh.styles
	var b strings.Builder
	start, end := v.visible()
	for i := start; i < end; i++ {
		if i > start {
			b.WriteByte('\n')
		}
		b.WriteString(withGutter(st, v.rows[i].text, i == v.cursor, v.width))
	}
	if len(v.rows) == 0 {
		b.WriteString(st.dim.Render("  no gateways or devices"))
	}
	return padLines(b.String(), v.width, v.height)
}
