package tui

import "slices"

// rowList is the scrolling list behind the table views: the rows shown,
// the cursor, the first visible row and the keys that move the cursor.
// Views embed it, so its fields and methods read as their own.
type rowList[T comparable] struct {
	nav    listKeys
	height int // of the view; the table's header takes one line
	rows   []T
	cursor int
	offset int
}

func newRowList[T comparable]() rowList[T] { return rowList[T]{nav: newListKeys()} }

// page is how many rows fit on screen.
func (l *rowList[T]) page() int { return max(0, l.height-1) }

// scroll keeps the cursor on screen.
func (l *rowList[T]) scroll() { l.offset = scrollWindow(l.offset, l.cursor, l.page(), len(l.rows)) }

// selected is the row under the cursor, or the zero T when there is none.
func (l *rowList[T]) selected() T {
	var zero T
	if l.cursor < 0 || l.cursor >= len(l.rows) {
		return zero
	}
	return l.rows[l.cursor]
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
