// Package pki owns the Wasmbed certificate authority: device and gateway
// certificates, one-time enrollment tokens and revocation, persisted in a
// directory.
//
// The directory holds five files:
//
//   - ca.crt: the self-signed ECDSA P-256 CA certificate (PEM, mode 0644);
//   - ca.key: its private key (PEM, PKCS#8, mode 0600);
//   - state.json: enrollment token hashes, issued device certificates and
//     revocations (JSON, mode 0600), as of its last compaction;
//   - state.journal: the records changed since, one JSON line per change
//     (mode 0600), each appended and synced before the change returns, so
//     that recording a certificate costs the same whatever the number
//     issued. Open folds the journal into state.json, and so does a change
//     once the journal has outgrown the state;
//   - tickets.json: the keys that encrypt TLS session tickets (mode 0600),
//     so that devices resume their sessions after a restart (TicketKeys).
//
// Devices authenticate to the gateway with client certificates issued here,
// either pre-provisioned (ProvisionDevice) or obtained by enrolling with a
// one-time token (CreateToken, Enroll). Gateways present server certificates
// from ServerCertificate and check every device certificate with CheckDevice.
//
// One directory must be opened by one Authority at a time: the state file is
// not locked against other processes.
package pki

import (
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// DefaultDeviceCertTTL is the validity of device certificates when
// Options.DeviceCertTTL is zero.
const DefaultDeviceCertTTL = 30 * 24 * time.Hour

// Validity periods and the backdating applied to every certificate so that a
// device whose clock is slightly behind still accepts it.
const (
	caCertTTL     = 10 * 365 * 24 * time.Hour
	serverCertTTL = 365 * 24 * time.Hour
	backdate      = time.Minute
)

// File names inside the authority directory.
const (
	caCertFile  = "ca.crt"
	caKeyFile   = "ca.key"
	stateFile   = "state.json"
	journalFile = "state.journal"
)

// ErrTokenInvalid matches every enrollment token rejection: ErrTokenUnknown,
// ErrTokenUsed and ErrTokenExpired all satisfy errors.Is(err, ErrTokenInvalid).
var ErrTokenInvalid = errors.New("enrollment token rejected")

// Enrollment token rejections, returned (wrapped) by Enroll.
var (
	// ErrTokenUnknown means the token was never issued, is malformed, or
	// was pruned from the state a day after it expired.
	ErrTokenUnknown = fmt.Errorf("%w: unknown token", ErrTokenInvalid)
	// ErrTokenUsed means the token already enrolled a device.
	ErrTokenUsed = fmt.Errorf("%w: token already used", ErrTokenInvalid)
	// ErrTokenExpired means the token's validity period has ended.
	ErrTokenExpired = fmt.Errorf("%w: token expired", ErrTokenInvalid)
)

// ErrBadCSR is wrapped by every rejection of a certificate signing request:
// malformed DER, a signature that does not verify, an unsupported public key
// or a common name that is not the expected device name. The wrapping error
// says which.
var ErrBadCSR = errors.New("bad certificate signing request")

// ErrRevoked is returned (wrapped) by CheckDevice for a revoked certificate.
var ErrRevoked = errors.New("certificate revoked")

// Options configures an Authority. The zero value is ready to use.
type Options struct {
	// Now is the clock used for validity periods, token expiry and
	// pruning; nil means time.Now. It must be safe for concurrent use.
	Now func() time.Time
	// DeviceCertTTL is the validity of device certificates; 0 means
	// DefaultDeviceCertTTL. Negative values are rejected by Open.
	DeviceCertTTL time.Duration
	// CADir, when set, holds the CA (ca.crt and ca.key) apart from the
	// state, read-only: a Kubernetes Secret mounted into every daemon of a
	// cluster, so that all of them issue and accept the same device
	// certificates. Open never creates a CA there; tokens, issued
	// certificates and revocations stay in dir, one state per daemon.
	CADir string
	// Tokens, when set, keeps enrollment tokens in place of the state in
	// dir: a store the daemons of a cluster share, so that a token one of
	// them issued enrolls the device at any of them.
	Tokens TokenStore
}

// Authority is the Wasmbed certificate authority backed by a directory.
// All methods are safe for concurrent use. Changes to tokens, issued
// certificates and revocations are persisted before the method returns; a
// method that cannot persist its change returns an error and leaves the
// authority as it was.
type Authority struct {
	dir   string
	clock func() time.Time
	ttl   time.Duration

	// Immutable after Open.
	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
	caPEM []byte
	pool  *x509.CertPool

	tokens TokenStore // nil: tokens are in st

	mu           sync.RWMutex
	st           *state              // guarded by mu
	issuedTo     map[string][]string // serials issued to each device (some maybe pruned); guarded by mu
	journalLines int                 // records in the journal; guarded by mu
	snapshotSize int                 // records in the state file when last written; guarded by mu

	ticketMu sync.Mutex
	tickets  []ticketKey // newest first; guarded by ticketMu
}

// Open loads the authority from dir, creating it on first use: an ECDSA
// P-256 CA (self-signed, valid 10 years, common name "Wasmbed CA") written
// as ca.crt and ca.key, and an empty state file.
//
// Open refuses a directory where only one of ca.crt and ca.key exists, where
// the state file is missing next to an existing CA (its revocations would be
// lost silently), or where any file is corrupt; the error names the file.
func Open(dir string, opt Options) (*Authority, error) {
	if dir == "" {
		return nil, errors.New("open pki: empty directory path")
	}
	if opt.DeviceCertTTL < 0 {
		return nil, fmt.Errorf("open pki %s: negative device certificate lifetime %v", dir, opt.DeviceCertTTL)
	}
	a := &Authority{dir: dir, clock: opt.Now, ttl: opt.DeviceCertTTL, tokens: opt.Tokens}
	if a.clock == nil {
		a.clock = time.Now
	}
	if a.ttl == 0 {
		a.ttl = DefaultDeviceCertTTL
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open pki: %w", err)
	}
	removeStaleTemps(dir)

	if opt.CADir != "" {
		return a.openExternal(opt.CADir)
	}
	certPath, keyPath := a.path(caCertFile), a.path(caKeyFile)
	certExists, err := fileExists(certPath)
	if err != nil {
		return nil, fmt.Errorf("open pki: %w", err)
	}
	keyExists, err := fileExists(keyPath)
	if err != nil {
		return nil, fmt.Errorf("open pki: %w", err)
	}
	st, stExists, err := a.loadState()
	if err != nil {
		return nil, fmt.Errorf("open pki: %w", err)
	}

	switch {
	case certExists && keyExists:
		if !stExists {
			return nil, fmt.Errorf("open pki: %s is missing while the CA exists; restore it from a backup (revocations would otherwise be lost)", a.path(stateFile))
		}
		if err := a.loadCA(certPath, keyPath); err != nil {
			return nil, fmt.Errorf("open pki: %w", err)
		}
	case !certExists && !keyExists:
		if stExists && !st.empty() {
			return nil, fmt.Errorf("open pki: %s holds records but %s and %s are missing", a.path(stateFile), caCertFile, caKeyFile)
		}
		// The state file is written first so that a crash part-way leaves
		// either an empty state without a CA, which the next Open
		// completes, or a complete authority.
		st = newState()
		a.st = st
		if err := a.writeSnapshotLocked(); err != nil {
			return nil, fmt.Errorf("open pki: %w", err)
		}
		if err := a.createCA(certPath, keyPath); err != nil {
			return nil, fmt.Errorf("open pki: %w", err)
		}
	case certExists:
		return nil, fmt.Errorf("open pki: %s exists but %s is missing", certPath, keyPath)
	default:
		return nil, fmt.Errorf("open pki: %s exists but %s is missing", keyPath, certPath)
	}
	a.st = st
	if err := a.compact(); err != nil {
		return nil, fmt.Errorf("open pki: %w", err)
	}
	a.pool = x509.NewCertPool()
	a.pool.AddCert(a.ca)
	return a, nil
}

// loadState reads the state file and applies the journal to it; a missing
// state file reports exists == false.
func (a *Authority) loadState() (st *state, exists bool, err error) {
	st, exists, err = loadState(a.path(stateFile))
	if err != nil || !exists {
		return st, exists, err
	}
	if a.journalLines, err = loadJournal(a.path(journalFile), st); err != nil {
		return nil, true, err
	}
	return st, true, nil
}

// compact folds a journal left by the last run into the state file, and
// indexes the state.
func (a *Authority) compact() error {
	if a.journalLines > 0 {
		return a.writeSnapshotLocked()
	}
	a.indexLocked()
	a.snapshotSize = len(a.st.Tokens) + len(a.st.Issued) + len(a.st.Revoked)
	return nil
}

// openExternal loads the CA from caDir and the state from a.dir, starting
// an empty state on first use.
func (a *Authority) openExternal(caDir string) (*Authority, error) {
	if err := a.loadCA(filepath.Join(caDir, caCertFile), filepath.Join(caDir, caKeyFile)); err != nil {
		return nil, fmt.Errorf("open pki: %w", err)
	}
	st, exists, err := a.loadState()
	if err != nil {
		return nil, fmt.Errorf("open pki: %w", err)
	}
	a.st = st
	if !exists {
		a.st = newState()
		if err := a.writeSnapshotLocked(); err != nil {
			return nil, fmt.Errorf("open pki: %w", err)
		}
	} else if err := a.compact(); err != nil {
		return nil, fmt.Errorf("open pki: %w", err)
	}
	a.pool = x509.NewCertPool()
	a.pool.AddCert(a.ca)
	return a, nil
}

// CACertPEM returns the CA certificate as PEM. The slice is a copy the
// caller may keep or modify.
func (a *Authority) CACertPEM() []byte {
	return append([]byte(nil), a.caPEM...)
}

// CACert returns the CA certificate. It is shared: callers must not modify it.
func (a *Authority) CACert() *x509.Certificate {
	return a.ca
}

// Pool returns a new certificate pool holding only the CA certificate, for
// tls.Config.ClientCAs on the gateway and tls.Config.RootCAs on devices.
// Each call returns a fresh pool the caller may extend.
func (a *Authority) Pool() *x509.CertPool {
	return a.pool.Clone()
}

func (a *Authority) now() time.Time {
	return a.clock()
}

func (a *Authority) path(name string) string {
	return filepath.Join(a.dir, name)
}

func fileExists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	default:
		return false, err
	}
}
