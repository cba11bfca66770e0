package tui

import (
	"cmp"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
)

// Columns of the devices table, by title.
const (
	colName    = "NAME"
	colBoard   = "BOARD"
	colGateway = "GATEWAY"
	colPhase   = "PHASE"
	colSeen    = "SEEN"
	colRTT     = "RTT"
	colApps    = "APPS"
	colCert    = "CERT"
)

// deviceColumns are the columns of the devices table. At 80 columns all
// fit; narrower screens drop CERT, RTT, GATEWAY, SEEN, APPS, BOARD in
// that order.
var deviceColumns = []column{
	{title: colName, min: 8},
	{title: colBoard, width: 16, prio: 6},
	{title: colGateway, width: 8, prio: 3},
	{title: colPhase, width: 12},
	{title: colSeen, width: 5, prio: 4, right: true},
	{title: colRTT, width: 6, prio: 2, right: true},
	{title: colApps, width: 4, prio: 5, right: true},
	{title: colCert, width: 7, prio: 1, right: true},
}

// deviceRow renders one device as a row of the laid-out columns (without
// the gutter): what the devices table shows, at the time now.
func deviceRow(st *styles, d *v1alpha1.Device, cols []column, now time.Time) string {
	gw := deviceGateway(d)
	if gw == "" {
		gw = "-"
	}
	apps := strconv.Itoa(deviceAppCount(d))
	if deviceAppsFailed(d) > 0 {
		apps = st.bad.Render(apps + "!")
	}
	cert, state := expiry(d.Status.CertificateExpiry, now)
	switch state {
	case expirySoon:
		cert = st.warn.Render(cert)
	case expiryExpired:
		cert = st.bad.Render(cert)
	}
	return tableRow(cols, map[string]string{
		colName:    d.Name,
		colBoard:   d.Spec.Board,
		colGateway: gw,
		colPhase:   st.state(string(devicePhase(d))),
		colSeen:    age(d.Status.LastSeen, now),
		colRTT:     rtt(d.Status.RTTMicros),
		colApps:    apps,
		colCert:    cert,
	})
}

// deviceAppCount is how many apps the device reports.
func deviceAppCount(d *v1alpha1.Device) int {
	if n := len(d.Status.Apps); n > 0 {
		return n
	}
	return int(d.Status.AppCount)
}

// deviceAppsFailed is how many of the device's apps are failed.
func deviceAppsFailed(d *v1alpha1.Device) int {
	n := 0
	for _, a := range d.Status.Apps {
		if healthOf(a.State) == healthBad {
			n++
		}
	}
	return n
}

// compareDevices orders devices by a column, the name breaking ties.
// Unknown times and round trips sort last.
func compareDevices(by string) func(a, b *v1alpha1.Device) int {
	var primary func(a, b *v1alpha1.Device) int
	switch by {
	case colBoard:
		primary = func(a, b *v1alpha1.Device) int { return cmp.Compare(a.Spec.Board, b.Spec.Board) }
	case colGateway:
		primary = func(a, b *v1alpha1.Device) int { return cmp.Compare(deviceGateway(a), deviceGateway(b)) }
	case colPhase:
		primary = func(a, b *v1alpha1.Device) int { return cmp.Compare(devicePhase(a), devicePhase(b)) }
	case colSeen:
		// Most recently seen first: the smallest age.
		primary = func(a, b *v1alpha1.Device) int {
			return compareTimes(-unixNano(a.Status.LastSeen), -unixNano(b.Status.LastSeen), a.Status.LastSeen == nil, b.Status.LastSeen == nil)
		}
	case colRTT:
		primary = func(a, b *v1alpha1.Device) int {
			return compareTimes(a.Status.RTTMicros, b.Status.RTTMicros, a.Status.RTTMicros <= 0, b.Status.RTTMicros <= 0)
		}
	case colApps:
		primary = func(a, b *v1alpha1.Device) int { return cmp.Compare(deviceAppCount(a), deviceAppCount(b)) }
	case colCert:
		primary = func(a, b *v1alpha1.Device) int {
			ea, eb := a.Status.CertificateExpiry, b.Status.CertificateExpiry
			return compareTimes(unixNano(ea), unixNano(eb), ea == nil, eb == nil)
		}
	}
	return func(a, b *v1alpha1.Device) int {
		if primary != nil {
			if c := primary(a, b); c != 0 {
				return c
			}
		}
		return cmp.Compare(a.Name, b.Name)
	}
}

