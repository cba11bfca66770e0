package tui

import "github.com/charmbracelet/bubbles/key"

// globalKeys work in every view except a console, which takes every key
// but its detach key.
type globalKeys struct {
	Command key.Binding
	Filter  key.Binding
	Help    key.Binding
	Back    key.Binding
	Quit    key.Binding
}

func newGlobalKeys() globalKeys {
	return globalKeys{
		Command: key.NewBinding(key.WithKeys(":"), key.WithHelp(":", "views: jump to a view by name")),
		Filter:  key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter: text, k=v, field:v")),
		Help:    key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Back:    key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back, or clear the filter")),
		Quit:    key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit (also ctrl+c)")),
	}
}

func (k globalKeys) list() []key.Binding {
	return []key.Binding{k.Command, k.Filter, k.Help, k.Back, k.Quit}
}

// listKeys move the cursor of a list or scroll a page.
type listKeys struct {
	Up, Down, PageUp, PageDown, Top, Bottom key.Binding
}

func newListKeys() listKeys {
	return listKeys{
		Up:       key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:     key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		PageUp:   key.NewBinding(key.WithKeys("pgup", "ctrl+b"), key.WithHelp("pgup", "page up")),
		PageDown: key.NewBinding(key.WithKeys("pgdown", "ctrl+f"), key.WithHelp("pgdn", "page down")),
		Top:      key.NewBinding(key.WithKeys("home", "g"), key.WithHelp("g/home", "top")),
		Bottom:   key.NewBinding(key.WithKeys("end", "G"), key.WithHelp("G/end", "bottom")),
	}
}

func (k listKeys) list() []key.Binding {
	return []key.Binding{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom}
}

// move returns the cursor after msg's key, and whether the key was one
// of the list's; page is the number of visible rows, n the row count.
func (k listKeys) move(msg string, cursor, page, n int) (int, bool) {
	page = max(1, page)
	switch {
	case matches(msg, k.Up):
		cursor--
	case matches(msg, k.Down):
		cursor++
	case matches(msg, k.PageUp):
		cursor -= page
	case matches(msg, k.PageDown):
		cursor += page
	case matches(msg, k.Top):
		cursor = 0
	case matches(msg, k.Bottom):
		cursor = n - 1
	default:
		return cursor, false
	}
	return max(0, min(cursor, n-1)), true
}

// newDeleteKey is the key that deletes the object under the cursor, after
// a y/n question; what names the object in help.
func newDeleteKey(what string) key.Binding {
	return key.NewBinding(key.WithKeys("ctrl+d"), key.WithHelp("ctrl+d", "delete the "+what))
}

// matches reports whether the key named s (tea.KeyMsg.String) is one of
// b's keys.
func matches(s string, b key.Binding) bool {
	if !b.Enabled() {
		return false
	}
	for _, k := range b.Keys() {
		if k == s {
			return true
		}
	}
	return false
}

// scrollWindow keeps cursor inside the window of page rows starting at
// offset, moving the window as little as possible, and returns the new
// offset.
func scrollWindow(offset, cursor, page, n int) int {
	if page <= 0 || n <= 0 {
		return 0
	}
	if cursor < offset {
		offset = cursor
	}
	if cursor >= offset+page {
		offset = cursor - page + 1
	}
	return max(0, min(offset, n-page))
}
