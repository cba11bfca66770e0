package tui

import (
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"wasmbed.io/wasmbed/daemon/api"
	"wasmbed.io/wasmbed/daemon/client"
)

// view is one screen of the console. The root model gives it the body
// of the screen (SetSize: everything but the header, title and footer)
// and the messages it does not handle itself. Views keep no I/O of their
// own: they return Cmds.
type view interface {
	Init() tea.Cmd
	Update(msg tea.Msg) (view, tea.Cmd)
	View() string
	SetSize(width, height int)
	// Title is the view's title bar, e.g. "Devices (3)".
	Title() string
	// Keys are the view's own keys, for help and the footer.
	Keys() []key.Binding
}

// Optional parts of a view.
type (
	// filterable views take the / filter.
	filterable interface {
		Filter() string
		SetFilter(string)
	}
	// syncer views derive state from the cache and rebuild it when
	// asked (after the cache changed, and once a second for ages).
	syncer interface{ Sync() }
	// fullScreen views take the whole screen and every key but their
	// own detach key (the console).
	fullScreen interface{ FullScreen() }
	// closer views hold a stream to end when they are left.
	closer interface{ Close() }
	// poller views read the daemon again every livePoll while they are
	// open, under a poll id of their own: the root hands them the
	// messages of that poll wherever they are on the stack, and once
	// they are closed the poll ends.
	poller interface{ Poll() int }
	// watcher views hold what they read beyond the cache; each event the
	// cache takes is shown to them, so that they may read again when it
	// says what they hold changed.
	watcher interface{ Watch(api.Event) tea.Cmd }
)

// shared is what the root model hands its views: the daemon client, the
// cache, the styles and the clock. The root owns it.
type shared struct {
	client *client.Client
	cache  *cache
	styles *styles
	now    func() time.Time
	lastID int // of console sessions
}

func (sh *shared) nextID() int {
	sh.lastID++
	return sh.lastID
}

// column is a column of a table.
type column struct {
	title string
	width int  // fixed width; 0 for the one flexible column
	min   int  // the flexible column's least width
	prio  int  // columns are dropped lowest first when the screen is narrow; 0 never
	right bool // numbers are right-aligned
}

// gutter is the width of the selection mark before every row.
const gutter = 2

// layoutColumns returns the columns of cols that fit in width, in order,
// with the flexible column widened to fill the row.
func layoutColumns(cols []column, width int) []column {
	avail := width - gutter
	out := append([]column(nil), cols...)
	total := func() int {
		sum := len(out) - 1
		for _, c := range out {
			if c.width == 0 {
				sum += c.min
			} else {
				sum += c.width
			}
		}
		return sum
	}
	for total() > avail {
		drop, prio := -1, 0
		for i, c := range out {
			if c.prio > 0 && (drop < 0 || c.prio < prio) {
				drop, prio = i, c.prio
			}
		}
		if drop < 0 {
			break
		}
		out = append(out[:drop], out[drop+1:]...)
	}
	extra := max(0, avail-total())
	for i := range out {
		if out[i].width == 0 {
			out[i].width = out[i].min + extra
			break
		}
	}
	return out
}

// tableRow renders cells (by column title) into one row of the laid-out
// columns, without the gutter.
func tableRow(cols []column, cells map[string]string) string {
	var b strings.Builder
	for i, c := range cols {
		if i > 0 {
			b.WriteByte(' ')
		}
		if c.right {
			b.WriteString(fitRight(cells[c.title], c.width))
		} else {
			b.WriteString(fit(cells[c.title], c.width))
		}
	}
	return b.String()
}

// tableHeader renders the column titles, marking the sort column with
// an arrow.
func tableHeader(st *styles, cols []column, sortBy string, reverse bool) string {
	cells := make(map[string]string, len(cols))
	for _, c := range cols {
		t := c.title
		if t == sortBy {
			if reverse {
				t += "↓"
			} else {
				t += "↑"
			}
		}
		cells[c.title] = t
	}
	return st.colTitle.Render(strings.Repeat(" ", gutter) + tableRow(cols, cells))
}

// withGutter prefixes a row with the selection mark, which shows the
// cursor also where styles render as plain text (NO_COLOR).
func withGutter(st *styles, row string, selected bool, width int) string {
	if selected {
		return st.selected.Render(fit("> "+row, width))
	}
	return fit("  "+row, width)
}

// padLines makes s exactly height lines, each cut to width.
func padLines(s string, width, height int) string {
	if height <= 0 {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > height {
		lines = lines[:height]
	}
	for i, l := range lines {
		lines[i] = fit(l, width)
	}
	for len(lines) < height {
		lines = append(lines, strings.Repeat(" ", max(0, width)))
	}
	return strings.Join(lines, "\n")
}
