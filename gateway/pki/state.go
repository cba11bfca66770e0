package pki

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// stateVersion is the format version of state.json.
const stateVersion = 1

// pruneGrace is how long expired tokens and revocations of expired
// certificates are kept, so that a late attempt still gets a precise answer
// (ErrTokenExpired rather than ErrTokenUnknown) and clock skew between the
// authority and its gateways cannot resurrect a revoked certificate.
const pruneGrace = 24 * time.Hour

// state is the persisted content of state.json. Map keys are stable so the
// file is deterministic: token hashes and serial numbers in lower-case hex.
type state struct {
	Version int `json:"version"`
	// Tokens maps the hex SHA-256 of a token's text to its record; the
	// token text itself is never stored.
	Tokens map[string]*tokenRecord `json:"tokens"`
	// Issued maps the serial of every unexpired device certificate to its
	// record. Server certificates are not recorded.
	Issued map[string]*issuedRecord `json:"issued"`
	// Revoked maps revoked serials to their record.
	Revoked map[string]*revokedRecord `json:"revoked"`
}

type tokenRecord struct {
	Device    string    `json:"device"`
	Created   time.Time `json:"created"`
	ExpiresAt time.Time `json:"expires_at"`
	UsedAt    time.Time `json:"used_at,omitzero"`
}

type issuedRecord struct {
	Device   string    `json:"device"`
	NotAfter time.Time `json:"not_after"`
}

type revokedRecord struct {
	RevokedAt time.Time `json:"revoked_at"`
	// Device and NotAfter are known when the serial was issued by this
	// authority and still recorded; a revocation without NotAfter is
	// kept forever.
	Device   string    `json:"device,omitempty"`
	NotAfter time.Time `json:"not_after,omitzero"`
}

func newState() *state {
	return &state{
		Version: stateVersion,
		Tokens:  map[string]*tokenRecord{},
		Issued:  map[string]*issuedRecord{},
		Revoked: map[string]*revokedRecord{},
	}
}

func (s *state) empty() bool {
	return len(s.Tokens) == 0 && len(s.Issued) == 0 && len(s.Revoked) == 0
}

// serialKey is the state's spelling of a serial number.
func serialKey(serial *big.Int) string {
	return serial.Text(16)
}

// loadState reads the state file; a missing file reports exists == false.
func loadState(path string) (st *state, exists bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("load state: %w", err)
	}
	st = &state{}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, true, fmt.Errorf("load state %s: corrupt file: %w", path, err)
	}
	if err := st.validate(); err != nil {
		return nil, true, fmt.Errorf("load state %s: corrupt file: %w", path, err)
	}
	return st, true, nil
}

// validate checks a decoded state and fills in missing maps.
func (s *state) validate() error {
	if s.Version != stateVersion {
		return fmt.Errorf("version %d, want %d", s.Version, stateVersion)
	}
	if s.Tokens == nil {
		s.Tokens = map[string]*tokenRecord{}
	}
	if s.Issued == nil {
		s.Issued = map[string]*issuedRecord{}
	}
	if s.Revoked == nil {
		s.Revoked = map[string]*revokedRecord{}
	}
	for h, t := range s.Tokens {
		if b, err := hex.DecodeString(h); err != nil || len(b) != 32 || h != strings.ToLower(h) {
			return fmt.Errorf("token key %q is not a hex SHA-256", h)
		}
		if t == nil {
			return fmt.Errorf("token %s: null record", h)
		}
		if err := ValidDeviceName(t.Device); err != nil {
			return fmt.Errorf("token %s: %w", h, err)
		}
	}
	for k, r := range s.Issued {
		if err := validSerialKey(k); err != nil {
			return fmt.Errorf("issued certificate: %w", err)
		}
		if r == nil {
			return fmt.Errorf("issued certificate %s: null record", k)
		}
		if err := ValidDeviceName(r.Device); err != nil {
			return fmt.Errorf("issued certificate %s: %w", k, err)
		}
	}
	for k, r := range s.Revoked {
		if err := validSerialKey(k); err != nil {
			return fmt.Errorf("revocation: %w", err)
		}
		if r == nil {
			return fmt.Errorf("revocation %s: null record", k)
		}
	}
	return nil
}

func validSerialKey(k string) error {
	n, ok := new(big.Int).SetString(k, 16)
	if !ok || n.Sign() <= 0 || serialKey(n) != k {
		return fmt.Errorf("serial %q is not a positive lower-case hex number", k)
	}
	return nil
}

// prune drops what can no longer matter: tokens a day past expiry, records
// of expired certificates, and revocations of certificates a day past
// expiry (those fail chain verification and CheckDevice on their own).
func (s *state) prune(now time.Time) {
	for h, t := range s.Tokens {
		if now.Sub(t.ExpiresAt) > pruneGrace {
			delete(s.Tokens, h)
		}
	}
	for k, r := range s.Issued {
		if now.After(r.NotAfter) {
			delete(s.Issued, k)
		}
	}
	for k, r := range s.Revoked {
		if !r.NotAfter.IsZero() && now.Sub(r.NotAfter) > pruneGrace {
			delete(s.Revoked, k)
		}
	}
}

// saveLocked prunes the state and writes it atomically. The caller holds a.mu
// for writing (or owns a not yet published Authority).
func (a *Authority) saveLocked() error {
	a.st.prune(a.now())
	data, err := json.Marshal(a.st) // compact: the file is rewritten on every change
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	data = append(data, '\n')
	if err := writeFileAtomic(a.path(stateFile), data, 0o600); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}

// tempSuffix ends the names of temporary files so that removeStaleTemps finds
// the ones a crash left behind.
const tempSuffix = ".tmp"

// writeFileAtomic replaces path with data: it writes a temporary file in the
// same directory, syncs it and renames it over path, so readers and crashes
// see either the old or the new content.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*"+tempSuffix)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

// syncDir makes a rename durable where the platform allows it. Directory
// sync is unsupported on some systems (Windows), and the rename has already
// happened, so a failure here is not reported.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}

// removeStaleTemps deletes temporary files left by an interrupted
// writeFileAtomic. Failures only leave litter behind and are ignored.
func removeStaleTemps(dir string) {
	for _, name := range []string{caCertFile, caKeyFile, stateFile} {
		matches, _ := filepath.Glob(filepath.Join(dir, "."+name+".*"+tempSuffix))
		for _, m := range matches {
			_ = os.Remove(m)
		}
	}
}
