package store

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"k8s.io/apimachinery/pkg/types"

	"wasmbed.io/wasmbed/crds/v1alpha1"
)

// errClosed is returned by writes and watches on a closed store.
var errClosed = errors.New("store is closed")

// File and bucket names inside the store directory.
const (
	dbFileName     = "wasmbed.db"
	modulesDirName = "modules"
)

var (
	metaBucket  = []byte("meta")
	revisionKey = []byte("revision")
)

// defaultWatchBuffer is how many events a watcher may lag behind the
// latest commit, on top of its initial snapshot, before its channel is
// closed.
const defaultWatchBuffer = 4096

// lockTimeout bounds the wait for the database file lock, held by another
// process that opened the same directory.
const lockTimeout = 2 * time.Second

// Embedded is the default Store: resources in a bbolt database file
// dir/wasmbed.db, modules as files dir/modules/<sha256>.wasm.
//
// Every write (create, update, status update, delete, of any kind) takes
// the next value of one store-wide revision counter, which becomes the
// written object's metadata.resourceVersion as a decimal string, as with
// etcd behind Kubernetes. Watches are served from memory: each commit is
// published after its transaction commits, in commit order.
//
// An Embedded is safe for concurrent use. Only one process can open a
// directory at a time. Close it when done; Close closes every open watch.
type Embedded struct {
	dir         string
	fresh       bool // no database, or an empty file, at open
	db          *bolt.DB
	modules     *fileModules
	watchBuffer int

	// mu orders what writes publish and the watches: a commit publishes
	// its event (and updates the read path) under mu once every earlier
	// revision has, and a new watch reads its snapshot and registers
	// under mu, so every watcher sees exactly the commits after its
	// snapshot, in order. The bbolt transactions themselves run outside
	// mu, several writes to one (commits).
	mu     sync.Mutex
	rev    uint64    // last published revision; guarded by mu
	turn   sync.Cond // on mu: signalled when rev moves
	closed bool      // guarded by mu

	commits groupCommit

	devices      *resource[*v1alpha1.Device]
	applications *resource[*v1alpha1.Application]
	gateways     *resource[*v1alpha1.Gateway]
}

var _ Store = (*Embedded)(nil)

// OpenEmbedded opens the embedded store in dir, creating dir (mode 0700),
// the database file and the modules directory when missing. Temporary
// files left in the modules directory by an interrupted upload are
// removed. It fails after a few seconds if another process holds the
// store open.
//
// The database file is checked whole before it is used: a damaged file
// is refused with an error that wraps ErrDamaged and names the file,
// never a panic. A record that does not decode is quarantined (see
// Quarantined); the others are served.
func OpenEmbedded(dir string) (*Embedded, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	modules, err := openFileModules(filepath.Join(dir, modulesDirName))
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	path := filepath.Join(dir, dbFileName)
	fresh := true
	if info, err := os.Stat(path); err == nil && info.Size() > 0 {
		fresh = false
	}
	e := &Embedded{dir: dir, fresh: fresh, modules: modules, watchBuffer: defaultWatchBuffer}
	e.turn.L = &e.mu
	e.devices = newResource(e, "devices", v1alpha1.KindDevice, func() *v1alpha1.Device { return new(v1alpha1.Device) })
	e.applications = newResource(e, "applications", v1alpha1.KindApplication, func() *v1alpha1.Application { return new(v1alpha1.Application) })
	e.gateways = newResource(e, "gateways", v1alpha1.KindGateway, func() *v1alpha1.Gateway { return new(v1alpha1.Gateway) })
	if e.db, err = e.openDB(path); err != nil {
		return nil, err
	}
	e.commits = groupCommit{db: e.db}
	return e, nil
}

// ErrDamaged is wrapped by OpenEmbedded's error for a database file that
// fails bbolt's consistency check or cannot be read.
var ErrDamaged = errors.New("the store's database file is damaged")

// openDB opens and checks the database file at path and loads every
// record. bbolt panics, or faults on pages past the end of a cut file,
// when it meets damage; both become an error here.
func (e *Embedded) openDB(path string) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = e.damaged(path, fmt.Errorf("%v", p))
		}
		if err != nil && db != nil {
			func() {
				defer func() { _ = recover() }()
				db.Close()
			}()
			db = nil
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	switch {
	case errors.Is(err, bolt.ErrTimeout):
		return nil, fmt.Errorf("open store %s: another process has it open: %w", path, err)
	case err != nil:
		return nil, e.damaged(path, err)
	}
	var problems []error
	_ = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			if len(problems) < 3 {
				problems = append(problems, err)
			}
		}
		return nil
	})
	if len(problems) > 0 {
		return db, e.damaged(path, errors.Join(problems...))
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{metaBucket, e.devices.bucket, e.applications.bucket, e.gateways.bucket} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		for _, load := range []func(*bolt.Tx) error{e.devices.load, e.applications.load, e.gateways.load} {
			if err := load(tx); err != nil {
				return err
			}
		}
		rev, err := readRevision(tx)
		e.rev = rev
		return err
	})
	if err != nil {
		return db, fmt.Errorf("open store %s: %w", path, err)
	}
	return db, nil
}

func (e *Embedded) damaged(path string, cause error) error {
	return fmt.Errorf("open store %s: %w: %v; restore the file from a backup, or move it aside to start with an empty fleet", path, ErrDamaged, cause)
}

// Fresh reports whether the store had no database, or an empty file, when
// it was opened: a new fleet, or one whose records were lost.
func (e *Embedded) Fresh() bool { return e.fresh }

// Quarantined is a stored record the store cannot serve: it does not
// decode, or its name is not its key. It stays in the database until it is
// deleted (Delete of its name) and is left out of gets, lists and watches.
type Quarantined struct {
	Kind   string // Device, Application or Gateway
	Name   string // its key
	Reason string
}

// Quarantined lists the records found unreadable when the store opened
// and not deleted since.
func (e *Embedded) Quarantined() []Quarantined {
	var out []Quarantined
	for _, q := range []func() []Quarantined{e.devices.quarantine, e.applications.quarantine, e.gateways.quarantine} {
		out = append(out, q()...)
	}
	return out
}

// Devices returns the Device resources.
func (e *Embedded) Devices() Resource[*v1alpha1.Device] { return e.devices }

// Applications returns the Application resources.
func (e *Embedded) Applications() Resource[*v1alpha1.Application] { return e.applications }

// Gateways returns the Gateway resources.
func (e *Embedded) Gateways() Resource[*v1alpha1.Gateway] { return e.gateways }

// Modules returns the module files.
func (e *Embedded) Modules() Modules { return e.modules }

// Backend returns "embedded".
func (e *Embedded) Backend() string { return "embedded" }

// Close closes every open watch channel, then the database. Later calls
// return nil. Module files need no closing.
func (e *Embedded) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.devices.stopAllLocked()
	e.applications.stopAllLocked()
	e.gateways.stopAllLocked()
	e.mu.Unlock()
	if err := e.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// readRevision returns the last committed revision, 0 for a new store.
func readRevision(tx *bolt.Tx) (uint64, error) {
	v := tx.Bucket(metaBucket).Get(revisionKey)
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("read revision: %d bytes, want 8", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// writeRevision records rev as the last committed revision.
func writeRevision(tx *bolt.Tx, rev uint64) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], rev)
	if err := tx.Bucket(metaBucket).Put(revisionKey, v[:]); err != nil {
		return fmt.Errorf("write revision: %w", err)
	}
	return nil
}

// newUID returns a random RFC 4122 version 4 UUID string.
func newUID() types.UID {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24 and later)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return types.UID(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]))
}
