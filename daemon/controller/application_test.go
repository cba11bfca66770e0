package controller

import (
	"log/slog"
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
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
	if r := FindRevision(st.History, "1"); r == nil || r.Module.SHA256 != "aa" {
		t.Errorf("FindRevision(1) = %+v, want the revision of module aa", r)
	}
	if r := FindRevision(st.History, ""); r != nil {
		t.Errorf("FindRevision(\"\") = %+v, want none", r)
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
	dev := device("d1", map[string]string{"room": "lab"})
	c := &Applications{loop: newLoop("applications", slog.New(slog.DiscardHandler)), idx: newIndex()}
	for name, target := range map[string]v1alpha1.Target{
		"by-name":     {Devices: []string{"d1"}},
		"by-label":    {Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"room": "lab"}}},
		"elsewhere":   {Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"room": "office"}}},
		"other-names": {Devices: []string{"d2"}},
	} {
		c.idx.setApp(&v1alpha1.Application{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.ApplicationSpec{Target: target}})
	}
	c.idx.setDevice(dev.Name, dev)
	defer c.loop.queue.ShutDown()
	c.DeviceChanged("d1", "reported")
	// The apps come after deviceCoalesce; three of them, then no more.
	var got []string
	for len(got) < 3 {
		name, _ := c.loop.queue.Get()
		got = append(got, name)
		c.loop.queue.Done(name)
	}
	time.Sleep(3 * deviceCoalesce)
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

func app(name string, target v1alpha1.Target) *v1alpha1.Application {
	return &v1alpha1.Application{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.ApplicationSpec{Target: target}}
}

// TestIndex: the index follows devices into and out of apps' targets, and
// the apps they report, and rebuilds an app's targets only when its target
// changes.
func TestIndex(t *testing.T) {
	x := newIndex()
	lab := v1alpha1.Target{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"room": "lab"}}}
	x.setDevice("a", device("a", map[string]string{"room": "lab"}))
	if !x.setApp(app("sensor", lab)) {
		t.Fatal("setApp of a new app reported no change")
	}
	if x.setApp(app("sensor", *lab.DeepCopy())) {
		t.Error("setApp with the same target reported a change")
	}
	b := device("b", map[string]string{"room": "lab"})
	b.Status.Apps = []v1alpha1.DeviceApp{{Name: "ghost", State: "running"}}
	if got := x.setDevice("b", b); !slices.Contains(got, "sensor") || !slices.Contains(got, "ghost") {
		t.Errorf("setDevice(b) concerns %v, want sensor and ghost", got)
	}
	names := func(ds []*v1alpha1.Device) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.Name)
		}
		slices.Sort(out)
		return out
	}
	if got := names(x.targeted("sensor")); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("targeted = %v, want [a b]", got)
	}
	if got := x.unknownApps(); !slices.Equal(got, []string{"ghost"}) {
		t.Errorf("unknownApps = %v, want [ghost]", got)
	}
	// A refreshed last-seen time moves no rollout.
	seen := b.DeepCopy()
	seen.Status.LastSeen = &metav1.Time{Time: time.Now()}
	if got := x.setDevice("b", seen); got != nil {
		t.Errorf("a last-seen refresh concerns %v, want none", got)
	}
	// a leaves the lab: the app still hears of it, once more.
	if got := x.setDevice("a", device("a", map[string]string{"room": "office"})); !slices.Contains(got, "sensor") {
		t.Errorf("setDevice(a out of the target) concerns %v, want sensor", got)
	}
	if got := names(x.targeted("sensor")); !slices.Equal(got, []string{"b"}) {
		t.Errorf("targeted after a left = %v, want [b]", got)
	}
	x.setDevice("b", nil)
	if got := names(x.targeted("sensor")); got != nil || len(x.strays("ghost", nil)) != 0 || x.unknownApps() != nil {
		t.Errorf("after b was deleted: targeted %v, reporting ghost %d, unknown %v; want none", got, len(x.strays("ghost", nil)), x.unknownApps())
	}
	x.setApp(app("sensor", v1alpha1.Target{Devices: []string{"a"}}))
	if got := names(x.targeted("sensor")); !slices.Equal(got, []string{"a"}) {
		t.Errorf("targeted after the target changed = %v, want [a]", got)
	}
}

