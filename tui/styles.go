package tui

import "github.com/charmbracelet/lipgloss"

// styles are the console's looks. They use lipgloss's default renderer,
// whose color profile follows the terminal and NO_COLOR (termenv): with
// no colors every style renders as plain text, so nothing here may carry
// meaning by color alone.
type styles struct {
	header   lipgloss.Style
	brand    lipgloss.Style
	dim      lipgloss.Style
	title    lipgloss.Style
	colTitle lipgloss.Style
	selected lipgloss.Style
	banner   lipgloss.Style
	errText  lipgloss.Style
	key      lipgloss.Style
	section  lipgloss.Style

	ok, warn, bad, neutral lipgloss.Style
}

func newStyles() *styles {
	return &styles{
		header:   lipgloss.NewStyle().Foreground(lipgloss.Color("252")),
		brand:    lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("39")),
		dim:      lipgloss.NewStyle().Foreground(lipgloss.Color("243")),
		title:    lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("39")),
		colTitle: lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("250")),
		selected: lipgloss.NewStyle().Reverse(true),
		banner:   lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("15")).Background(lipgloss.Color("1")),
		errText:  lipgloss.NewStyle().Foreground(lipgloss.Color("9")),
		key:      lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("39")),
		section:  lipgloss.NewStyle().Bold(true).Underline(true),
		ok:       lipgloss.NewStyle().Foreground(lipgloss.Color("10")),
		warn:     lipgloss.NewStyle().Foreground(lipgloss.Color("11")),
		bad:      lipgloss.NewStyle().Foreground(lipgloss.Color("9")),
		neutral:  lipgloss.NewStyle().Foreground(lipgloss.Color("245")),
	}
}

// health renders s in the color of its health.
func (st *styles) health(h health, s string) string {
	switch h {
	case healthOK:
		return st.ok.Render(s)
	case healthWarn:
		return st.warn.Render(s)
	case healthBad:
		return st.bad.Render(s)
	}
	return st.neutral.Render(s)
}

// state renders a phase or state in the color of its health.
func (st *styles) state(s string) string {
	return st.health(healthOf(s), s)
}
