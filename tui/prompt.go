package tui

import (
	"strings"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
)

// promptMode is what the prompt line is asking for.
type promptMode int

const (
	promptOff     promptMode = iota
	promptCommand            // ":" a view to jump to
	promptFilter             // "/" the active view's filter
)

// prompt is the one-line editor of the footer: it takes printable keys,
// backspace, ctrl+u and ctrl+w; the root handles enter and esc. It has no
// blinking cursor, so that frames depend only on what was typed.
type prompt struct {
	mode  promptMode
	value []rune
}

func (p *prompt) open(mode promptMode, value string) {
	p.mode, p.value = mode, []rune(value)
}

func (p *prompt) close() { p.mode, p.value = promptOff, nil }

func (p *prompt) String() string { return string(p.value) }

// edit applies a key and reports whether the value changed.
func (p *prompt) edit(k tea.KeyMsg) bool {
	switch k.Type {
	case tea.KeyRunes, tea.KeySpace:
		p.value = append(p.value, k.Runes...)
		if k.Type == tea.KeySpace && len(k.Runes) == 0 {
			p.value = append(p.value, ' ')
		}
	case tea.KeyBackspace:
		if len(p.value) == 0 {
			return false
		}
		p.value = p.value[:len(p.value)-1]
	case tea.KeyCtrlU:
		p.value = nil
	case tea.KeyCtrlW:
		s := strings.TrimRight(string(p.value), " ")
		i := strings.LastIndex(s, " ")
		p.value = []rune(s[:i+1])
	default:
		return false
	}
	return true
}

func (p *prompt) View() string {
	lead := ":"
	if p.mode == promptFilter {
		lead = "/"
	}
	return lead + string(p.value) + "_"
}

// viewNames maps what : takes to the top-level views.
var viewNames = map[string]string{
	"devices": "devices", "device": "devices", "dev": "devices", "devs": "devices",
	"apps": "apps", "app": "apps", "applications": "apps", "application": "apps",
	"gateways": "gateways", "gateway": "gateways", "gw": "gateways",
	"events": "events", "event": "events", "ev": "events",
	"topology": "topology", "topo": "topology", "tree": "topology",
}

// resolveView finds the view a : command names: an alias, or a prefix
// of exactly one view's name.
func resolveView(cmd string) (string, bool) {
	cmd = strings.ToLower(strings.TrimSpace(cmd))
	if cmd == "" {
		return "", false
	}
	if v, ok := viewNames[cmd]; ok {
		return v, true
	}
	found := ""
	for _, name := range topViews {
		if strings.HasPrefix(name, cmd) {
			if found != "" {
				return "", false
			}
			found = name
		}
	}
	return found, found != ""
}

// topViews are the views : jumps to, in the order help lists them.
var topViews = []string{"devices", "apps", "gateways", "events", "topology"}

// viewHelp says what each top-level view shows.
var viewHelp = map[string]string{
	"devices":  "devices table",
	"apps":     "applications and rollouts",
	"gateways": "gateways",
	"events":   "live event stream",
	"topology": "gateways > devices > apps",
}

// viewKeys are the : commands as key bindings, for help.
func viewKeys() []key.Binding {
	keys := make([]key.Binding, 0, len(topViews))
	for _, name := range topViews {
		keys = append(keys, key.NewBinding(key.WithKeys(":"+name), key.WithHelp(":"+name, viewHelp[name])))
	}
	return keys
}
