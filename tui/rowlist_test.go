package tui

import (
	"fmt"
	"strings"
	"testing"

	"wasmbed.io/wasmbed/daemon/api"
)

// TestRowList moves, pages and scrolls a list of 50 rows under one line
// of titles in a view of 11 lines: 10 rows on screen.
func TestRowList(t *testing.T) {
	l := newRowList[int](1)
	rows := make([]int, 50)
	for i := range rows {
		rows[i] = i
	}
	l.settle(rows, nil)
	l.setHeight(11)
	for _, tc := range []struct {
		key            string
		cursor, offset int
	}{
		{"j", 1, 0},
		{"down", 2, 0},
		{"pgdown", 12, 3},
		{"ctrl+f", 22, 13},
		{"k", 21, 13},
		{"G", 49, 40},
		{"pgup", 39, 39},
		{"g", 0, 0},
		{"up", 0, 0}, // stays on the first row
		{"end", 49, 40},
		{"down", 49, 40}, // and on the last
		{"home", 0, 0},
	} {
		if !l.moveBy(tc.key) {
			t.Fatalf("moveBy(%q) = false, want true", tc.key)
		}
		if l.cursor != tc.cursor || l.offset != tc.offset {
			t.Errorf("after %q: cursor %d offset %d, want %d %d", tc.key, l.cursor, l.offset, tc.cursor, tc.offset)
		}
	}
	if l.moveBy("x") {
		t.Error("moveBy(x) = true: x is no navigation key")
	}
	if start, end := l.visible(); start != 0 || end != 10 {
		t.Errorf("visible = [%d, %d), want [0, 10)", start, end)
	}

	// The cursor follows its row when rows come and go, and stays within
	// them otherwise.
	l.moveBy("G")
	l.settle(rows[10:20], func(r int) bool { return r == 15 })
	if r, ok := l.selected(); !ok || r != 15 || l.offset != 0 {
		t.Errorf("after settle: row %d (%v) offset %d, want 15 at offset 0", r, ok, l.offset)
	}
	l.settle(rows[:3], func(r int) bool { return r == 42 })
	if r, ok := l.selected(); !ok || r != 2 {
		t.Errorf("after shrinking: row %d (%v), want the last, 2", r, ok)
	}
	l.settle(rows[:0], nil)
	if _, ok := l.selected(); ok || l.cursor != 0 {
		t.Errorf("empty list: selected %v, cursor %d", ok, l.cursor)
	}

	// Without titles every line is a row; a view too small shows none.
	tree := newRowList[int](0)
	tree.settle(rows, nil)
	tree.setHeight(5)
	tree.toBottom()
	if start, end := tree.visible(); start != 45 || end != 50 || !tree.atBottom() {
		t.Errorf("tree at the bottom: visible [%d, %d), want [45, 50)", start, end)
	}
	l.settle(rows, nil)
	l.setHeight(1)
	if start, end := l.visible(); start != end {
		t.Errorf("a view of one line shows rows [%d, %d)", start, end)
	}
}

// TestEventsFollow checks the events view's following on the shared row
// list: it stays on the newest event as events come, stops when the
// cursor moves up, and follows again from the bottom or with f.
func TestEventsFollow(t *testing.T) {
	m := bigFleet(t, 0)
	c := m.sh.cache
	seq := uint64(0)
	add := func(n int) {
		for range n {
			seq++
			c.apply(api.Event{Seq: seq, Type: api.EventOnline, Device: fmt.Sprintf("dev-%03d", seq)})
		}
		m.refresh()
	}
	add(30)
	m.Update(jumpMsg{name: "events"})
	v := m.active().(*eventsView)
	page := v.page()
	if r, _ := v.selected(); !v.follow || r.Seq != 30 || v.offset != 30-page {
		t.Fatalf("following: cursor on %d, offset %d; want 30 at %d", r.Seq, v.offset, 30-page)
	}
	add(5)
	if r, _ := v.selected(); r.Seq != 35 {
		t.Errorf("following, new events: cursor on %d, want 35", r.Seq)
	}
	m.Update(press("k"))
	add(5)
	if r, _ := v.selected(); v.follow || r.Seq != 34 {
		t.Errorf("after k: follow %v, cursor on %d; want off, on 34", v.follow, r.Seq)
	}
	if screen := m.View(); !strings.Contains(screen, "\n> ") || strings.Contains(screen, "following") {
		t.Errorf("not following, the cursor shows and the title says nothing:\n%s", screen)
	}
	m.Update(press("f"))
	if r, _ := v.selected(); !v.follow || r.Seq != 40 {
		t.Errorf("after f: follow %v, cursor on %d; want on, on 40", v.follow, r.Seq)
	}
	m.Update(press("g"))
	m.Update(press("G"))
	add(1)
	if r, _ := v.selected(); !v.follow || r.Seq != 41 {
		t.Errorf("after g G: follow %v, cursor on %d; want on, on 41", v.follow, r.Seq)
	}
}

// TestTopologyCursor moves over the tree's lines, which have no titles
// above them, folds a gateway, and opens the device of a device's line.
func TestTopologyCursor(t *testing.T) {
	m := bigFleet(t, 3)
	m.Update(jumpMsg{name: "topology"})
	v := m.active().(*topologyView)
	if len(v.rows) < 4 || v.page() != v.height {
		t.Fatalf("topology: %d lines, page %d of height %d", len(v.rows), v.page(), v.height)
	}
	all := len(v.rows)
	// enter (or space) on a gateway's line folds it and unfolds it.
	if _, cmd := v.Update(press("enter")); cmd != nil || len(v.rows) >= all || v.rows[0].node == "" {
		t.Errorf("enter on a gateway's line: %d of %d lines shown, command %v; want it folded", len(v.rows), all, cmd)
	}
	v.Update(press(" "))
	if len(v.rows) != all {
		t.Errorf("space on the folded gateway: %d lines, want all %d", len(v.rows), all)
	}
	v.Update(press("j"))
	_, cmd := v.Update(press("enter"))
	if cmd == nil {
		t.Fatal("enter on a device's line opens nothing")
	}
	if p, ok := cmd().(pushMsg); !ok || p.v.Title() != "Device "+v.rows[1].device {
		t.Errorf("enter opened %#v, want the device %s", cmd(), v.rows[1].device)
	}
}
