package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/api"
	"wasmbed.io/wasmbed/daemon/controller"
	"wasmbed.io/wasmbed/daemon/events"
	"wasmbed.io/wasmbed/daemon/kubetest"
	"wasmbed.io/wasmbed/daemon/store"
)

// TestKubeRecorder records Events through a real kube-apiserver: 30
// repeats of one event on a device become one Event with a count (the
// correlator lets 25 through per object, and counts the rest as
// filtered), distinct devices get Events of their own, and an identity the
// API server refuses Events from has each one counted as dropped.
func TestKubeRecorder(t *testing.T) {
	nobody := kubetest.User{Name: "no-events", Groups: []string{"system:authenticated"}}
	cluster := kubetest.Start(t, nobody)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	const ns = "default"

	counts := newEventCounts()
	rec, err := newKubeRecorder(cluster.Admin(), ns, "gw-test", counts, log)
	if err != nil {
		t.Fatal(err)
	}
	go rec.run(ctx)
	dev := func(name string) *v1alpha1.Device {
		d := &v1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("uid-" + name)}}
		d.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind(v1alpha1.KindDevice))
		return d
	}
	for range 30 {
		rec.Eventf(dev("flappy"), corev1.EventTypeWarning, "Offline", "the device's session on gateway %s ended", "gw-test")
	}
	for i := range 5 {
		rec.Eventf(dev(fmt.Sprintf("calm-%d", i)), corev1.EventTypeNormal, "Online", "session on gateway %s", "gw-test")
	}
	want := map[string]float64{eventWritten: 6, eventAggregated: 24, eventFiltered: 5, eventDropped: 0}
	waitCounts(t, counts, want)

	cs, err := kubernetes.NewForConfig(cluster.Admin())
	if err != nil {
		t.Fatal(err)
	}
	list, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	byObject := map[string]corev1.Event{}
	for _, e := range list.Items {
		if _, twice := byObject[e.InvolvedObject.Name]; twice {
			t.Errorf("two Events on %s", e.InvolvedObject.Name)
		}
		byObject[e.InvolvedObject.Name] = e
	}
	if e := byObject["flappy"]; e.Count != 25 || e.Reason != "Offline" || e.Type != corev1.EventTypeWarning || e.InvolvedObject.Kind != v1alpha1.KindDevice {
		t.Errorf("the repeated event = %s %s %s count %d, want one Warning Offline on the Device, count 25", e.Type, e.Reason, e.InvolvedObject.Kind, e.Count)
	}
	if len(byObject) != 6 {
		t.Errorf("Events on %d objects, want 6", len(byObject))
	}

	refused := newEventCounts()
	rec, err = newKubeRecorder(cluster.Config(nobody), ns, "gw-test", refused, log)
	if err != nil {
		t.Fatal(err)
	}
	go rec.run(ctx)
	for i := range 3 {
		rec.Eventf(dev(fmt.Sprintf("refused-%d", i)), corev1.EventTypeNormal, "Online", "session")
	}
	waitCounts(t, refused, map[string]float64{eventWritten: 0, eventAggregated: 0, eventFiltered: 0, eventDropped: 3})
}

// waitCounts waits until the recorder's counts by outcome are want.
func waitCounts(t *testing.T, counts *prometheus.CounterVec, want map[string]float64) {
	t.Helper()
	got := map[string]float64{}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for r := range want {
			got[r] = testutil.ToFloat64(counts.WithLabelValues(r))
		}
		if maps.Equal(got, want) {
			return
		}
	}
	t.Fatalf("event outcomes %v, want %v", got, want)
}

