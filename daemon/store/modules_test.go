package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func sum(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// moduleFiles lists the names in the modules directory.
func moduleFiles(tb testing.TB, s *Embedded) []string {
	tb.Helper()
	entries, err := os.ReadDir(s.modules.dir)
	if err != nil {
		tb.Fatal(err)
	}
	names := make([]string, len(entries))
	for i, ent := range entries {
		names[i] = ent.Name()
	}
	return names
}

func TestModules(t *testing.T) {
	ctx := t.Context()
	s := openTest(t)
	mods := s.Modules()
	a := []byte("\x00asm\x01\x00\x00\x00module a")
	b := bytes.Repeat([]byte("b"), 3*copyChunkSize+17) // several reads

	infoA, err := mods.Put(ctx, bytes.NewReader(a), 1<<20)
	if err != nil {
		t.Fatalf("Put(a): %v", err)
	}
	if infoA.SHA256 != sum(a) || infoA.Size != int64(len(a)) || infoA.Added.IsZero() {
		t.Errorf("Put(a) = %+v, want sha %s size %d and a time", infoA, sum(a), len(a))
	}
	infoB, err := mods.Put(ctx, bytes.NewReader(b), int64(len(b))) // exactly max is allowed
	if err != nil {
		t.Fatalf("Put(b) at exactly max: %v", err)
	}

	got, err := mods.Get(ctx, infoA.SHA256)
	if err != nil || !bytes.Equal(got, a) {
		t.Errorf("Get(a) = %q, %v; want %q", got, err, a)
	}
	st, err := mods.Stat(ctx, infoB.SHA256)
	if err != nil || st != infoB {
		t.Errorf("Stat(b) = %+v, %v; want %+v", st, err, infoB)
	}
	fi, err := os.Stat(filepath.Join(s.modules.dir, infoA.SHA256+".wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o600 {
		t.Errorf("module file mode = %v, want 0600", fi.Mode())
	}

	// The same bytes again are the same module, file and Added time.
	again, err := mods.Put(ctx, bytes.NewReader(a), 1<<20)
	if err != nil {
		t.Fatalf("Put(a) again: %v", err)
	}
	if again != infoA {
		t.Errorf("Put(a) again = %+v, want %+v", again, infoA)
	}

	list, err := mods.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	want := []ModuleInfo{infoA, infoB}
	slices.SortFunc(want, func(x, y ModuleInfo) int { return strings.Compare(x.SHA256, y.SHA256) })
	if !slices.Equal(list, want) {
		t.Errorf("List = %+v, want %+v", list, want)
	}
	if files := moduleFiles(t, s); len(files) != 2 {
		t.Errorf("modules directory holds %v, want the two modules only", files)
	}

	if err := mods.Delete(ctx, infoA.SHA256); err != nil {
		t.Fatalf("Delete(a): %v", err)
	}
	if _, err := mods.Get(ctx, infoA.SHA256); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete error = %v, want ErrNotFound", err)
	}
	if _, err := mods.Stat(ctx, infoA.SHA256); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat after Delete error = %v, want ErrNotFound", err)
	}
	if err := mods.Delete(ctx, infoA.SHA256); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete error = %v, want ErrNotFound", err)
	}
	if list, _ := mods.List(ctx); len(list) != 1 || list[0] != infoB {
		t.Errorf("List after Delete = %+v, want [%+v]", list, infoB)
	}
}

func TestModulesEmptyList(t *testing.T) {
	s := openTest(t)
	list, err := s.Modules().List(t.Context())
	if err != nil || list == nil || len(list) != 0 {
		t.Errorf("List of an empty store = %#v, %v; want an empty, non-nil slice", list, err)
	}
}

