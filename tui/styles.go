package tui

import (
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// styles are the console's looks. They use a lipgloss renderer, by
// default lipgloss's own, whose color profile follows the terminal and
// NO_COLOR (termenv); a console served over SSH has one per session. With
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

	r *lipgloss.Renderer
}

func newStyles() *styles { return newStylesFor(lipgloss.DefaultRenderer()) }

// newStylesFor returns the styles drawn by r.
func newStylesFor(r *lipgloss.Renderer) *styles {
	return &styles{
		r:        r,
		header:   r.NewStyle().Foreground(lipgloss.Color("252")),
		brand:    r.NewStyle().Bold(true).Foreground(lipgloss.Color("39")),
		dim:      r.NewStyle().Foreground(lipgloss.Color("243")),
		title:    r.NewStyle().Bold(true).Foreground(lipgloss.Color("39")),
		colTitle: r.NewStyle().Bold(true).Foreground(lipgloss.Color("250")),
		selected: r.NewStyle().Reverse(true),
		banner:   r.NewStyle().Bold(true).Foreground(lipgloss.Color("15")).Background(lipgloss.Color("1")),
		errText:  r.NewStyle().Foreground(lipgloss.Color("9")),
		key:      r.NewStyle().Bold(true).Foreground(lipgloss.Color("39")),
		section:  r.NewStyle().Bold(true).Underline(true),
		ok:       r.NewStyle().Foreground(lipgloss.Color("10")),
		warn:     r.NewStyle().Foreground(lipgloss.Color("11")),
		bad:      r.NewStyle().Foreground(lipgloss.Color("9")),
		neutral:  r.NewStyle().Foreground(lipgloss.Color("245")),
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

// ascii reports whether the renderer draws no colors (NO_COLOR, a dumb
// terminal, the golden tests): text that would lean on block characters
// then uses plain ASCII. It is read at render time, as the profile may be
// set after the styles are made.
func (st *styles) ascii() bool {
	return st.r != nil && st.r.ColorProfile() == termenv.Ascii
}
