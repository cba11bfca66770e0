package tui

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/api"
	"wasmbed.io/wasmbed/daemon/client"
)

// deviceActionKeys are the keys that change a device: in the devices
// table and the device detail (new only in the table).
type deviceActionKeys struct {
	New, Token, Emulation, Labels, Delete key.Binding
}

func newDeviceActionKeys() deviceActionKeys {
	return deviceActionKeys{
		New:       key.NewBinding(key.WithKeys("n"), key.WithHelp("n", "new: create a device")),
		Token:     key.NewBinding(key.WithKeys("t"), key.WithHelp("t", "token: enrollment token")),
		Emulation: key.NewBinding(key.WithKeys("e"), key.WithHelp("e", "emulation: start/stop board")),
		Labels:    key.NewBinding(key.WithKeys("l"), key.WithHelp("l", "labels: edit the labels")),
		Delete:    newDeleteKey("device"),
	}
}

// list is the keys that act on a device, for help.
func (k deviceActionKeys) list() []key.Binding {
	return []key.Binding{k.Token, k.Emulation, k.Labels, k.Delete}
}

// action returns what key s asks for on device d (nil for none of
// these keys): a form, a y/n question, or why it cannot be done.
func (k deviceActionKeys) action(sh *shared, s string, d *v1alpha1.Device) tea.Cmd {
	switch {
	case matches(s, k.Token):
		return send(pushMsg{newTokenForm(sh, d.Name)})
	case matches(s, k.Labels):
		return send(pushMsg{newLabelsForm(sh, d)})
	case matches(s, k.Delete):
		c, name := sh.client, d.Name
		q := fmt.Sprintf("delete device %s?", name)
		if em := d.Spec.Emulation; em != nil && em.Enabled {
			q = fmt.Sprintf("delete device %s and stop its emulated board?", name)
		}
		return send(confirmMsg{
			question: q,
			yes: deleteCmd("delete device "+name, func(ctx context.Context) error {
				return c.DeleteDevice(ctx, name)
			}),
		})
	case matches(s, k.Emulation):
		em := d.Spec.Emulation
		if em == nil {
			return send(statusMsg{text: fmt.Sprintf("device %s has no emulated board", d.Name), err: true})
		}
		verb, call := "start", (*client.Client).StartEmulation
		if em.Enabled {
			verb, call = "stop", (*client.Client).StopEmulation
		}
		backend := em.Backend
		if backend == "" {
			backend = "the default backend"
		}
		return send(confirmMsg{
			question: fmt.Sprintf("%s the board of device %s on %s?", verb, d.Name, backend),
			yes: func() tea.Msg {
				_, err := withTimeout(func(ctx context.Context) (*v1alpha1.Device, error) { return call(sh.client, ctx, d.Name) })
				return actionDoneMsg{what: verb + " emulation of " + d.Name, err: err}
			},
		})
	}
	return nil
}

// boardsMsg is the board catalog, for the device form.
type boardsMsg struct {
	boards []api.Board
	err    error
}

