package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
)

// TestGroupCommit: writers at once share transactions, every write gets
// its own revision without gaps, watchers see them in revision order,
// and a write refused in a shared transaction fails alone.
func TestGroupCommit(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e, err := OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ch, err := e.Devices().Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 32, 8
	var wg sync.WaitGroup
	var dupOK, dupExists sync.Map
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				dev := &v1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("d-%d-%d", w, i)}, Spec: v1alpha1.DeviceSpec{Board: "mps2-an385"}}
				if _, err := e.Devices().Create(ctx, dev); err != nil {
					t.Errorf("Create(%s) = %v", dev.Name, err)
				}
			}
			// Every writer also creates one name they all share.
			_, err := e.Devices().Create(ctx, &v1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Name: "shared"}, Spec: v1alpha1.DeviceSpec{Board: "mps2-an385"}})
			switch {
			case err == nil:
				dupOK.Store(w, true)
			case errors.Is(err, ErrAlreadyExists):
				dupExists.Store(w, true)
			default:
				t.Errorf("Create(shared) = %v", err)
			}
		})
	}
	wg.Wait()
	won, lost := 0, 0
	dupOK.Range(func(any, any) bool { won++; return true })
	dupExists.Range(func(any, any) bool { lost++; return true })
	if won != 1 || lost != writers-1 {
		t.Errorf("creates of one name: %d succeeded, %d already existed; want 1 and %d", won, lost, writers-1)
	}
	writes := writers*each + 1
	for i := 1; i <= writes; i++ {
		ev := <-ch
		if rv := ev.Object.GetResourceVersion(); rv != strconv.Itoa(i) {
			t.Fatalf("event %d has resourceVersion %s, want %d", i, rv, i)
		}
	}
	if n := e.commits.transactions.Load(); n >= int64(writes) {
		t.Errorf("%d writes at once took %d transactions: none shared", writes, n)
	}
	t.Logf("%d writes in %d transactions", writes, e.commits.transactions.Load())
}