// unixNano is t in nanoseconds since 1970, 0 for nil.
func unixNano(t *metav1.Time) int64 {
	if t == nil {
		return 0
	}
	return t.UnixNano()
}

// compareTimes compares a and b, an unknown value (noA, noB) after any
// known one.
func compareTimes(a, b int64, noA, noB bool) int {
	switch {
	case noA && noB:
		return 0
	case noA:
		return 1
	case noB:
		return -1
	}
	return cmp.Compare(a, b)
}

// devicesKeys are the keys of the devices table.
type devicesKeys struct {
	Open, Console key.Binding
	Sort          []key.Binding // each sorts by one column; again reverses
	sortColumn    map[string]string
}

func newDevicesKeys() devicesKeys {
	k := devicesKeys{
		Open:       key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "open the device")),
		Console:    key.NewBinding(key.WithKeys("c"), key.WithHelp("c", "console: attach to the board")),
		sortColumn: map[string]string{},
	}
	for _, s := range []struct{ key, col string }{
		{"N", colName}, {"B", colBoard}, {"W", colGateway}, {"P", colPhase},
		{"L", colSeen}, {"T", colRTT}, {"A", colApps}, {"X", colCert},
	} {
		k.Sort = append(k.Sort, key.NewBinding(key.WithKeys(s.key), key.WithHelp(s.key, "sort by "+strings.ToLower(s.col))))
		k.sortColumn[s.key] = s.col
	}
	return k
}

// devicesView is the devices table. It keeps the filtered, sorted rows
// it last built from the cache and renders only the rows on screen, so a
// frame costs the same with ten devices or ten thousand.
type devicesView struct {
	sh *shared
	resourceTable[*v1alpha1.Device]
	keys devicesKeys
	acts deviceActionKeys

	sortBy  string
	reverse bool
}

func newDevicesView(sh *shared) *devicesView {
	v := &devicesView{sh: sh, keys: newDevicesKeys(), acts: newDeviceActionKeys(), sortBy: colName,
		resourceTable: newResourceTable("Devices", deviceColumns, sh.cache,
			func(c *cache) map[string]*v1alpha1.Device { return c.devices }, filter.matchDevice)}
	v.compare = compareDevices(v.sortBy)
	return v
}

func (v *devicesView) Init() tea.Cmd { return nil }

func (v *devicesView) Keys() []key.Binding {
	keys := append([]key.Binding{v.keys.Open, v.keys.Console}, v.keys.Sort...)
	return append(append(keys, v.acts.New), v.acts.list()...)
}

func (v *devicesView) Update(msg tea.Msg) (view, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok {
		return v, nil
	}
	s := km.String()
	if v.moveBy(s) {
		return v, nil
	}
	if col, ok := v.keys.sortColumn[s]; ok {
		if v.sortBy == col {
			v.reverse = !v.reverse
		} else {
			v.sortBy, v.reverse = col, false
		}
		compare := compareDevices(v.sortBy)
		v.compare = compare
		if v.reverse {
			v.compare = func(a, b *v1alpha1.Device) int { return compare(b, a) }
		}
		v.resort()
		return v, nil
	}
	if matches(s, v.acts.New) {
		return v, send(pushMsg{newDeviceForm(v.sh)})
	}
	d, ok := v.selected()
	if !ok {
		return v, nil
	}
	if cmd := v.acts.action(v.sh, s, d); cmd != nil {
		return v, cmd
	}
	switch {
	case matches(s, v.keys.Open):
		return v, send(pushMsg{newDeviceView(v.sh, d.Name)})
	case matches(s, v.keys.Console):
		return v, send(pushMsg{newConsoleView(v.sh, d.Name)})
	}
	return v, nil
}

func (v *devicesView) View() string {
	st := v.sh.styles
	var b strings.Builder
	b.WriteString(fit(tableHeader(st, v.cols, v.sortBy, v.reverse), v.width))
	now := v.sh.now()
	start, end := v.visible()
	for i := start; i < end; i++ {
		b.WriteByte('\n')
		b.WriteString(withGutter(st, deviceRow(st, v.rows[i], v.cols, now), i == v.cursor, v.width))
	}
	if len(v.rows) == 0 && v.page() > 0 {
		b.WriteByte('\n')
		if v.filter.empty() {
			b.WriteString(st.dim.Render("  no devices"))
		} else {
			b.WriteString(st.dim.Render("  no device matches /" + v.filter.raw))
		}
	}
	return padLines(b.String(), v.width, v.height)
}