// newDeviceForm is the form that creates a device: its name, a board of
// the daemon's catalog, labels, and whether the daemon emulates its
// board, on which backend.
func newDeviceForm(sh *shared) *form {
	emulation := choiceField("emulation", []string{"on", "off"}, "")
	emulation.hints = map[string]string{
		"on":  "the daemon runs the board",
		"off": "a real board: it enrolls with a token (t)",
	}
	backend := choiceField("backend", nil, "")
	backend.visible = func(f *form) bool { return f.field("emulation").value() == "on" }
	f := newForm(sh, "New device", submitDevice,
		textField("name", "", "lowercase letters, digits and -", ""),
		choiceField("board", nil, ""),
		textField("labels", "", "room=lab,fleet=a", "k=v, comma separated"),
		emulation,
		backend,
	)
	c := sh.client
	f.init = func() tea.Msg {
		boards, err := withTimeout(func(ctx context.Context) ([]api.Board, error) { return c.Boards(ctx) })
		return boardsMsg{boards, err}
	}
	f.onMsg = func(f *form, msg tea.Msg) {
		m, ok := msg.(boardsMsg)
		if !ok {
			return
		}
		if m.err != nil {
			f.err = "board catalog: " + errText(m.err)
			f.field("board").none = noCatalog
			f.field("backend").none = noCatalog
			return
		}
		var names, backends []string
		for _, b := range m.boards {
			names = append(names, b.Name)
			for _, be := range b.Backends {
				if !slices.Contains(backends, be) {
					backends = append(backends, be)
				}
			}
		}
		slices.Sort(names)
		// sim first: it runs anywhere; then the others by name.
		slices.SortFunc(backends, func(a, b string) int {
			if (a == "sim") != (b == "sim") {
				if a == "sim" {
					return -1
				}
				return 1
			}
			return strings.Compare(a, b)
		})
		for _, fl := range []*formField{f.field("board"), f.field("backend")} {
			fl.none = noChoices
		}
		f.field("board").choices = names
		f.field("backend").choices = backends
	}
	return f
}

// What the board and backend fields show without choices: the board
// catalog could not be loaded, or it has none.
const (
	noCatalog = "(not loaded)"
	noChoices = "(none)"
)

