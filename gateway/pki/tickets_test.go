package pki_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"wasmbed.io/wasmbed/gateway/pki"
)

// TestTicketKeys: session ticket keys survive a reopen, a new one comes a
// day after the last, a key is dropped once no ticket can need it, and a
// damaged file is replaced rather than refused.
func TestTicketKeys(t *testing.T) {
	dir := t.TempDir()
	clk := newClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	keys := func(a *pki.Authority) [][32]byte {
		t.Helper()
		k, err := a.TicketKeys()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	first := keys(open(t, dir, pki.Options{Now: clk.Now}))
	if len(first) != 1 {
		t.Fatalf("a new authority has %d ticket keys, want 1", len(first))
	}
	if info, err := os.Stat(filepath.Join(dir, "tickets.json")); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("tickets.json: %v, %v; want mode 0600", info, err)
	}

	a := open(t, dir, pki.Options{Now: clk.Now})
	if again := keys(a); len(again) != 1 || again[0] != first[0] {
		t.Fatal("a reopened authority made a new ticket key: tickets would not survive a restart")
	}
	clk.Advance(23 * time.Hour)
	if k := keys(a); len(k) != 1 {
		t.Fatalf("%d keys after 23 h, want 1", len(k))
	}
	clk.Advance(time.Hour)
	rotated := keys(a)
	if len(rotated) != 2 || rotated[1] != first[0] || rotated[0] == first[0] {
		t.Fatal("after a day the newest key is not new, or the old one is not kept to decrypt")
	}
	clk.Advance(7*24*time.Hour + time.Minute) // the first key is over 8 days old
	k := keys(a)
	if len(k) != 2 || k[1] != rotated[0] {
		t.Fatalf("after 8 days: %d keys; want the first dropped and the second kept", len(k))
	}

	if err := os.WriteFile(filepath.Join(dir, "tickets.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if k := keys(open(t, dir, pki.Options{Now: clk.Now})); len(k) != 1 {
		t.Fatalf("a damaged tickets.json gave %d keys, want a fresh one", len(k))
	}
}
