package pki

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCompactionPrunes: records that can no longer matter are dropped
// when the journal is folded into the state file (here, at each Open),
// and what is left survives the fold.
func TestCompactionPrunes(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	advance := func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(d)
	}
	dir := t.TempDir()
	reopen := func() *Authority {
		t.Helper()
		a, err := Open(dir, Options{Now: clock, DeviceCertTTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := reopen()
	if _, err := a.CreateToken("old", time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.ProvisionDevice("old"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.RevokeDevice("old"); err != nil {
		t.Fatal(err)
	}
	unknown := big.NewInt(777)
	if err := a.RevokeSerial(unknown); err != nil {
		t.Fatal(err)
	}
	if got := counts(reopen()); got != [3]int{1, 1, 2} {
		t.Errorf("after reopen: tokens, issued, revoked = %v, want [1 1 2]", got)
	}

	// Just under a day past expiry: the token and the revocation stay, the
	// issued record of the expired certificate goes.
	advance(24 * time.Hour)
	if _, err := reopen().CreateToken("fresh", 48*time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := counts(reopen()); got != [3]int{2, 0, 2} {
		t.Errorf("after one day: tokens, issued, revoked = %v, want [2 0 2]", got)
	}

	advance(2 * time.Hour)
	if _, _, err := reopen().ProvisionDevice("fresh"); err != nil {
		t.Fatal(err)
	}
	b := reopen()
	if got := counts(b); got != [3]int{1, 1, 1} {
		t.Errorf("after 26 hours: tokens, issued, revoked = %v, want [1 1 1]", got)
	}
	if !b.Revoked(unknown) {
		t.Error("revocation of an unrecorded serial was pruned")
	}
}

// TestJournal: each change is one appended record, a torn last record
// (an append cut short) is dropped, a damaged record in the middle is
// refused with the file named, and a journal that outgrows the state is
// folded into it.
func TestJournal(t *testing.T) {
	dir := t.TempDir()
	a, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, _, err := a.ProvisionDevice(fmt.Sprintf("dev-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	journal := filepath.Join(dir, journalFile)
	data, err := os.ReadFile(journal)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(data, []byte("\n")); n != 3 {
		t.Errorf("journal holds %d records after 3 certificates, want 3", n)
	}

	// Torn: the last record lost its end.
	if err := os.WriteFile(journal, append(data, []byte(`{"version":1,"issued":{"ab`)...), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open with a torn last record = %v", err)
	}
	if !b.Enrolled("dev-2") {
		t.Error("dev-2's certificate was lost with the torn record after it")
	}
	if _, err := os.Stat(journal); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open left the journal behind (%v): it folds it into %s", err, stateFile)
	}

	// Damaged in the middle.
	if _, _, err := b.ProvisionDevice("dev-3"); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(journal)
	if err := os.WriteFile(journal, append([]byte("{not json\n"), good...), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), journalFile) {
		t.Errorf("Open with a damaged record = %v, want an error naming %s", err, journalFile)
	}
	if err := os.WriteFile(journal, good, 0o600); err != nil {
		t.Fatal(err)
	}

	// Outgrown: the state is written whole and the journal starts again.
	c, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range compactAfter + 10 {
		if _, err := c.CreateToken("dev-0", time.Hour); err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
	}
	data, _ = os.ReadFile(journal)
	if n := bytes.Count(data, []byte("\n")); n >= compactAfter {
		t.Errorf("journal holds %d records: never folded", n)
	}
	d, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := counts(d); got[0] != compactAfter+10 || got[1] != 4 {
		t.Errorf("after the fold: tokens, issued = %d, %d, want %d, 4", got[0], got[1], compactAfter+10)
	}
}

func counts(a *Authority) [3]int {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return [3]int{len(a.st.Tokens), len(a.st.Issued), len(a.st.Revoked)}
}

// BenchmarkRecordCertificate measures recording one issued certificate
// (a journal record, appended and synced) as the number already recorded
// grows: every enrollment pays it once, and it does not grow with the
// fleet. The amortised rewrite of the whole state is included.
func BenchmarkRecordCertificate(b *testing.B) {
	for _, n := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("issued=%d", n), func(b *testing.B) {
			a, err := Open(b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			notAfter := time.Now().Add(time.Hour)
			for i := range n {
				a.st.Issued[serialKey(big.NewInt(int64(i+1)))] = &issuedRecord{Device: "bench-dev", NotAfter: notAfter}
			}
			a.mu.Lock()
			defer a.mu.Unlock()
			i := n
			for b.Loop() {
				i++
				k := serialKey(big.NewInt(int64(i)))
				a.st.Issued[k] = &issuedRecord{Device: "bench-dev", NotAfter: notAfter}
				if err := a.persistLocked(change{issued: []string{k}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
