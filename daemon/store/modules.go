package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Module file names: <sha256>.wasm for a stored module, .put-* for an
// upload in progress.
const (
	moduleExt     = ".wasm"
	tempPrefix    = ".put-"
	copyChunkSize = 32 << 10
)

// fileModules keeps modules as files <sha256>.wasm (mode 0600) in one
// directory. An upload is written to a temporary file in the same
// directory while it is hashed and counted, then renamed into place, so a
// module file is always complete. Safe for concurrent use.
type fileModules struct {
	dir string
	// mu makes the check for an existing module and the rename into
	// place one step, so a second upload of the same bytes keeps the
	// first file (and its Added time).
	mu sync.Mutex
}

var _ Modules = (*fileModules)(nil)

// openFileModules creates dir (mode 0700) when missing and removes the
// temporary files of interrupted uploads.
func openFileModules(dir string) (*fileModules, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open modules: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open modules: %w", err)
	}
	for _, ent := range entries {
		if strings.HasPrefix(ent.Name(), tempPrefix) {
			if err := os.Remove(filepath.Join(dir, ent.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("open modules: remove leftover upload: %w", err)
			}
		}
	}
	return &fileModules{dir: dir}, nil
}

// Put streams r into the store, refusing more than max bytes (ErrTooLarge,
// nothing left behind). It stops early when ctx ends. Storing bytes that
// are already stored returns the existing module unchanged.
func (m *fileModules) Put(ctx context.Context, r io.Reader, max int64) (info ModuleInfo, err error) {
	f, err := os.CreateTemp(m.dir, tempPrefix+"*")
	if err != nil {
		return ModuleInfo{}, fmt.Errorf("put module: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()

	h := sha256.New()
	size, err := copyLimited(ctx, io.MultiWriter(f, h), r, max)
	if err != nil {
		return ModuleInfo{}, fmt.Errorf("put module: %w", err)
	}
	if err := f.Sync(); err != nil {
		return ModuleInfo{}, fmt.Errorf("put module: %w", err)
	}
	if err := f.Close(); err != nil {
		return ModuleInfo{}, fmt.Errorf("put module: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	path := m.path(sum)

	m.mu.Lock()
	defer m.mu.Unlock()
	if existing, err := os.Stat(path); err == nil {
		os.Remove(tmp)
		return moduleInfo(sum, existing), nil
	}
	if err := os.Rename(tmp, path); err != nil {
		return ModuleInfo{}, fmt.Errorf("put module %s: %w", sum, err)
	}
	if err := syncDir(m.dir); err != nil {
		return ModuleInfo{}, fmt.Errorf("put module %s: %w", sum, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return ModuleInfo{}, fmt.Errorf("put module %s: %w", sum, err)
	}
	if fi.Size() != size {
		// Unreachable unless something else writes in the directory.
		return ModuleInfo{}, fmt.Errorf("put module %s: stored %d bytes, read %d", sum, fi.Size(), size)
	}
	return moduleInfo(sum, fi), nil
}

// copyLimited copies r to w until EOF, failing with ErrTooLarge after max
// bytes and with ctx's error when ctx ends. It returns the bytes copied.
func copyLimited(ctx context.Context, w io.Writer, r io.Reader, max int64) (int64, error) {
	buf := make([]byte, copyChunkSize)
	var size int64
	for {
		if err := ctx.Err(); err != nil {
			return size, err
		}
		n, rerr := r.Read(buf)
		if n > 0 {
			size += int64(n)
			if size > max {
				return size, fmt.Errorf("module is more than %d bytes: %w", max, ErrTooLarge)
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return size, err
			}
		}
		if rerr == io.EOF {
			return size, nil
		}
		if rerr != nil {
			return size, fmt.Errorf("read module: %w", rerr)
		}
	}
}

// Get returns the module's bytes.
func (m *fileModules) Get(ctx context.Context, sum string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get module %q: %w", sum, err)
	}
	if err := checkSHA256(sum); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(m.path(sum))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("module %s: %w", sum, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get module %s: %w", sum, err)
	}
	return data, nil
}

// Stat describes the module; Added is when its file was written.
func (m *fileModules) Stat(ctx context.Context, sum string) (ModuleInfo, error) {
	if err := ctx.Err(); err != nil {
		return ModuleInfo{}, fmt.Errorf("stat module %q: %w", sum, err)
	}
	if err := checkSHA256(sum); err != nil {
		return ModuleInfo{}, err
	}
	fi, err := os.Stat(m.path(sum))
	if errors.Is(err, fs.ErrNotExist) {
		return ModuleInfo{}, fmt.Errorf("module %s: %w", sum, ErrNotFound)
	}
	if err != nil {
		return ModuleInfo{}, fmt.Errorf("stat module %s: %w", sum, err)
	}
	return moduleInfo(sum, fi), nil
}

// List describes every module, sorted by sha256.
func (m *fileModules) List(ctx context.Context) ([]ModuleInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list modules: %w", err)
	}
	entries, err := os.ReadDir(m.dir) // sorted by file name, so by sha256
	if err != nil {
		return nil, fmt.Errorf("list modules: %w", err)
	}
	infos := []ModuleInfo{}
	for _, ent := range entries {
		sum, ok := strings.CutSuffix(ent.Name(), moduleExt)
		if !ok || checkSHA256(sum) != nil || !ent.Type().IsRegular() {
			continue
		}
		fi, err := ent.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since ReadDir
		}
		if err != nil {
			return nil, fmt.Errorf("list modules: %w", err)
		}
		infos = append(infos, moduleInfo(sum, fi))
	}
	return infos, nil
}

// Delete removes the module.
func (m *fileModules) Delete(ctx context.Context, sum string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete module %q: %w", sum, err)
	}
	if err := checkSHA256(sum); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	err := os.Remove(m.path(sum))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("module %s: %w", sum, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("delete module %s: %w", sum, err)
	}
	return nil
}

// path is the file of module sum, which checkSHA256 accepted.
func (m *fileModules) path(sum string) string {
	return filepath.Join(m.dir, sum+moduleExt)
}

// checkSHA256 returns an ErrNotFound error unless sum is 64 lowercase hex
// digits: no such module can exist, and sum never reaches a file path.
func checkSHA256(sum string) error {
	ok := len(sum) == 2*sha256.Size
	for i := 0; ok && i < len(sum); i++ {
		c := sum[i]
		ok = c >= '0' && c <= '9' || c >= 'a' && c <= 'f'
	}
	if !ok {
		return fmt.Errorf("module %q: %w (a module is named by 64 lowercase hex digits)", sum, ErrNotFound)
	}
	return nil
}

func moduleInfo(sum string, fi fs.FileInfo) ModuleInfo {
	return ModuleInfo{SHA256: sum, Size: fi.Size(), Added: metav1.NewTime(fi.ModTime())}
}

// syncDir flushes dir's entries, so a rename into it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
