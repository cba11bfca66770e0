package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"wasmbed.io/wasmbed/gateway/protocol"
)

// The state directory (documented in docs/device.md):
//
//	device.crt, device.key, ca.crt   identity (PEM); written by enrollment or a provisioner
//	apps.json                        installed apps: current and previous version of each
//	modules/<sha256>.wasm            verified modules, content-addressed
//	partial/<sha256>.part            unfinished transfers, resumed on reconnect
const (
	certFile    = "device.crt"
	keyFile     = "device.key"
	caFile      = "ca.crt"
	appsFile    = "apps.json"
	modulesDir  = "modules"
	partialDir  = "partial"
	privateMode = 0o600
)

// version is one installed version of an app.
type version struct {
	Version string          `json:"version"`
	SHA256  string          `json:"sha256"` // hex
	Size    uint64          `json:"size"`
	Limits  protocol.Limits `json:"limits"`
}

// appRecord is what the state directory keeps about one app.
type appRecord struct {
	Current  version           `json:"current"`
	Previous *version          `json:"previous,omitempty"`
	State    protocol.AppState `json:"state"`
	Reason   string            `json:"reason,omitempty"`
}

// stateDir reads and writes the device's state directory. It is not safe for
// concurrent use; the agent serializes access.
type stateDir string

func (d stateDir) path(elem ...string) string {
	return filepath.Join(append([]string{string(d)}, elem...)...)
}

func (d stateDir) init() error {
	for _, sub := range []string{modulesDir, partialDir} {
		if err := os.MkdirAll(d.path(sub), 0o700); err != nil {
			return fmt.Errorf("state dir: %w", err)
		}
	}
	return nil
}

// writeFile replaces name atomically.
func (d stateDir) writeFile(name string, data []byte) error {
	tmp, err := os.CreateTemp(string(d), "."+filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(privateMode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), d.path(name))
}

func (d stateDir) loadApps() (map[string]*appRecord, error) {
	apps := make(map[string]*appRecord)
	b, err := os.ReadFile(d.path(appsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return apps, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read apps: %w", err)
	}
	if err := json.Unmarshal(b, &apps); err != nil {
		return nil, fmt.Errorf("read apps %s: %w", d.path(appsFile), err)
	}
	return apps, nil
}

func (d stateDir) saveApps(apps map[string]*appRecord) error {
	b, err := json.MarshalIndent(apps, "", "  ")
	if err != nil {
		return err
	}
	if err := d.writeFile(appsFile, b); err != nil {
		return fmt.Errorf("save apps: %w", err)
	}
	return d.pruneModules(apps)
}

// pruneModules deletes stored modules no app's current or previous version
// refers to.
func (d stateDir) pruneModules(apps map[string]*appRecord) error {
	keep := make(map[string]bool)
	for _, r := range apps {
		keep[r.Current.SHA256+".wasm"] = true
		if r.Previous != nil {
			keep[r.Previous.SHA256+".wasm"] = true
		}
	}
	ents, err := os.ReadDir(d.path(modulesDir))
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !keep[e.Name()] {
			os.Remove(d.path(modulesDir, e.Name()))
		}
	}
	return nil
}

func (d stateDir) modulePath(sha string) string  { return d.path(modulesDir, sha+".wasm") }
func (d stateDir) partialPath(sha string) string { return d.path(partialDir, sha+".part") }

// readModule returns a stored module after checking its hash again, so that
// a corrupted file is never run.
func (d stateDir) readModule(sha string) ([]byte, error) {
	b, err := os.ReadFile(d.modulePath(sha))
	if err != nil {
		return nil, fmt.Errorf("read module %.12s: %w", sha, err)
	}
	if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != sha {
		return nil, fmt.Errorf("module %.12s is corrupt on disk", sha)
	}
	return b, nil
}

// partialSize returns how many bytes of a transfer are held.
func (d stateDir) partialSize(sha string) uint64 {
	fi, err := os.Stat(d.partialPath(sha))
	if err != nil {
		return 0
	}
	return uint64(fi.Size())
}

// appendPartial appends data to a transfer at offset, which must be its
// current size.
func (d stateDir) appendPartial(sha string, offset uint64, data []byte) error {
	f, err := os.OpenFile(d.partialPath(sha), os.O_CREATE|os.O_WRONLY, privateMode)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, int64(offset)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// finishPartial verifies a complete transfer against sha and moves it into
// modules/. A mismatch deletes it, so that the next attempt starts over.
func (d stateDir) finishPartial(sha string) ([]byte, error) {
	p := d.partialPath(sha)
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	b, err := io.ReadAll(io.TeeReader(f, h))
	f.Close()
	if err != nil {
		return nil, err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sha {
		os.Remove(p)
		return nil, protocol.Errorf(protocol.CodeHashMismatch, "module sha256 is %s, manifest says %s", got, sha)
	}
	if err := os.Rename(p, d.modulePath(sha)); err != nil {
		return nil, err
	}
	return b, nil
}

func (d stateDir) dropPartial(sha string) { os.Remove(d.partialPath(sha)) }
