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

// appColumns are the columns of the applications list.
var appColumns = []column{
	{title: "NAME", min: 8},
	{title: "VERSION", width: 9, prio: 4},
	{title: "PHASE", width: 10},
	{title: "ROLLOUT", width: 20, prio: 3},
	{title: "RUNNING", width: 7, right: true},
	{title: "XFER", width: 4, prio: 1, right: true},
	{title: "FAIL", width: 4, prio: 2, right: true},
}

// rolloutBar renders how far a rollout is, width cells: running devices
// as full blocks, transferring as shaded, failed as x, the rest as dots.
func rolloutBar(st *styles, running, transferring, failed, targeted, width int) string {
	r, t, f := barSegments(running, transferring, failed, targeted, width)
	rest := max(0, width-r-t-f)
	return st.ok.Render(strings.Repeat(glyphRunning, r)) +
		st.warn.Render(strings.Repeat(glyphTransferring, t)) +
		st.bad.Render(strings.Repeat(glyphFailed, f)) +
		st.dim.Render(strings.Repeat(glyphRest, rest))
}

// appRow renders one application as a row of the laid-out columns.
func appRow(st *styles, a *v1alpha1.Application, cols []column) string {
	s := a.Status
	barWidth := 0
	for _, c := range cols {
		if c.title == "ROLLOUT" {
			barWidth = c.width
		}
	}
	fail := strconv.Itoa(int(s.Failed))
	if s.Failed > 0 {
		fail = st.bad.Render(fail)
	}
	return tableRow(cols, map[string]string{
		"NAME":    a.Name,
		"VERSION": a.Spec.Version,
		"PHASE":   st.state(string(appPhase(a))),
		"ROLLOUT": rolloutBar(st, int(s.Running), int(s.Transferring), int(s.Failed), int(s.Targeted), barWidth),
		"RUNNING": fmt.Sprintf("%d/%d", s.Running, s.Targeted),
		"XFER":    strconv.Itoa(int(s.Transferring)),
		"FAIL":    fail,
	})
}

// appKeys are the actions on an application, each asked y/n first.
type appKeys struct {
	Pause, Stop, Rollback, Delete key.Binding
}

func newAppKeys() appKeys {
	return appKeys{
		Pause:    key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "pause or resume the rollout")),
		Stop:     key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "stop or start the app on every device")),
		Rollback: key.NewBinding(key.WithKeys("b"), key.WithHelp("b", "roll back to the previous version")),
		Delete:   newDeleteKey("application"),
	}
}

func (k appKeys) list() []key.Binding { return []key.Binding{k.Pause, k.Stop, k.Rollback, k.Delete} }

// action returns the y/n question for the action key s names on a, or
// nil when s is no action.
func (k appKeys) action(sh *shared, s string, a *v1alpha1.Application) tea.Cmd {
	var act appAction
	switch {
	case matches(s, k.Pause) && a.Spec.Paused:
		act = actResume
	case matches(s, k.Pause):
		act = actPause
	case matches(s, k.Stop) && a.Spec.Stopped:
		act = actStart
	case matches(s, k.Stop):
		act = actStop
	case matches(s, k.Rollback):
		act = actRollback
	case matches(s, k.Delete):
		c, name := sh.client, a.Name
		q := fmt.Sprintf("delete application %s?", name)
		if n := a.Status.Running; n > 0 {
			q = fmt.Sprintf("delete application %s, which runs on %d devices?", name, n)
		}
		return send(confirmMsg{
			question: q,
			yes: deleteCmd("delete application "+name, func(ctx context.Context) error {
				return c.DeleteApplication(ctx, name)
			}),
		})
	default:
		return nil
	}
	q := fmt.Sprintf("%s application %s?", act.verb, a.Name)
	if act.verb == actRollback.verb {
		q = fmt.Sprintf("roll application %s back from version %s?", a.Name, a.Spec.Version)
	}
	return send(confirmMsg{question: q, yes: appActionCmd(sh.client, a.Name, act)})
}

// appsView is the list of applications with their rollouts.
type appsView struct {
	sh *shared
	resourceTable[*v1alpha1.Application]
	keys   appKeys
	deploy deployKeys
	open   key.Binding
}

func newAppsView(sh *shared) *appsView {
	return &appsView{sh: sh, deploy: newDeployKeys(), keys: newAppKeys(),
		resourceTable: newResourceTable("Applications", appColumns, sh.cache,
			func(c *cache) map[string]*v1alpha1.Application { return c.apps }, filter.matchApp),
		open: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "open the application"))}
}

