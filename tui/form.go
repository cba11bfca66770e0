package tui

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
)

// A form is a full-screen view of labelled fields: text fields edited
// with bubbles/textinput, and choice fields cycled with ←/→ (or space).
// tab, ↓ and enter go to the next field, shift+tab and ↑ back; enter on
// the last field (or ctrl+s anywhere) checks the fields and asks y/n with
// what will be done; y does it and goes back, n returns to the fields,
// esc leaves the form without doing anything.

// formField is one field of a form.
type formField struct {
	label string
	hint  string // shown after the field, dimmed
	input textinput.Model
	// choose makes a choice field, also while it has no choices (the
	// board catalog not loaded): its input is never made, so it must not
	// be focused as text.
	choose  bool
	choices []string
	choice  int
	// none is what a choice field without choices shows.
	none string
	// hints, when set, is a choice field's hint for each value, over
	// hint: what the chosen one means.
	hints map[string]string
	// visible, when set, hides the field while it says no (the backend of
	// a device without emulation).
	visible func(f *form) bool
}

func (f *formField) isChoice() bool { return f.choose }

// value is what the field holds: the text, or the chosen item.
func (f *formField) value() string {
	if f.isChoice() {
		if f.choice < len(f.choices) {
			return f.choices[f.choice]
		}
		return ""
	}
	return strings.TrimSpace(f.input.Value())
}

// hintText is the hint the field shows now.
func (f *formField) hintText() string {
	if h, ok := f.hints[f.value()]; ok {
		return h
	}
	return f.hint
}

func textField(label, value, placeholder, hint string) *formField {
	in := textinput.New()
	in.Prompt = ""
	in.Placeholder = placeholder
	in.CharLimit = 512
	// A steady cursor: frames depend only on what was typed.
	in.Cursor.SetMode(cursor.CursorStatic)
	in.SetValue(value)
	return &formField{label: label, hint: hint, input: in}
}

func choiceField(label string, choices []string, hint string) *formField {
	return &formField{label: label, hint: hint, choose: true, choices: choices, none: "(loading)"}
}

// formSubmit checks a form's fields and returns the y/n question and the
// Cmd that does the work, or an error to show under the fields.
type formSubmit func(f *form) (question string, do tea.Cmd, err error)

// form is a full-screen view with fields, a question and an error line.
type form struct {
	sh       *shared
	title    string
	fields   []*formField
	focus    int
	question string  // y/n asked before submitting; "" while editing
	do       tea.Cmd // what y runs
	err      string
	submit   formSubmit
	init     tea.Cmd
	onMsg    func(f *form, msg tea.Msg) // messages other than keys
	keys     formKeys
	width    int
	height   int
}

type formKeys struct {
	Next, Prev, Choice, Submit, Cancel key.Binding
}

func newFormKeys() formKeys {
	return formKeys{
		Next:   key.NewBinding(key.WithKeys("tab", "down", "enter"), key.WithHelp("tab/↓", "next field (enter on the last: submit)")),
		Prev:   key.NewBinding(key.WithKeys("shift+tab", "up"), key.WithHelp("shift+tab/↑", "previous field")),
		Choice: key.NewBinding(key.WithKeys("left", "right", " "), key.WithHelp("←/→", "change a choice")),
		Submit: key.NewBinding(key.WithKeys("ctrl+s"), key.WithHelp("ctrl+s", "submit")),
		Cancel: key.NewBinding(key.WithKeys("esc", "ctrl+c"), key.WithHelp("esc", "cancel")),
	}
}

func newForm(sh *shared, title string, submit formSubmit, fields ...*formField) *form {
	f := &form{sh: sh, title: title, fields: fields, submit: submit, keys: newFormKeys()}
	f.setFocus(0)
	return f
}

// field returns the field labelled label.
func (f *form) field(label string) *formField {
	for _, fl := range f.fields {
		if fl.label == label {
			return fl
		}
	}
	panic("tui: form " + f.title + " has no field " + label)
}

func (f *form) shown(i int) bool {
	v := f.fields[i].visible
	return v == nil || v(f)
}

func (f *form) setFocus(i int) {
	for j, fl := range f.fields {
		if fl.isChoice() {
			continue
		}
		if j == i {
			fl.input.Focus()
		} else {
			fl.input.Blur()
		}
	}
	f.focus = i
}

// move goes to the next (+1) or previous (-1) shown field and reports
// whether there was one.
func (f *form) move(d int) bool {
	for i := f.focus + d; i >= 0 && i < len(f.fields); i += d {
		if f.shown(i) {
			f.setFocus(i)
			return true
		}
	}
	return false
}

func (f *form) Init() tea.Cmd { return f.init }

func (f *form) FullScreen() {}

func (f *form) SetSize(w, h int) {
	f.width, f.height = w, h
	for _, fl := range f.fields {
		fl.input.Width = max(10, w-labelWidth-6)
	}
}

func (f *form) Title() string { return f.title }

func (f *form) Keys() []key.Binding {
	return []key.Binding{f.keys.Next, f.keys.Prev, f.keys.Choice, f.keys.Submit, f.keys.Cancel}
}

