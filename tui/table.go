package tui

import "fmt"

// resourceTable is the part every table of one kind of resource shares:
// its rows (those the filter passes, in order, the cursor kept on its
// object), the filter, the columns laid out for the width, and the cache
// revision the rows were built from. Views embed it and add their keys,
// actions and row rendering.
type resourceTable[T named] struct {
	rowList[T]
	title   string // "Devices"
	columns []column
	objs    func() map[string]T
	rev     func() uint64
	match   func(filter, T) bool
	compare func(a, b T) int

	width   int
	cols    []column
	filter  filter
	builtAt uint64 // cache revision of rows
	dirty   bool   // filter or order changed since
}

func newResourceTable[T named](title string, columns []column, c *cache, objs func(*cache) map[string]T, match func(filter, T) bool) resourceTable[T] {
	return resourceTable[T]{
		rowList: newRowList[T](1), title: title, columns: columns,
		objs: func() map[string]T { return objs(c) }, rev: func() uint64 { return c.rev },
		match: match, compare: byName[T], dirty: true,
	}
}

func (t *resourceTable[T]) SetSize(w, h int) {
	t.width = w
	t.cols = layoutColumns(t.columns, w)
	t.setHeight(h)
}

func (t *resourceTable[T]) Title() string {
	total := len(t.objs())
	if t.filter.empty() {
		return fmt.Sprintf("%s (%d)", t.title, total)
	}
	return fmt.Sprintf("%s (%d/%d) /%s", t.title, len(t.rows), total, t.filter.raw)
}

func (t *resourceTable[T]) Filter() string { return t.filter.raw }

func (t *resourceTable[T]) SetFilter(s string) {
	t.filter = parseFilter(s)
	t.resort()
}

// resort rebuilds the rows now, after the filter or the order changed.
func (t *resourceTable[T]) resort() {
	t.dirty = true
	t.Sync()
}

// Sync rebuilds the rows when the cache, the filter or the order changed.
func (t *resourceTable[T]) Sync() {
	rev := t.rev()
	if !t.dirty && t.builtAt == rev {
		return
	}
	t.builtAt, t.dirty = rev, false
	match := func(o T) bool { return t.match(t.filter, o) }
	syncNamed(&t.rowList, t.objs(), match, t.compare)
}
