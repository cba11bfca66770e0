package tui

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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

// gatewaysKeys are the keys of the gateways list.
type gatewaysKeys struct {
	Open, New, Delete key.Binding
}

// gatewaysView lists the gateways; enter shows the devices of one.
type gatewaysView struct {
	sh *shared
	resourceTable[*v1alpha1.Gateway]
	keys gatewaysKeys
}

func newGatewaysView(sh *shared) *gatewaysView {
	return &gatewaysView{sh: sh,
		resourceTable: newResourceTable("Gateways", gatewayColumns, sh.cache,
			func(c *cache) map[string]*v1alpha1.Gateway { return c.gateways }, filter.matchGateway),
		keys: gatewaysKeys{
			Open:   key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "show the gateway's devices")),
			New:    key.NewBinding(key.WithKeys("n"), key.WithHelp("n", "new: register a gateway")),
			Delete: newDeleteKey("gateway"),
		}}
}

func (v *gatewaysView) Init() tea.Cmd { return nil }

func (v *gatewaysView) Keys() []key.Binding {
	return []key.Binding{v.keys.Open, v.keys.New, v.keys.Delete}
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
	if matches(s, v.keys.New) {
		return v, send(pushMsg{newGatewayForm(v.sh)})
	}
	g, ok := v.selected()
	if !ok {
		return v, nil
	}
	switch {
	case matches(s, v.keys.Open):
		// The devices on this gateway only: a substring would also
		// show gw-10's for gw-1, and devices named after it.
		f := fieldFilter("gateway", g.Name)
		return v, send(jumpMsg{name: "devices", filter: &f})
	case matches(s, v.keys.Delete):
		c, name := v.sh.client, g.Name
		q := fmt.Sprintf("delete gateway %s?", name)
		if g.Status.ConnectedDevices > 0 {
			q = fmt.Sprintf("delete gateway %s, which holds %d devices?", name, g.Status.ConnectedDevices)
		}
		return v, send(confirmMsg{
			question: q,
			yes: deleteCmd("delete gateway "+name, func(ctx context.Context) error {
				return c.DeleteGateway(ctx, name)
			}),
		})
	}
	return v, nil
}

// newGatewayForm is the form that registers a gateway: its name, the
// host:port its devices dial, and how many devices it takes. The daemon
// checks the endpoint and says what is wrong with it.
func newGatewayForm(sh *shared) *form {
	return newForm(sh, "New gateway", submitGateway,
		textField("name", "", "lowercase letters, digits and -", ""),
		textField("endpoint", "", "gw.example.com:8081", "host:port the devices dial"),
		textField("capacity", "", "no limit", "most devices it takes; empty for no limit"),
	)
}

func submitGateway(f *form) (string, tea.Cmd, error) {
	name, endpoint := f.field("name").value(), f.field("endpoint").value()
	for _, r := range []struct{ label, v string }{{"name", name}, {"endpoint", endpoint}} {
		if err := required(r.label, r.v); err != nil {
			return "", nil, err
		}
	}
	gw := &v1alpha1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1alpha1.GatewaySpec{Endpoint: endpoint},
	}
	q := fmt.Sprintf("create gateway %s at %s?", name, endpoint)
	if s := f.field("capacity").value(); s != "" {
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil || n < 0 {
			return "", nil, fmt.Errorf("capacity %q: want a number of devices, 0 or more", s)
		}
		gw.Spec.Capacity = int32(n)
		if n > 0 {
			q = fmt.Sprintf("create gateway %s at %s for at most %d devices?", name, endpoint, n)
		}
	}
	c := f.sh.client
	return q, func() tea.Msg {
		_, err := withTimeout(func(ctx context.Context) (*v1alpha1.Gateway, error) { return c.CreateGateway(ctx, gw) })
		return actionDoneMsg{what: "create gateway " + name, err: err}
	}, nil
}

func (v *gatewaysView) View() string {
	st := v.sh.styles
	var b strings.Builder
	b.WriteString(fit(tableHeader(st, v.cols, "", false), v.width))
	now := v.sh.now()
	start, end := v.visible()
	for i := start; i < end; i++ {
		b.WriteString("\n" + withGutter(st, gatewayRow(st, v.rows[i], v.cols, now), i == v.cursor, v.width))
	}
	if len(v.rows) == 0 && v.page() > 0 {
		b.WriteString("\n" + st.dim.Render("  no gateways"))
	}
	return padLines(b.String(), v.width, v.height)
}