func (v *appsView) Init() tea.Cmd { return nil }

func (v *appsView) Keys() []key.Binding {
	return append(append([]key.Binding{v.open}, v.keys.list()...), v.deploy.Deploy)
}

func (v *appsView) Update(msg tea.Msg) (view, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok {
		return v, nil
	}
	s := km.String()
	if v.moveBy(s) {
		return v, nil
	}
	sel, ok := v.selected()
	if matches(s, v.deploy.Deploy) {
		name := ""
		if ok {
			name = sel.Name
		}
		return v, send(pushMsg{newDeployForm(v.sh, name)})
	}
	if !ok {
		return v, nil
	}
	a := v.sh.cache.apps[sel.Name]
	if a == nil {
		return v, nil
	}
	if matches(s, v.open) {
		return v, send(pushMsg{newAppView(v.sh, a.Name)})
	}
	return v, v.keys.action(v.sh, s, a)
}

func (v *appsView) View() string {
	st := v.sh.styles
	var b strings.Builder
	b.WriteString(fit(tableHeader(st, v.cols, "", false), v.width))
	start, end := v.visible()
	for i := start; i < end; i++ {
		b.WriteByte('\n')
		b.WriteString(withGutter(st, appRow(st, v.rows[i], v.cols), i == v.cursor, v.width))
	}
	if len(v.rows) == 0 && v.page() > 0 {
		b.WriteString("\n" + st.dim.Render("  no applications"))
	}
	return padLines(b.String(), v.width, v.height)
}

// rolloutColumns are the columns of an application's per-device rollout:
// the version a device runs next to the one it is meant to run.
var rolloutColumns = []column{
	{title: "DEVICE", min: 10},
	{title: "VERSION", width: 8},
	{title: "TARGET", width: 8, prio: 4},
	{title: "STATE", width: 12},
	{title: "PROGRESS", width: 8, prio: 2, right: true},
	{title: "SINCE", width: 5, prio: 1, right: true},
	{title: "REASON", width: 20, prio: 3},
}

// rolloutLine is one device's part of a rollout as the detail shows it:
// the row the daemon serves, with the transfer's progress, which the row
// does not carry.
type rolloutLine struct {
	v1alpha1.DeviceRollout
	progress string // "45%" while the target is on its way
}

// rolloutLineOf completes r with what the device's events (l, nil when
// none) told of app since: while the target version is on its way, the
// device is transferring it, whatever its stored status says yet.
func rolloutLineOf(r v1alpha1.DeviceRollout, l *deviceLive, app string) rolloutLine {
	line := rolloutLine{DeviceRollout: r}
	if l == nil {
		return line
	}
	if ev, ok := l.apps[app]; ok && ev.Version == r.Target && inTransfer(ev) {
		line.State, line.Reason, line.progress = "Transferring", "", percent(ev.Sent, ev.Total)
	}
	return line
}

// rolloutRow renders one device's part of a rollout; "-" is a version
// the device does not run, or a progress it has not.
func rolloutRow(st *styles, r rolloutLine, cols []column, now time.Time) string {
	return tableRow(cols, map[string]string{
		"DEVICE":   r.Device,
		"VERSION":  orDash(r.Version),
		"TARGET":   orDash(r.Target),
		"STATE":    st.state(r.State),
		"PROGRESS": orDash(r.progress),
		"SINCE":    age(r.Since, now),
		"REASON":   r.Reason,
	})
}

