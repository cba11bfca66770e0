package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"
)

// RevokeSerial revokes the certificate with the given serial and persists
// the revocation. Revoking a serial twice is not an error. A serial this
// authority has no record of is revoked too and kept forever; a recorded
// one is forgotten a day after its certificate expires.
func (a *Authority) RevokeSerial(serial *big.Int) error {
	if serial == nil || serial.Sign() <= 0 {
		return errors.New("revoke certificate: serial must be a positive number")
	}
	key := serialKey(serial)

	a.mu.Lock()
	defer a.mu.Unlock()
	if a.st.Revoked[key] != nil {
		return nil
	}
	a.revokeLocked(key, a.now())
	if err := a.persistLocked(change{revoked: []string{key}}); err != nil {
		delete(a.st.Revoked, key)
		return fmt.Errorf("revoke certificate %s: %w", key, err)
	}
	return nil
}

// RevokeDevice revokes every unexpired certificate issued to the device called
// name, whether enrolled, renewed or pre-provisioned, and persists the
// revocations. It
// returns the serials it newly revoked in increasing order: none when the
// device has no unexpired certificates or they are all revoked already.
// Certificates issued to the device later are not affected.
func (a *Authority) RevokeDevice(name string) ([]*big.Int, error) {
	if err := ValidDeviceName(name); err != nil {
		return nil, fmt.Errorf("revoke device: %w", err)
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	keys := a.liveSerialsLocked(name, now)
	if len(keys) == 0 {
		return nil, nil
	}
	for _, k := range keys {
		a.revokeLocked(k, now)
	}
	if err := a.persistLocked(change{revoked: keys}); err != nil {
		for _, k := range keys {
			delete(a.st.Revoked, k)
		}
		return nil, fmt.Errorf("revoke device %s: %w", name, err)
	}
	serials := make([]*big.Int, len(keys))
	for i, k := range keys {
		serials[i], _ = new(big.Int).SetString(k, 16)
	}
	slices.SortFunc(serials, (*big.Int).Cmp)
	return serials, nil
}

// revokeLocked records the revocation of serial key. The caller holds a.mu
// for writing and saves the state.
func (a *Authority) revokeLocked(key string, now time.Time) {
	rec := &revokedRecord{RevokedAt: now.UTC()}
	if iss := a.st.Issued[key]; iss != nil {
		rec.Device, rec.NotAfter = iss.Device, iss.NotAfter
	}
	a.st.Revoked[key] = rec
}

// Revoked reports whether the certificate with the given serial is revoked.
// A nil serial is not revoked.
func (a *Authority) Revoked(serial *big.Int) bool {
	if serial == nil {
		return false
	}
	key := serialKey(serial)
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.st.Revoked[key] != nil
}

// CheckDevice validates the leaf of a client certificate chain the TLS stack
// has already verified, for use by the gateway (for example from
// tls.Config.VerifyConnection), and returns the device name. It checks that
// the leaf was signed by this CA (so a gateway trusting more roots cannot be
// misled: a certificate recorded as issued here is recognised by its
// fingerprint, which costs a hash instead of a signature check, so that a
// fleet reconnecting at once does not pay for signatures twice), is not
// revoked (the error wraps ErrRevoked), is within its
// validity period by the authority's clock, carries ExtKeyUsageClientAuth,
// and has a common name that is a valid device name.
func (a *Authority) CheckDevice(leaf *x509.Certificate) (string, error) {
	if leaf == nil {
		return "", errors.New("check device certificate: no certificate")
	}
	key := serialKey(leaf.SerialNumber)
	a.mu.RLock()
	issued, revoked := a.st.Issued[key], a.st.Revoked[key] != nil
	a.mu.RUnlock()
	if issued == nil || issued.Fingerprint == "" || issued.Fingerprint != fingerprint(leaf.Raw) {
		if err := leaf.CheckSignatureFrom(a.ca); err != nil {
			return "", fmt.Errorf("check device certificate: not issued by this authority: %w", err)
		}
	}
	if revoked {
		return "", fmt.Errorf("check device certificate %s: %w", key, ErrRevoked)
	}
	if now := a.now(); now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return "", fmt.Errorf("check device certificate %s: valid from %s to %s, not at %s",
			serialKey(leaf.SerialNumber), leaf.NotBefore.Format(time.RFC3339), leaf.NotAfter.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return "", fmt.Errorf("check device certificate %s: not a client certificate (no client authentication usage)", serialKey(leaf.SerialNumber))
	}
	name := leaf.Subject.CommonName
	if name == "" {
		return "", fmt.Errorf("check device certificate %s: empty common name", serialKey(leaf.SerialNumber))
	}
	if err := ValidDeviceName(name); err != nil {
		return "", fmt.Errorf("check device certificate %s: %w", serialKey(leaf.SerialNumber), err)
	}
	return name, nil
}

// IssuedCount is the number of device certificates recorded as issued
// here and not yet pruned (expired a while ago).
func (a *Authority) IssuedCount() int {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return len(a.st.Issued)
}

// Enrolled reports whether device holds a certificate of this authority
// that is neither expired nor revoked.
func (a *Authority) Enrolled(device string) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return len(a.liveSerialsLocked(device, a.now())) > 0
}