func TestModulesTooLarge(t *testing.T) {
	ctx := t.Context()
	s := openTest(t)
	for _, tc := range []struct {
		name string
		size int
		max  int64
	}{
		{"one byte over", 101, 100},
		{"many chunks over", 5 * copyChunkSize, copyChunkSize},
		{"zero max", 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Modules().Put(ctx, bytes.NewReader(bytes.Repeat([]byte{1}, tc.size)), tc.max)
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Put(%d bytes, max %d) error = %v, want ErrTooLarge", tc.size, tc.max, err)
			}
			if files := moduleFiles(t, s); len(files) != 0 {
				t.Errorf("after a refused Put the modules directory holds %v, want nothing", files)
			}
		})
	}
}

// failingReader returns some bytes, then an error.
type failingReader struct{ sent bool }

var errBroken = errors.New("connection reset")

func (r *failingReader) Read(p []byte) (int, error) {
	if r.sent {
		return 0, errBroken
	}
	r.sent = true
	return copy(p, "partial"), nil
}

func TestModulesPutFailureLeavesNothing(t *testing.T) {
	s := openTest(t)
	if _, err := s.Modules().Put(t.Context(), &failingReader{}, 1<<20); !errors.Is(err, errBroken) {
		t.Errorf("Put(failing reader) error = %v, want %v", err, errBroken)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Modules().Put(ctx, strings.NewReader("x"), 1<<20); !errors.Is(err, context.Canceled) {
		t.Errorf("Put(cancelled ctx) error = %v, want context.Canceled", err)
	}
	if files := moduleFiles(t, s); len(files) != 0 {
		t.Errorf("after failed Puts the modules directory holds %v, want nothing", files)
	}
}

func TestModulesBadSHA(t *testing.T) {
	ctx := t.Context()
	s := openTest(t)
	info, err := s.Modules().Put(ctx, strings.NewReader("module"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	// A file outside the modules directory that a traversal would reach.
	if err := os.WriteFile(filepath.Join(s.dir, "x.wasm"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		"",
		"../x",
		"../" + strings.Repeat("a", 61),
		strings.ToUpper(info.SHA256),
		info.SHA256[:63],
		info.SHA256 + "0",
		info.SHA256[:63] + "g",
		info.SHA256 + ".wasm",
		"/etc/passwd",
	} {
		t.Run(bad, func(t *testing.T) {
			if _, err := s.Modules().Get(ctx, bad); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get(%q) error = %v, want ErrNotFound", bad, err)
			}
			if _, err := s.Modules().Stat(ctx, bad); !errors.Is(err, ErrNotFound) {
				t.Errorf("Stat(%q) error = %v, want ErrNotFound", bad, err)
			}
			if err := s.Modules().Delete(ctx, bad); !errors.Is(err, ErrNotFound) {
				t.Errorf("Delete(%q) error = %v, want ErrNotFound", bad, err)
			}
		})
	}
	if _, err := s.Modules().Stat(ctx, info.SHA256); err != nil {
		t.Errorf("the good module is gone: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.dir, "x.wasm")); err != nil {
		t.Errorf("the file outside the modules directory is gone: %v", err)
	}
}

func TestModulesLeftoversRemovedAtOpen(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "store")
	s, err := OpenEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Modules().Put(ctx, strings.NewReader("kept"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	leftover := filepath.Join(dir, modulesDirName, tempPrefix+"123456")
	if err := os.WriteFile(leftover, []byte("half an upload"), 0o600); err != nil {
		t.Fatal(err)
	}

	s, err = OpenEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover upload still there after reopen (stat error %v)", err)
	}
	data, err := s.Modules().Get(ctx, info.SHA256)
	if err != nil || string(data) != "kept" {
		t.Errorf("Get after reopen = %q, %v; want \"kept\"", data, err)
	}
}

func BenchmarkModulePut(b *testing.B) {
	s := openTest(b)
	data := bytes.Repeat([]byte{0xab}, 64<<10)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		data[0], data[1], data[2] = byte(i), byte(i>>8), byte(i>>16) // a new module each time
		if _, err := s.Modules().Put(b.Context(), bytes.NewReader(data), 1<<20); err != nil {
			b.Fatal(err)
		}
	}
}
