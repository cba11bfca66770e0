package tui

import (
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"
)

// helpSection is a titled group of keys.
type helpSection struct {
	title string
	keys  []key.Binding
}

// renderHelp lists the keys of each section, one per line, from the key
// maps themselves, so that help cannot drift from what the keys do. When
// one column would be taller than height and the screen is wide enough,
// the sections flow into two columns.
func renderHelp(st *styles, sections []helpSection, width, height int) string {
	render := func(secs []helpSection, w int) []string {
		keyWidth := 0
		for _, s := range secs {
			for _, k := range s.keys {
				keyWidth = max(keyWidth, len([]rune(k.Help().Key)))
			}
		}
		var lines []string
		for _, s := range secs {
			if len(s.keys) == 0 {
				continue
			}
			if len(lines) > 0 {
				lines = append(lines, "")
			}
			lines = append(lines, st.section.Render(s.title))
			for _, k := range s.keys {
				h := k.Help()
				lines = append(lines, fit("  "+st.key.Render(fit(h.Key, keyWidth))+"  "+h.Desc, w))
			}
		}
		return lines
	}
	one := render(sections, width)
	if len(one) <= height || width < 2*minHelpColumn || len(sections) < 2 {
		return strings.Join(one, "\n")
	}
	// Fill the left column with whole sections while they fit.
	colWidth := (width - 1) / 2
	split, rows := 1, len(sections[0].keys)+1
	for split < len(sections)-1 && rows+len(sections[split].keys)+2 <= height {
		rows += len(sections[split].keys) + 2
		split++
	}
	left, right := render(sections[:split], colWidth), render(sections[split:], colWidth)
	var b strings.Builder
	for i := range max(len(left), len(right)) {
		l, r := "", ""
		if i < len(left) {
			l = left[i]
		}
		if i < len(right) {
			r = right[i]
		}
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(fit(l, colWidth) + " " + r)
	}
	return b.String()
}

// minHelpColumn is the least width of a column of help.
const minHelpColumn = 36

// helpView shows the keys of the view it was opened over and the global
// ones.
type helpView struct {
	sections []helpSection
	st       *styles
	vp       viewport.Model
	width    int
}

func newHelpView(st *styles, sections []helpSection) *helpView {
	return &helpView{sections: sections, st: st, vp: viewport.New(0, 0)}
}

func (v *helpView) Init() tea.Cmd { return nil }

func (v *helpView) SetSize(w, h int) {
	v.width, v.vp.Width, v.vp.Height = w, w, h
	v.vp.SetContent(renderHelp(v.st, v.sections, w, h))
}

func (v *helpView) Title() string { return "Help" }

func (v *helpView) Keys() []key.Binding {
	return []key.Binding{v.vp.KeyMap.Up, v.vp.KeyMap.Down}
}

func (v *helpView) Update(msg tea.Msg) (view, tea.Cmd) {
	var cmd tea.Cmd
	v.vp, cmd = v.vp.Update(msg)
	return v, cmd
}

func (v *helpView) View() string { return padLines(v.vp.View(), v.width, v.vp.Height) }