// TestDeviceRollout: a device's row says what it runs against what it is
// meant to run.
func TestDeviceRollout(t *testing.T) {
	want := v1alpha1.ApplicationSpec{Version: "2", Module: v1alpha1.ModuleRef{SHA256: "bb"}}
	since := &metav1.Time{Time: time.Unix(1700000000, 0)}
	dev := func(phase v1alpha1.DevicePhase, apps ...v1alpha1.DeviceApp) *v1alpha1.Device {
		d := device("d", nil)
		d.Status.Phase, d.Status.Apps = phase, apps
		return d
	}
	tests := []struct {
		name string
		d    *v1alpha1.Device
		want v1alpha1.DeviceRollout
	}{
		{"offline, never ran it", dev(v1alpha1.DeviceOffline),
			v1alpha1.DeviceRollout{Device: "d", Target: "2", State: RolloutWaiting, Reason: "device is offline"}},
		{"online, runs the old version", dev(v1alpha1.DeviceOnline, v1alpha1.DeviceApp{Name: "app", Version: "1", SHA256: "aa", State: "running", Since: since}),
			v1alpha1.DeviceRollout{Device: "d", Version: "1", Target: "2", State: RolloutPending}},
		{"being sent the target", dev(v1alpha1.DeviceOnline, v1alpha1.DeviceApp{Name: "app", Version: "1", SHA256: "aa", Target: "2", State: "running", Since: since}),
			v1alpha1.DeviceRollout{Device: "d", Version: "1", Target: "2", State: RolloutTransferring}},
		{"runs the target", dev(v1alpha1.DeviceOnline, v1alpha1.DeviceApp{Name: "app", Version: "2", SHA256: "bb", State: "running", Since: since}),
			v1alpha1.DeviceRollout{Device: "d", Version: "2", Target: "2", State: RolloutRunning, Since: since}},
		{"ran the target, now unknown", dev(v1alpha1.DeviceUnknown, v1alpha1.DeviceApp{Name: "app", Version: "2", SHA256: "bb", State: "running", Since: since}),
			v1alpha1.DeviceRollout{Device: "d", Version: "2", Target: "2", State: RolloutWaiting, Reason: "device is unknown; it last ran this version", Since: since}},
		{"receiving it", dev(v1alpha1.DeviceOnline, v1alpha1.DeviceApp{Name: "app", Version: "2", SHA256: "bb", State: "verifying", Since: since}),
			v1alpha1.DeviceRollout{Device: "d", Version: "2", Target: "2", State: RolloutTransferring, Since: since}},
		{"failed it", dev(v1alpha1.DeviceOnline, v1alpha1.DeviceApp{Name: "app", Version: "2", SHA256: "bb", State: "failed", Reason: "trap", Since: since}),
			v1alpha1.DeviceRollout{Device: "d", Version: "2", Target: "2", State: RolloutFailed, Reason: "trap", Since: since}},
		{"the module under another name", dev(v1alpha1.DeviceOnline, v1alpha1.DeviceApp{Name: "app", Version: "1b", SHA256: "bb", State: "running", Since: since}),
			v1alpha1.DeviceRollout{Device: "d", Version: "1b", Target: "2", State: RolloutPending}},
		{"the target under other limits", dev(v1alpha1.DeviceOnline, v1alpha1.DeviceApp{Name: "app", Version: "2", SHA256: "bb", State: "running", Since: since,
			Limits: &v1alpha1.Limits{PeriodMillis: 50}}),
			v1alpha1.DeviceRollout{Device: "d", Version: "2", Target: "2", State: RolloutPending}},
		{"refused it, runs the old", dev(v1alpha1.DeviceOnline, v1alpha1.DeviceApp{Name: "app", Version: "1", SHA256: "aa", Target: "2", TargetFailed: "too-large", State: "running", Since: since}),
			v1alpha1.DeviceRollout{Device: "d", Version: "1", Target: "2", State: RolloutFailed, Reason: "too-large", Since: since}},
	}
	for _, tt := range tests {
		if got := DeviceRollout("app", want, tt.d); !equality.Semantic.DeepEqual(got, tt.want) {
			t.Errorf("%s: DeviceRollout = %+v, want %+v", tt.name, got, tt.want)
		}
	}
	// Back to the version it kept running, the refusal is history.
	old := v1alpha1.ApplicationSpec{Version: "1", Module: v1alpha1.ModuleRef{SHA256: "aa"}}
	refused := tests[len(tests)-1].d
	if got := DeviceRollout("app", old, refused); got.State != RolloutRunning || got.Version != "1" || got.Target != "1" {
		t.Errorf("a refusal of 2 towards 1: DeviceRollout = %+v, want running 1", got)
	}
}