// parseLabels reads "k=v,k2=v2".
func parseLabels(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

func submitDevice(f *form) (string, tea.Cmd, error) {
	name, board := f.field("name").value(), f.field("board").value()
	if err := required("name", name); err != nil {
		return "", nil, err
	}
	if board == "" {
		switch f.field("board").none {
		case noCatalog:
			return "", nil, errors.New("no board: the board catalog could not be loaded; esc and open the form again")
		case noChoices:
			return "", nil, errors.New("no board: the daemon's catalog has none")
		}
		return "", nil, errors.New("no board yet: the board catalog is loading")
	}
	labels, err := parseLabels(f.field("labels").value())
	if err != nil {
		return "", nil, err
	}
	dev := &v1alpha1.Device{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       v1alpha1.DeviceSpec{Board: board},
	}
	q := fmt.Sprintf("create device %s (%s)", name, board)
	if f.field("emulation").value() == "on" {
		be := f.field("backend").value()
		if be == "" {
			return "", nil, errors.New("no backend to emulate the board on; switch emulation off")
		}
		dev.Spec.Emulation = &v1alpha1.Emulation{Backend: be, Enabled: true}
		q = fmt.Sprintf("create device %s (%s, emulated on %s)", name, board, be)
	}
	c := f.sh.client
	return q + "?", func() tea.Msg {
		_, err := withTimeout(func(ctx context.Context) (*v1alpha1.Device, error) { return c.CreateDevice(ctx, dev) })
		return actionDoneMsg{what: "create device " + name, err: err}
	}, nil
}

// tokenMsg is an enrollment token just issued, or why not.
type tokenMsg struct {
	device string
	token  api.Token
	err    error
}

// tokenCmd issues an enrollment token for device, valid for ttl (the
// daemon's default when 0).
func tokenCmd(c *client.Client, device string, ttl time.Duration) tea.Cmd {
	return func() tea.Msg {
		tok, err := withTimeout(func(ctx context.Context) (api.Token, error) { return c.CreateToken(ctx, device, ttl) })
		return tokenMsg{device, tok, err}
	}
}

// defaultTokenLifetime is what the token form offers: the daemon's
// default.
const defaultTokenLifetime = "1h"

// newTokenForm is the form that issues an enrollment token for a device,
// with the lifetime the user chooses. The daemon bounds it (seven days at
// most) and says so when it refuses.
func newTokenForm(sh *shared, device string) *form {
	return newForm(sh, "Issue an enrollment token for "+device, func(f *form) (string, tea.Cmd, error) {
		ttl, err := parseLifetime(f.field("lifetime").value())
		if err != nil {
			return "", nil, err
		}
		q := fmt.Sprintf("issue an enrollment token for device %s, valid for %s?", device, formatLifetime(ttl))
		return q, tokenCmd(sh.client, device, ttl), nil
	}, textField("lifetime", defaultTokenLifetime, "1h", "30m, 8h, 7d...; the daemon allows up to 7d"))
}

// parseLifetime reads a token's lifetime: a Go duration (90m, 1h30m) or
// a number of days (7d).
func parseLifetime(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("lifetime is required")
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, fmt.Errorf("lifetime %q: want a duration such as 30m, 8h or 7d", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("lifetime %q: want a duration such as 30m, 8h or 7d", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("lifetime %q: must be more than 0", s)
	}
	return d, nil
}

// formatLifetime renders a lifetime as parseLifetime reads it, in whole
// days when it is some: 7d, 8h, 1h30m, 45s.
func formatLifetime(d time.Duration) string {
	day := 24 * time.Hour
	if d >= day && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// newLabelsForm is the form that edits a device's labels, filled in with
// the ones it has.
func newLabelsForm(sh *shared, d *v1alpha1.Device) *form {
	name := d.Name
	current := ""
	if len(d.Labels) > 0 {
		current = labelString(d.Labels)
	}
	return newForm(sh, "Labels of device "+name, func(f *form) (string, tea.Cmd, error) {
		labels, err := parseLabels(f.field("labels").value())
		if err != nil {
			return "", nil, err
		}
		q := fmt.Sprintf("set the labels of device %s to %s?", name, labelString(labels))
		if len(labels) == 0 {
			q = fmt.Sprintf("remove every label of device %s?", name)
		}
		return q, setLabelsCmd(sh.client, name, labels), nil
	}, textField("labels", current, "room=lab,fleet=a", "k=v, comma separated; empty removes them all"))
}

// labelRetries bounds how often setLabelsCmd reads the device again when
// it changed between its read and its update (its status changes with
// every heartbeat).
const labelRetries = 5

// setLabelsCmd replaces the device's labels: it reads the device, sets
// them and writes it back, again when the daemon answers that the device
// changed meanwhile.
func setLabelsCmd(c *client.Client, name string, labels map[string]string) tea.Cmd {
	return func() tea.Msg {
		what := "set the labels of " + name
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		var err error
		for range labelRetries {
			var dev *v1alpha1.Device
			if dev, err = c.GetDevice(ctx, name); err != nil {
				break
			}
			dev.Labels = labels
			if _, err = c.UpdateDevice(ctx, dev); !errors.Is(err, &api.Error{Reason: api.ReasonConflict}) {
				break
			}
		}
		return actionDoneMsg{what: what, err: err}
	}
}

// deployKeys are the keys of the applications that deploy a module.
type deployKeys struct{ Deploy key.Binding }

func newDeployKeys() deployKeys {
	return deployKeys{Deploy: key.NewBinding(key.WithKeys("d"), key.WithHelp("d", "deploy: upload a module, create or update an app"))}
}

// newDeployForm is the form that deploys a module from a file: it
// uploads the file, then creates the application or moves it to the new
// version. name is filled in when an application is selected.
func newDeployForm(sh *shared, name string) *form {
	selector := ""
	if a := sh.cache.apps[name]; a != nil && a.Spec.Target.Selector != nil {
		selector = metav1.FormatLabelSelector(a.Spec.Target.Selector)
	}
	return newForm(sh, "Deploy a module", submitDeploy,
		textField("name", name, "the application", ""),
		textField("version", "", "1.2.0", ""),
		textField("file", "", "/path/to/app.wasm", "read by the console, uploaded to the daemon"),
		textField("selector", selector, "fleet=a,room=lab", "the devices to run it on"),
	)
}

func submitDeploy(f *form) (string, tea.Cmd, error) {
	name, version := f.field("name").value(), f.field("version").value()
	path, sel := f.field("file").value(), f.field("selector").value()
	for _, r := range []struct{ label, v string }{{"name", name}, {"version", version}, {"file", path}} {
		if err := required(r.label, r.v); err != nil {
			return "", nil, err
		}
	}
	var selector *metav1.LabelSelector
	if sel != "" {
		s, err := metav1.ParseToLabelSelector(sel)
		if err != nil {
			return "", nil, fmt.Errorf("selector: %v", err)
		}
		selector = s
	}
	existing := f.sh.cache.apps[name]
	if existing == nil && selector == nil {
		return "", nil, errors.New("a new application needs a selector")
	}
	q := fmt.Sprintf("create application %s version %s from %s?", name, version, path)
	if existing != nil {
		q = fmt.Sprintf("update application %s from version %s to %s with %s?", name, existing.Spec.Version, version, path)
	}
	return q, deployCmd(f.sh.client, name, version, path, selector), nil
}

// deployCmd reads the module, uploads it, and creates the application or
// updates its module, version and (when given) selector.
func deployCmd(c *client.Client, name, version, path string, selector *metav1.LabelSelector) tea.Cmd {
	return func() tea.Msg {
		what := "deploy " + name + " " + version
		wasm, err := os.ReadFile(path)
		if err != nil {
			return actionDoneMsg{what: what, err: err}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*callTimeout)
		defer cancel()
		mod, err := c.UploadModule(ctx, bytes.NewReader(wasm))
		if err != nil {
			return actionDoneMsg{what: what, err: err}
		}
		ref := v1alpha1.ModuleRef{SHA256: mod.SHA256, Size: mod.Size}
		app, err := c.GetApplication(ctx, name)
		var ae *api.Error
		switch {
		case errors.As(err, &ae) && ae.Reason == api.ReasonNotFound:
			app, err = c.CreateApplication(ctx, &v1alpha1.Application{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec:       v1alpha1.ApplicationSpec{Module: ref, Version: version, Target: v1alpha1.Target{Selector: selector}},
			})
		case err == nil:
			app.Spec.Module, app.Spec.Version = ref, version
			if selector != nil {
				app.Spec.Target.Selector = selector
			}
			app, err = c.UpdateApplication(ctx, app)
		}
		if err != nil {
			return actionDoneMsg{what: what, err: err}
		}
		return actionDoneMsg{what: what, app: app}
	}
}

// tokenView shows an enrollment token, once: leaving it forgets the
// token.
type tokenView struct {
	sh     *shared
	tok    api.Token
	width  int
	height int
}

func newTokenView(sh *shared, tok api.Token) *tokenView { return &tokenView{sh: sh, tok: tok} }

func (v *tokenView) Init() tea.Cmd                  { return nil }
func (v *tokenView) SetSize(w, h int)               { v.width, v.height = w, h }
func (v *tokenView) Title() string                  { return "Enrollment token for " + v.tok.Device }
func (v *tokenView) Keys() []key.Binding            { return nil }
func (v *tokenView) Update(tea.Msg) (view, tea.Cmd) { return v, nil }
func (v *tokenView) expires(now time.Time) string {
	return v.tok.Expires.Sub(now).Round(time.Minute).String()
}
func (v *tokenView) View() string {
	st := v.sh.styles
	lines := []string{
		"",
		"  " + st.key.Render(v.tok.Token),
		"",
		"  Valid once, for " + v.expires(v.sh.now()) + " (until " + v.tok.Expires.UTC().Format(time.RFC3339) + ").",
		"  It is shown only now: esc forgets it.",
		"",
		st.dim.Render("  On the device: --token-file with the token, and --ca-file with the CA below,"),
		st.dim.Render("  which the device trusts until it is enrolled."),
		"",
	}
	for _, l := range strings.Split(strings.TrimSpace(v.tok.CA), "\n") {
		lines = append(lines, "  "+l)
	}
	for i, l := range lines {
		lines[i] = fit(l, v.width)
	}
	return padLines(strings.Join(lines, "\n"), v.width, v.height)
}