func (f *form) Update(msg tea.Msg) (view, tea.Cmd) {
	km, ok := msg.(tea.KeyMsg)
	if !ok {
		if f.onMsg != nil {
			f.onMsg(f, msg)
		}
		return f, nil
	}
	s := km.String()
	if f.question != "" {
		switch s {
		case "y", "Y":
			do := f.do
			f.question, f.do = "", nil
			return f, tea.Sequence(send(popMsg{}), send(statusMsg{text: f.title + "..."}), do)
		case "n", "N", "esc":
			f.question, f.do = "", nil
		case "ctrl+c":
			return f, send(popMsg{})
		}
		return f, nil
	}
	fl := f.fields[f.focus]
	switch {
	case matches(s, f.keys.Cancel):
		return f, tea.Sequence(send(popMsg{}), send(statusMsg{text: "cancelled"}))
	case matches(s, f.keys.Submit), s == "enter" && !f.hasNext():
		f.ask()
		return f, nil
	case matches(s, f.keys.Next):
		f.move(1)
		return f, nil
	case matches(s, f.keys.Prev):
		f.move(-1)
		return f, nil
	case fl.isChoice() && matches(s, f.keys.Choice) && len(fl.choices) > 0:
		n := len(fl.choices)
		if s == "left" {
			fl.choice = (fl.choice + n - 1) % n
		} else {
			fl.choice = (fl.choice + 1) % n
		}
		f.err = ""
		return f, nil
	case fl.isChoice():
		return f, nil
	}
	var cmd tea.Cmd
	fl.input, cmd = fl.input.Update(km)
	f.err = ""
	return f, cmd
}

// hasNext reports whether a shown field follows the focused one.
func (f *form) hasNext() bool {
	for i := f.focus + 1; i < len(f.fields); i++ {
		if f.shown(i) {
			return true
		}
	}
	return false
}

// ask checks the fields and asks the question, or shows what is wrong.
func (f *form) ask() {
	q, do, err := f.submit(f)
	if err != nil {
		f.err = err.Error()
		return
	}
	f.question, f.do, f.err = q, do, ""
}

// labelWidth is the width of the labels column.
const labelWidth = 12

func (f *form) View() string {
	st := f.sh.styles
	var b strings.Builder
	b.WriteString(fit(st.title.Render(" "+f.title), f.width))
	b.WriteString("\n")
	for i, fl := range f.fields {
		if !f.shown(i) {
			continue
		}
		label := fmt.Sprintf("%-*s", labelWidth, fl.label)
		var val string
		if fl.isChoice() {
			if len(fl.choices) == 0 {
				val = st.dim.Render(fl.none)
			} else {
				val = "< " + fl.value() + " >"
			}
		} else {
			val = fl.input.View()
		}
		gutter := "  "
		if i == f.focus {
			gutter = "> "
			label = st.key.Render(label)
		}
		line := gutter + label + " " + val
		if h := fl.hintText(); h != "" {
			line += "  " + st.dim.Render(h)
		}
		b.WriteString("\n" + fit(line, f.width))
	}
	b.WriteString("\n")
	if f.err != "" {
		b.WriteString("\n" + fit(st.errText.Render("  "+f.err), f.width))
	}
	if f.question != "" {
		// The question names what will be done in full (a file's path
		// may be long): it wraps instead of being cut.
		for _, l := range strings.Split(ansi.Wordwrap(f.question+" [y/n]", max(10, f.width-2), ""), "\n") {
			b.WriteString("\n" + fit("  "+st.warn.Render(l), f.width))
		}
	}
	body := padLines(b.String(), f.width, max(0, f.height-1))
	return body + "\n" + fit(f.footer(), f.width)
}

// footer is the keys of the moment: those that answer the question, or
// those that edit. enter says what it does on the focused field, and
// the ones of least use go first when the screen is narrow, so that esc
// stays in sight.
func (f *form) footer() string {
	st := f.sh.styles
	hint := func(k, what string) string { return st.key.Render("<"+k+">") + " " + what }
	if f.question != "" {
		return " " + strings.Join([]string{hint("y", "do it"), hint("n", "back to the fields"), hint("ctrl+c", "leave")}, " ")
	}
	var hints []string
	if f.hasNext() {
		hints = append(hints, hint("tab/enter", "next"), hint("ctrl+s", "submit"))
	} else {
		hints = append(hints, hint("enter", "submit"))
	}
	if f.focus > 0 {
		hints = append(hints, hint("shift+tab", "back"))
	}
	if f.fields[f.focus].isChoice() {
		hints = append(hints, hint("←/→", "choose"))
	}
	hints = append(hints, hint("esc", "cancel"))
	for len(hints) > 2 && visibleWidth(" "+strings.Join(hints, " ")) > f.width {
		hints = slices.Delete(hints, len(hints)-2, len(hints)-1)
	}
	return " " + strings.Join(hints, " ")
}

// errEmpty is what a required field says when left empty.
func required(label, v string) error {
	if v == "" {
		return fmt.Errorf("%s is required", label)
	}
	return nil
}

// withTimeout runs call under a context bounded by callTimeout.
func withTimeout[T any](call func(ctx context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	return call(ctx)
}
