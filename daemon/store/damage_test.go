package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// fleetDir makes a store of 200 devices in a new directory and closes it.
func fleetDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	s, err := OpenEmbedded(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if _, err := s.Devices().Create(t.Context(), deviceCase.newObj(fmt.Sprintf("d-%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestDamagedFile: a database file damaged in its pages or cut short is
// refused with ErrDamaged, naming the file; it never panics the daemon.
// An empty file opens as a fresh store, which Fresh reports.
func TestDamagedFile(t *testing.T) {
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"page flags", func(t *testing.T, path string) {
			// Page 5's header (its flags at offset 8 within the page)
			// says it is something it is not.
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt([]byte{0xff, 0xff}, 5*int64(os.Getpagesize())+8); err != nil {
				t.Fatal(err)
			}
		}},
		{"half truncated", func(t *testing.T, path string) {
			info, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, info.Size()/2); err != nil {
				t.Fatal(err)
			}
		}},
		{"zeroed middle", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(make([]byte, 3*os.Getpagesize()), 4*int64(os.Getpagesize())); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := fleetDir(t)
			path := filepath.Join(dir, dbFileName)
			c.damage(t, path)
			s, err := OpenEmbedded(dir)
			if err == nil {
				s.Close()
				t.Fatal("a damaged store opened")
			}
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q: want ErrDamaged naming %s", err, path)
			}
		})
	}
	t.Run("empty file", func(t *testing.T) {
		dir := fleetDir(t)
		if err := os.Truncate(filepath.Join(dir, dbFileName), 0); err != nil {
			t.Fatal(err)
		}
		s, err := OpenEmbedded(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if !s.Fresh() {
			t.Error("a store opened on an empty file is not Fresh")
		}
	})
}

// TestQuarantine: a record that does not decode, or lost its name, is left
// out of reads and reported, the rest of the fleet is served, and deleting
// it through the store removes it.
func TestQuarantine(t *testing.T) {
	dir := fleetDir(t)
	db, err := bolt.Open(filepath.Join(dir, dbFileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("devices"))
		if err := b.Put([]byte("d-007"), []byte(`{"metadata":{"name":"d-007"`)); err != nil {
			return err
		}
		return b.Put([]byte("d-008"), []byte(`{"kind":"Device","spec":{"board":"nrf52840"}}`))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	s, err := OpenEmbedded(dir)
	if err != nil {
		t.Fatalf("one bad record stops the store: %v", err)
	}
	defer s.Close()
	if s.Fresh() {
		t.Error("a store with records is Fresh")
	}
	q := s.Quarantined()
	if len(q) != 2 || q[0].Name != "d-007" || q[1].Name != "d-008" || q[0].Kind != "Device" {
		t.Fatalf("quarantined %+v, want d-007 and d-008", q)
	}
	ctx := t.Context()
	devs, err := s.Devices().List(ctx)
	if err != nil || len(devs) != 198 {
		t.Fatalf("list: %d devices, %v; want the 198 others", len(devs), err)
	}
	if _, err := s.Devices().Get(ctx, "d-008"); !errors.Is(err, ErrNotFound) {
		t.Errorf("get of a quarantined record: %v, want not found", err)
	}
	for _, name := range []string{"d-007", "d-008"} {
		if err := s.Devices().Delete(ctx, name); err != nil {
			t.Fatalf("delete quarantined %s: %v", name, err)
		}
	}
	if q := s.Quarantined(); len(q) != 0 {
		t.Errorf("quarantined after delete: %+v", q)
	}
	if _, err := s.Devices().Create(ctx, deviceCase.newObj("d-008")); err != nil {
		t.Errorf("create again after delete: %v", err)
	}
}