// TestKubeStatusRefused: an Application status the API server refuses
// (here a ValidatingAdmissionPolicy standing for any refusal: a size limit,
// a webhook) becomes a Warning Event and the StatusFailure condition on
// the status as last written, not a log line; once the server takes the
// status again the condition goes.
func TestKubeStatusRefused(t *testing.T) {
	cluster := kubetest.Start(t)
	cfg := cluster.Admin()
	kubetest.InstallCRDs(t, cfg, filepath.Join("..", "crds"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const ns = "default"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	policy := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "small-rollouts"},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionv1.Fail),
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Update},
					Rule:       admissionv1.Rule{APIGroups: []string{v1alpha1.Group}, APIVersions: []string{v1alpha1.Version}, Resources: []string{"applications/status"}},
				},
			}}},
			Validations: []admissionv1.Validation{{
				Expression: "!has(object.status) || !has(object.status.targeted) || object.status.targeted <= 2",
				Message:    "rollouts here target at most 2 devices",
			}},
		},
	}
	if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "small-rollouts"},
		Spec:       admissionv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: "small-rollouts", ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny}},
	}
	if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	st, err := store.OpenKubernetes(cfg, ns, store.KubeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := range 3 {
		d := &v1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("dev-%d", i), Labels: map[string]string{"fleet": "big"}},
			Spec: v1alpha1.DeviceSpec{Board: "mps2-an385"}}
		if _, err := st.Devices().Create(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Applications().Create(ctx, &v1alpha1.Application{ObjectMeta: metav1.ObjectMeta{Name: "sensor"}, Spec: v1alpha1.ApplicationSpec{
		Module: v1alpha1.ModuleRef{SHA256: strings.Repeat("ab", 32), Size: 10}, Version: "1",
		Target: v1alpha1.Target{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"fleet": "big"}}},
	}}); err != nil {
		t.Fatal(err)
	}
	rec, err := newKubeRecorder(cfg, ns, "gw-test", newEventCounts(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	go rec.run(ctx)
	apps := &controller.Applications{Store: st, Recorder: rec, Resync: time.Second, Logger: slog.New(slog.DiscardHandler)}
	done := make(chan struct{})
	go func() { defer close(done); apps.Run(ctx) }()
	defer func() { cancel(); <-done }()

	failure := func() *metav1.Condition {
		a, err := st.Applications().Get(ctx, "sensor")
		if err != nil {
			t.Fatal(err)
		}
		return apimeta.FindStatusCondition(a.Status.Conditions, controller.StatusFailure)
	}
	waitFor(t, "the StatusFailure condition", func() bool {
		c := failure()
		return c != nil && c.Status == metav1.ConditionTrue && strings.Contains(c.Message, "at most 2 devices")
	})
	waitFor(t, "a StatusWriteFailed Warning Event", func() bool {
		list, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=sensor"})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range list.Items {
			if e.Reason == "StatusWriteFailed" && e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, "at most 2 devices") {
				return true
			}
		}
		return false
	})

	if err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(ctx, "small-rollouts", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the status written, the condition gone", func() bool {
		a, err := st.Applications().Get(ctx, "sensor")
		if err != nil {
			t.Fatal(err)
		}
		return a.Status.Targeted == 3 && apimeta.FindStatusCondition(a.Status.Conditions, controller.StatusFailure) == nil
	})
}

// waitFor waits up to a minute for cond.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("never: %s", what)
}

// TestBusRecorder records the same Events on the event stream, as the
// embedded store does: repeats are one log event counted up, not a flood,
// and every outcome is counted like the Kubernetes recorder's.
func TestBusRecorder(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bus := events.New(1024)
	counts := newEventCounts()
	rec, err := newBusRecorder(bus, "gw-test", counts, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	go rec.run(ctx)
	dev := &v1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Name: "flappy", UID: "uid-flappy"}}
	dev.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind(v1alpha1.KindDevice))
	for range 30 {
		rec.Eventf(dev, corev1.EventTypeWarning, "StatusWriteFailed", "the status could not be written: %s", "too large")
	}
	rec.Eventf(dev, corev1.EventTypeNormal, "Online", "session on gateway %s", "gw-test") // the stream says so already
	waitCounts(t, counts, map[string]float64{eventWritten: 1, eventAggregated: 24, eventFiltered: 5, eventDropped: 0})
	history, _ := bus.Subscribe(ctx, 0)
	var logs []api.Event
	for _, e := range history {
		if e.Type == api.EventLog {
			logs = append(logs, e)
		}
	}
	if len(logs) != 25 {
		t.Fatalf("%d log events, want 25 (one per Event written or counted again)", len(logs))
	}
	last := logs[len(logs)-1]
	if last.Kind != v1alpha1.KindDevice || last.Device != "flappy" || last.Level != corev1.EventTypeWarning ||
		last.Reason != "StatusWriteFailed" || last.Count != 25 || !strings.Contains(last.Message, "too large") {
		t.Errorf("last log event = %+v, want a Warning StatusWriteFailed on device flappy counted 25 times", last)
	}
}
