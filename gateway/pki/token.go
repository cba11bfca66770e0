package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Enrollment token text: tokenPrefix followed by tokenRandomBytes random
// bytes in unpadded base64url (43 characters).
const (
	tokenPrefix      = "wbt_"
	tokenRandomBytes = 32
)

var tokenLen = len(tokenPrefix) + base64.RawURLEncoding.EncodedLen(tokenRandomBytes)

// CreateToken makes a one-time enrollment token bound to device, valid for
// ttl from now. The token text is "wbt_" followed by 43 base64url characters
// (32 random bytes); only its SHA-256 hash is persisted, so a lost token
// cannot be recovered, only replaced. Several tokens may be outstanding for
// one device.
func (a *Authority) CreateToken(device string, ttl time.Duration) (string, error) {
	if err := ValidDeviceName(device); err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	if ttl <= 0 {
		return "", fmt.Errorf("create token for %s: lifetime %v is not positive", device, ttl)
	}
	var b [tokenRandomBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("create token for %s: %w", device, err)
	}
	token := tokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	h := tokenHash(token)

	if a.tokens != nil {
		now := a.now().UTC()
		rec := TokenRecord{Device: device, Created: now, ExpiresAt: now.Add(ttl)}
		if err := a.tokens.AddToken(h, rec); err != nil {
			return "", fmt.Errorf("create token for %s: %w", device, err)
		}
		return token, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now().UTC()
	a.st.Tokens[h] = &tokenRecord{Device: device, Created: now, ExpiresAt: now.Add(ttl)}
	if err := a.persistLocked(change{tokens: []string{h}}); err != nil {
		delete(a.st.Tokens, h)
		return "", fmt.Errorf("create token for %s: %w", device, err)
	}
	return token, nil
}

// Enroll consumes an enrollment token and signs the CSR (DER) for the
// token's device, as SignDeviceCSR does. It returns the device name and the
// certificate DER.
//
// Token problems are reported first, wrapping ErrTokenUnknown, ErrTokenUsed
// or ErrTokenExpired (each matches ErrTokenInvalid); a token that is both
// used and expired reports ErrTokenUsed. Then CSR problems wrap ErrBadCSR,
// including a common name other than the token's device. The token is
// consumed only when the certificate is issued and persisted, so a device
// may retry with a corrected CSR. Concurrent calls with one token issue at
// most one certificate.
func (a *Authority) Enroll(token string, csrDER []byte) (device string, certDER []byte, err error) {
	if !wellFormedToken(token) {
		return "", nil, fmt.Errorf("enroll: %w", ErrTokenUnknown)
	}
	// The CSR is parsed and its signature verified before taking the lock;
	// its error is reported only once the token has been accepted.
	csr, csrErr := parseCSR(csrDER)
	h := tokenHash(token)
	if a.tokens != nil {
		return a.enrollShared(h, csr, csrErr)
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	rec := a.st.Tokens[h]
	switch {
	case rec == nil:
		return "", nil, fmt.Errorf("enroll: %w", ErrTokenUnknown)
	case !rec.UsedAt.IsZero():
		return "", nil, fmt.Errorf("enroll device %s: %w", rec.Device, ErrTokenUsed)
	}
	now := a.now()
	if !now.Before(rec.ExpiresAt) {
		return "", nil, fmt.Errorf("enroll device %s: %w", rec.Device, ErrTokenExpired)
	}
	if csrErr == nil {
		csrErr = checkCSRName(csr, rec.Device)
	}
	if csrErr != nil {
		return "", nil, fmt.Errorf("enroll device %s: %w", rec.Device, csrErr)
	}
	der, serial, err := a.issueLocked(rec.Device, "", csr.PublicKey)
	if err != nil {
		return "", nil, fmt.Errorf("enroll device %s: %w", rec.Device, err)
	}
	rec.UsedAt = now.UTC()
	if err := a.persistLocked(change{tokens: []string{h}, issued: []string{serial}}); err != nil {
		rec.UsedAt = time.Time{}
		delete(a.st.Issued, serial)
		return "", nil, fmt.Errorf("enroll device %s: %w", rec.Device, err)
	}
	return rec.Device, der, nil
}

// wellFormedToken reports whether token has the shape CreateToken produces.
func wellFormedToken(token string) bool {
	if len(token) != tokenLen || !strings.HasPrefix(token, tokenPrefix) {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(token[len(tokenPrefix):])
	return err == nil && len(b) == tokenRandomBytes
}

// tokenHash is the state key of a token: the hex SHA-256 of its text. Looking
// tokens up by hash also keeps the lookup's timing independent of how much of
// a guessed token is right.
func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// TokenRecord is an enrollment token as a TokenStore keeps it.
type TokenRecord struct {
	Device    string
	UID       string // of the Device, when the store knows it: the certificate is bound to it
	Created   time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // zero while unused
}

// TokenStore keeps enrollment tokens outside an authority's own state
// (Options.Tokens). Tokens are known by the hex SHA-256 of their text;
// the text itself is never given to the store.
type TokenStore interface {
	// AddToken records a new token.
	AddToken(hash string, rec TokenRecord) error
	// Token returns the token's record, or an error wrapping
	// ErrTokenUnknown. device, when not "", is the device the token is
	// most likely for (the CSR's name): where to look first.
	Token(hash, device string) (TokenRecord, error)
	// UseToken marks device's token used at now if it is unused and
	// unexpired, atomically among every user of the store; otherwise it
	// returns an error wrapping ErrTokenUnknown, ErrTokenUsed or
	// ErrTokenExpired.
	UseToken(hash, device string, now time.Time) error
}

// enrollShared is Enroll with the tokens in a TokenStore. The token is
// checked, then the CSR; the token is consumed before the certificate is
// issued, so that two daemons given one token issue at most one
// certificate. A certificate that then cannot be persisted costs the
// token.
func (a *Authority) enrollShared(h string, csr *x509.CertificateRequest, csrErr error) (string, []byte, error) {
	hint := ""
	if csr != nil {
		hint = csr.Subject.CommonName
	}
	rec, err := a.tokens.Token(h, hint)
	if err != nil {
		return "", nil, fmt.Errorf("enroll: %w", err)
	}
	now := a.now()
	switch {
	case !rec.UsedAt.IsZero():
		return "", nil, fmt.Errorf("enroll device %s: %w", rec.Device, ErrTokenUsed)
	case !now.Before(rec.ExpiresAt):
		return "", nil, fmt.Errorf("enroll device %s: %w", rec.Device, ErrTokenExpired)
	}
	if csrErr == nil {
		csrErr = checkCSRName(csr, rec.Device)
	}
	if csrErr != nil {
		return "", nil, fmt.Errorf("enroll device %s: %w", rec.Device, csrErr)
	}
	if err := a.tokens.UseToken(h, rec.Device, now.UTC()); err != nil {
		return "", nil, fmt.Errorf("enroll device %s: %w", rec.Device, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	der, serial, err := a.issueLocked(rec.Device, rec.UID, csr.PublicKey)
	if err != nil {
		return "", nil, fmt.Errorf("enroll device %s: %w", rec.Device, err)
	}
	if err := a.persistLocked(change{issued: []string{serial}}); err != nil {
		delete(a.st.Issued, serial)
		return "", nil, fmt.Errorf("enroll device %s: %w", rec.Device, err)
	}
	return rec.Device, der, nil
}