// renderAppHead is the part of the application detail above its
// per-device table.
func renderAppHead(st *styles, a *v1alpha1.Application, now time.Time, width int) string {
	var b strings.Builder
	field := func(name, value string) {
		b.WriteString(fit("  "+st.dim.Render(fmt.Sprintf("%-10s", name))+value, width) + "\n")
	}
	s := a.Status
	phase := st.state(string(appPhase(a)))
	var flags []string
	if a.Spec.Paused {
		flags = append(flags, "paused")
	}
	if a.Spec.Stopped {
		flags = append(flags, "stopped")
	}
	if len(flags) > 0 {
		phase += st.warn.Render(" (" + strings.Join(flags, ", ") + ")")
	}
	field("Phase", phase)
	if ready := readyText(st, a); ready != "" {
		field("Ready", ready)
	}
	field("Version", a.Spec.Version+st.dim.Render("  module "+shortSHA(a.Spec.Module.SHA256)+" "+byteSize(a.Spec.Module.Size)))
	field("Revision", revisionText(st, s))
	barW := max(10, min(30, width-40))
	field("Rollout", rolloutBar(st, int(s.Running), int(s.Transferring), int(s.Failed), int(s.Targeted), barW)+
		fmt.Sprintf(" %d/%d running, %d transferring, %d failed", s.Running, s.Targeted, s.Transferring, s.Failed))
	if rest := restCounts(s); rest != "" {
		field("", rest)
	}
	var target []string
	if len(a.Spec.Target.Devices) > 0 {
		target = append(target, "devices "+strings.Join(a.Spec.Target.Devices, ","))
	}
	if sel := selectorString(a.Spec.Target.Selector); sel != "" {
		target = append(target, "selector "+sel)
	}
	field("Target", strings.Join(target, "; "))
	ro := a.Spec.Rollout
	batch := "all at once"
	switch {
	case ro.BatchPercent > 0:
		batch = fmt.Sprintf("%d%% at a time", ro.BatchPercent)
	case ro.BatchSize > 0:
		batch = fmt.Sprintf("%d at a time", ro.BatchSize)
	}
	field("Strategy", fmt.Sprintf("%s, max failures %d, healthy after %ds%s", batch, ro.MaxFailures, ro.HealthySeconds, gateText(ro.Health)))
	if ab := s.Aborted; ab != nil {
		// The reason, which can be long, has a line of its own, so that
		// where the devices went is never cut.
		field("Aborted", abortText(st, ab, now))
		field("", st.dim.Render(ab.Reason))
	}
	if h := historyText(s.History); h != "" {
		field("History", h+st.dim.Render(" (newest first)"))
	}
	return b.String()
}

// readyText is the application's Ready condition: yes, or no in the
// color of the phase that keeps it from being ready, then why; "" before
// the daemon set it.
func readyText(st *styles, a *v1alpha1.Application) string {
	for _, c := range a.Status.Conditions {
		if c.Type != "Ready" {
			continue
		}
		status := st.health(healthOf(string(appPhase(a))), "no")
		switch c.Status {
		case metav1.ConditionTrue:
			status = st.ok.Render("yes")
		case metav1.ConditionUnknown:
			status = st.neutral.Render("unknown")
		}
		return conditionText(st, status, c)
	}
	return ""
}

// revisionText is the revision the devices are being moved to and the
// last one that passed the health gate on every device.
func revisionText(st *styles, s v1alpha1.ApplicationStatus) string {
	current, stable := s.CurrentRevision, s.StableRevision
	if current == "" {
		current = st.dim.Render("none")
	}
	if stable == "" {
		stable = st.dim.Render("none yet")
	}
	return "current " + current + ", stable " + stable
}

// restCounts names the targeted devices the rollout bar leaves as dots,
// by why they are not there yet: "2 pending, 1 waiting (offline)"; ""
// when there are none.
func restCounts(s v1alpha1.ApplicationStatus) string {
	var parts []string
	for _, c := range []struct {
		n    int32
		what string
	}{{s.Pending, "pending"}, {s.Waiting, "waiting (offline)"}, {s.Stopped, "stopped"}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	return strings.Join(parts, ", ")
}

// abortText is which version an aborted rollout abandoned, when, and
// where its devices went: back to the stable revision, or, with none,
// nowhere (the app is stopped).
func abortText(st *styles, ab *v1alpha1.Abort, now time.Time) string {
	back := "back on v" + ab.RolledBackTo
	if ab.RolledBackTo == "" {
		back = st.bad.Render("no stable revision: stopped")
	}
	return st.warn.Render("v"+ab.Version) + st.dim.Render(" "+age(&ab.Time, now)+" ago") + "; " + back
}

// historyText is the newest revisions, newest first, each with how many
// targeted devices run it: "2 on 1 device, 1 on 3 devices"; "" for none.
func historyText(h []v1alpha1.Revision) string {
	var out []string
	for i := len(h) - 1; i >= 0 && i >= len(h)-4; i-- {
		out = append(out, h[i].Version+" on "+plural(int(h[i].Devices), "device"))
	}
	return strings.Join(out, ", ")
}

// gateText describes a health gate for the Strategy line: ", humidity in
// [10, 40]", ", humidity ≤ 40"; "" for none.
func gateText(g *v1alpha1.HealthGate) string {
	switch {
	case g == nil:
		return ""
	case g.Min != nil && g.Max != nil:
		return fmt.Sprintf(", %s in [%s, %s]", g.Metric, g.Min, g.Max)
	case g.Max != nil:
		return fmt.Sprintf(", %s ≤ %s", g.Metric, g.Max)
	case g.Min != nil:
		return fmt.Sprintf(", %s ≥ %s", g.Metric, g.Min)
	}
	return ""
}
