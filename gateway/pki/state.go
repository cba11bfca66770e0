package pki

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
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
	// Fingerprint is the certificate's SHA-256 (hex): a certificate with
	// this fingerprint is the one issued here, with no signature to check
	// (empty in records written before it was kept).
	Fingerprint string `json:"sha256,omitempty"`
}

// fingerprint is the hex SHA-256 of a certificate's DER.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
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

// writeSnapshotLocked prunes the state, writes it whole to the state file
// atomically and empties the journal, whose records the snapshot now
// holds. The caller holds a.mu for writing (or owns a not yet published
// Authority).
func (a *Authority) writeSnapshotLocked() error {
	a.st.prune(a.now())
	a.indexLocked()
	data, err := json.Marshal(a.st)
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	data = append(data, '\n')
	if err := writeFileAtomic(a.path(stateFile), data, 0o600); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if err := os.Remove(a.path(journalFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("save state: %w", err)
	}
	a.journalLines = 0
	a.snapshotSize = len(a.st.Tokens) + len(a.st.Issued) + len(a.st.Revoked)
	return nil
}

// change names the records one operation changed, by their state keys.
type change struct {
	tokens, issued, revoked []string
}

// persistLocked makes the records of c durable: one line appended to the
// journal and synced, so that the cost of a change does not grow with the
// state. When the journal has grown past the size of the state as last
// written whole (plus compactAfter), the state is written whole instead:
// amortised, still O(1) a change. The caller
// holds a.mu for writing; on error nothing was recorded and the caller
// undoes its change in memory.
func (a *Authority) persistLocked(c change) error {
	if a.journalLines >= compactAfter+a.snapshotSize {
		return a.writeSnapshotLocked()
	}
	rec := &state{Version: stateVersion}
	for _, k := range c.tokens {
		if rec.Tokens == nil {
			rec.Tokens = map[string]*tokenRecord{}
		}
		rec.Tokens[k] = a.st.Tokens[k]
	}
	for _, k := range c.issued {
		if rec.Issued == nil {
			rec.Issued = map[string]*issuedRecord{}
		}
		rec.Issued[k] = a.st.Issued[k]
	}
	for _, k := range c.revoked {
		if rec.Revoked == nil {
			rec.Revoked = map[string]*revokedRecord{}
		}
		rec.Revoked[k] = a.st.Revoked[k]
	}
	line, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	line = append(line, '\n')
	if err := appendSynced(a.path(journalFile), line, a.journalLines == 0); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	a.journalLines++
	return nil
}

// appendSynced appends line to the file at path, creating it (and then
// syncing its directory, when created says so), and syncs it. A failed
// append is cut off again, so that no half record is left behind.
func appendSynced(path string, line []byte, created bool) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	end, err := f.Seek(0, io.SeekEnd)
	if err == nil {
		if _, err = f.Write(line); err == nil {
			err = f.Sync()
		}
		if err != nil {
			_ = f.Truncate(end)
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && created {
		syncDir(filepath.Dir(path))
	}
	return err
}

// compactAfter is how many journal records beyond the state's size make
// the next change write the state whole.
const compactAfter = 1024

// loadJournal applies the journal's records, in order, to st and returns
// how many there were. A last line without its newline is a record whose
// append was cut short (its operation never returned): it is dropped.
func loadJournal(path string, st *state) (int, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("load state: %w", err)
	}
	n := 0
	for len(data) > 0 {
		line, rest, complete := bytes.Cut(data, []byte{'\n'})
		if !complete {
			break
		}
		data = rest
		n++
		rec := &state{}
		if err := json.Unmarshal(line, rec); err != nil {
			return 0, fmt.Errorf("load state %s: corrupt record %d: %w", path, n, err)
		}
		if err := rec.validate(); err != nil {
			return 0, fmt.Errorf("load state %s: corrupt record %d: %w", path, n, err)
		}
		maps.Copy(st.Tokens, rec.Tokens)
		maps.Copy(st.Issued, rec.Issued)
		maps.Copy(st.Revoked, rec.Revoked)
	}
	return n, nil
}

// indexLocked rebuilds the serials-by-device index from the state.
func (a *Authority) indexLocked() {
	a.issuedTo = make(map[string][]string, len(a.st.Issued))
	for k, r := range a.st.Issued {
		a.issuedTo[r.Device] = append(a.issuedTo[r.Device], k)
	}
}

// liveSerialsLocked returns the serials of device's certificates that are
// neither expired nor revoked, from the index. The caller holds a.mu.
func (a *Authority) liveSerialsLocked(device string, now time.Time) []string {
	var out []string
	for _, k := range a.issuedTo[device] {
		if r := a.st.Issued[k]; r != nil && r.Device == device && now.Before(r.NotAfter) && a.st.Revoked[k] == nil {
			out = append(out, k)
		}
	}
	return out
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
	for _, name := range []string{caCertFile, caKeyFile, stateFile, journalFile, ticketsFile} {
		matches, _ := filepath.Glob(filepath.Join(dir, "."+name+".*"+tempSuffix))
		for _, m := range matches {
			_ = os.Remove(m)
		}
	}
}
