package pki

import (
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"
)

func TestSavePrunes(t *testing.T) {
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
	a, err := Open(dir, Options{Now: clock, DeviceCertTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}

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

	// Just under a day past expiry: the token and the revocation stay, the
	// issued record of the expired certificate goes.
	advance(24 * time.Hour)
	if _, err := a.CreateToken("fresh", 48*time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := counts(a); got != [3]int{2, 0, 2} {
		t.Errorf("after one day: tokens, issued, revoked = %v, want [2 0 2]", got)
	}

	advance(2 * time.Hour)
	if _, _, err := a.ProvisionDevice("fresh"); err != nil {
		t.Fatal(err)
	}
	if got := counts(a); got != [3]int{1, 1, 1} {
		t.Errorf("after 26 hours: tokens, issued, revoked = %v, want [1 1 1]", got)
	}
	if !a.Revoked(unknown) {
		t.Error("revocation of an unrecorded serial was pruned")
	}

	b, err := Open(dir, Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if got := counts(b); got != [3]int{1, 1, 1} {
		t.Errorf("after reopen: tokens, issued, revoked = %v, want [1 1 1]", got)
	}
}

func counts(a *Authority) [3]int {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return [3]int{len(a.st.Tokens), len(a.st.Issued), len(a.st.Revoked)}
}

// BenchmarkSaveState measures one state rewrite (prune, encode, write, sync,
// rename) as the number of recorded certificates grows: every change to the
// authority pays it once.
func BenchmarkSaveState(b *testing.B) {
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
			for b.Loop() {
				if err := a.saveLocked(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
