package controller

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/store"
)

func TestBatchSize(t *testing.T) {
	tests := []struct {
		r        v1alpha1.Rollout
		targeted int
		want     int
	}{
		{v1alpha1.Rollout{}, 10, 10},
		{v1alpha1.Rollout{}, 0, 1},
		{v1alpha1.Rollout{BatchSize: 3}, 10, 3},
		{v1alpha1.Rollout{BatchPercent: 25}, 10, 3},
		{v1alpha1.Rollout{BatchPercent: 100, BatchSize: 2}, 7, 7},
		{v1alpha1.Rollout{BatchPercent: 1}, 1000, 10},
	}
	for _, tt := range tests {
		if got := batchSize(tt.r, tt.targeted); got != tt.want {
			t.Errorf("batchSize(%+v, %d) = %d, want %d", tt.r, tt.targeted, got, tt.want)
		}
	}
}

func device(name string, labels map[string]string) *v1alpha1.Device {
	return &v1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func TestSelectTargets(t *testing.T) {
	devs := []*v1alpha1.Device{
		device("c", map[string]string{"site": "a"}),
		device("a", map[string]string{"site": "b"}),
		device("b", nil),
	}
	tests := []struct {
		name   string
		target v1alpha1.Target
		want   []string
	}{
		{"by name", v1alpha1.Target{Devices: []string{"b", "zz"}}, []string{"b"}},
		{"by selector", v1alpha1.Target{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"site": "a"}}}, []string{"c"}},
		{"union, sorted", v1alpha1.Target{Devices: []string{"b"}, Selector: &metav1.LabelSelector{
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "site", Operator: metav1.LabelSelectorOpExists}}}}, []string{"a", "b", "c"}},
		{"nothing", v1alpha1.Target{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := selectTargets(tt.target, devs)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, d := range got {
				names = append(names, d.Name)
			}
			if len(names) != len(tt.want) {
				t.Fatalf("selectTargets = %v, want %v", names, tt.want)
			}
			for i := range names {
				if names[i] != tt.want[i] {
					t.Fatalf("selectTargets = %v, want %v", names, tt.want)
				}
			}
		})
	}
	bad := v1alpha1.Target{Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: "Sometimes"}}}}
	if _, err := selectTargets(bad, devs); err == nil {
		t.Errorf("selectTargets with a bad operator succeeded")
	}
}

func TestRevisions(t *testing.T) {
	spec := func(v, sha string) v1alpha1.ApplicationSpec {
		return v1alpha1.ApplicationSpec{Version: v, Module: v1alpha1.ModuleRef{SHA256: sha}}
	}
	var st v1alpha1.ApplicationStatus
	now := time.Now()
	recordRevision(&st, spec("1", "aa"), now)
	recordRevision(&st, spec("1", "aa"), now) // same revision: not recorded twice
	recordRevision(&st, spec("2", "bb"), now)
	if len(st.History) != 2 {
		t.Fatalf("history = %+v, want 2 revisions", st.History)
	}
	if p := previousRevision(st.History, spec("2", "bb")); p == nil || p.Version != "1" {
		t.Errorf("previousRevision = %+v, want version 1", p)
	}
	if p := previousRevision(st.History[:1], spec("1", "aa")); p != nil {
		t.Errorf("previousRevision of the only revision = %+v, want none", p)
	}
	for i := 0; i < 2*historyLimit; i++ {
		recordRevision(&st, spec("x", string(rune('a'+i))), now)
	}
	if len(st.History) != historyLimit {
		t.Errorf("history holds %d revisions, want the limit %d", len(st.History), historyLimit)
	}
}

// TestDeviceChangedRoutes: a device's change reconciles the apps whose
// target selects it and those it reports, and no other.
func TestDeviceChangedRoutes(t *testing.T) {
	st, err := store.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	dev := device("d1", map[string]string{"room": "lab"})
	dev.Spec.Board = "mps2-an385"
	if _, err := st.Devices().Create(ctx, dev); err != nil {
		t.Fatal(err)
	}
	c := &Applications{Store: st, loop: newLoop("applications", slog.New(slog.DiscardHandler)),
		known: map[string]selector{
			"by-name":     newSelector(v1alpha1.Target{Devices: []string{"d1"}}),
			"by-label":    newSelector(v1alpha1.Target{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"room": "lab"}}}),
			"elsewhere":   newSelector(v1alpha1.Target{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"room": "office"}}}),
			"other-names": newSelector(v1alpha1.Target{Devices: []string{"d2"}}),
		}}
	defer c.loop.queue.ShutDown()
	c.DeviceChanged("d1", "reported")
	var got []string
	for c.loop.queue.Len() > 0 {
		name, _ := c.loop.queue.Get()
		got = append(got, name)
		c.loop.queue.Done(name)
	}
	slices.Sort(got)
	if want := []string{"by-label", "by-name", "reported"}; !slices.Equal(got, want) {
		t.Errorf("DeviceChanged(d1) enqueued %v, want %v", got, want)
	}
}
