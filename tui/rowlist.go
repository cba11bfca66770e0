package tui

import (
	"cmp"
	"slices"
)

// rowList is the scrolling list behind every list the console shows: the
// tables (devices, applications, gateways, an application's devices), the
// event stream and the topology tree. It holds the rows shown, the cursor,
// the first visible row and the keys that move the cursor, and is the one
// place that moves, pages and scrolls. Views embed it, so its fields and
// methods read as their own.
type rowList[T any] struct {
	nav    listKeys
	height int // of the view, head included
	head   int // lines the view draws above its rows: a table's column titles
	rows   []T
	cursor int
	offset int
}

// newRowList returns an empty list under head lines of titles.
func newRowList[T any](head int) rowList[T] { return rowList[T]{nav: newListKeys(), head: head} }

// page is how many rows fit on screen.
func (l *rowList[T]) page() int { return max(0, l.height-l.head) }

// setHeight gives the list the view's height and keeps the cursor on
// screen.
func (l *rowList[T]) setHeight(h int) {
	l.height = h
	l.scroll()
}

// scroll keeps the cursor on screen.
func (l *rowList[T]) scroll() { l.offset = scrollWindow(l.offset, l.cursor, l.page(), len(l.rows)) }

// visible returns the rows on screen as the range [start, end) of rows.
func (l *rowList[T]) visible() (start, end int) {
	end = min(len(l.rows), l.offset+l.page())
	return min(l.offset, end), end
}

// selected is the row under the cursor, and false when there is none.
func (l *rowList[T]) selected() (T, bool) {
	if l.cursor < 0 || l.cursor >= len(l.rows) {
		var zero T
		return zero, false
	}
	return l.rows[l.cursor], true
}

// moveBy moves the cursor for a navigation key and reports whether s was
// one.
func (l *rowList[T]) moveBy(s string) bool {
	c, moved := l.nav.move(s, l.cursor, l.page(), len(l.rows))
	if moved {
		l.cursor = c
		l.scroll()
	}
	return moved
}

// atBottom reports whether the cursor is on the last row (or there is
// none).
func (l *rowList[T]) atBottom() bool { return l.cursor >= len(l.rows)-1 }

// toBottom puts the cursor on the last row.
func (l *rowList[T]) toBottom() {
	l.cursor = max(0, len(l.rows)-1)
	l.scroll()
}

// settle makes rows the list, keeping the cursor on the row keep picks
// when there is one, and within the rows otherwise. rows may share the
// old rows' array: the slots past its end are cleared so the list holds
// no pointer to objects the cache let go.
func (l *rowList[T]) settle(rows []T, keep func(T) bool) {
	clear(rows[len(rows):cap(rows)])
	l.rows = rows
	if keep != nil {
		if i := slices.IndexFunc(rows, keep); i >= 0 {
			l.cursor = i
		}
	}
	l.cursor = max(0, min(l.cursor, len(rows)-1))
	l.scroll()
}

// named is a resource of the cache.
type named interface{ GetName() string }

// syncNamed makes the list the objects match passes, ordered by compare,
// keeping the cursor on the object it was on.
func syncNamed[T named](l *rowList[T], objs map[string]T, match func(T) bool, compare func(a, b T) int) {
	var selected string
	if o, ok := l.selected(); ok {
		selected = o.GetName()
	}
	rows := l.rows[:0]
	for _, o := range objs {
		if match(o) {
			rows = append(rows, o)
		}
	}
	slices.SortFunc(rows, compare)
	l.settle(rows, func(o T) bool { return selected != "" && o.GetName() == selected })
}

// byName orders resources by name.
func byName[T named](a, b T) int { return cmp.Compare(a.GetName(), b.GetName()) }
