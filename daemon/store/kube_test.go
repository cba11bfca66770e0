package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	servertesting "k8s.io/apiextensions-apiserver/pkg/cmd/server/testing"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/kubetest"
)

// These tests run the Kubernetes store against a real API server in the
// test process: k8s.io/apiextensions-apiserver's test server on an
// embedded etcd. It serves CRDs and custom resources (with status
// subresources, validation and watch) but no core APIs, so the stores
// here get the embedded store's Modules: the ConfigMap modules need a
// full kube-apiserver and are left to a test that starts one.

// TestKubernetes starts one API server, installs the CRDs from crds/ and
// runs the shared suite and the Kubernetes-only checks, each in a
// namespace of its own (the test server has no namespace objects and no
// NamespaceLifecycle admission, so any name will do).
func TestKubernetes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an API server and etcd; skipped with -short")
	}
	cfg := startKubeServer(t)
	installCRDs(t, cfg)

	var seq atomic.Int64
	open := func(t *testing.T) *Kubernetes {
		t.Helper()
		ns := fmt.Sprintf("test-%d", seq.Add(1))
		emb := openTest(t)
		k, err := OpenKubernetes(cfg, ns, KubeOptions{Modules: emb.Modules()})
		if err != nil {
			t.Fatalf("OpenKubernetes: %v", err)
		}
		t.Cleanup(func() {
			if err := k.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return k
	}

	t.Run("suite", func(t *testing.T) {
		runStoreSuite(t, func(t *testing.T) Store { return open(t) }, suiteLoad{workers: 4, perWorker: 10})
	})
	t.Run("backend", func(t *testing.T) {
		if got := open(t).Backend(); got != "kubernetes" {
			t.Errorf("Backend() = %q, want kubernetes", got)
		}
	})
	t.Run("crd-validation", func(t *testing.T) { testKubeValidation(t, open(t)) })
	t.Run("namespaces", func(t *testing.T) { testKubeNamespaces(t, open(t), open(t)) })
	t.Run("watch-relist", func(t *testing.T) { testKubeWatchRelist(t, open(t)) })
	t.Run("cached", func(t *testing.T) { testKubeCached(t, open(t)) })
	t.Run("empty-namespace", func(t *testing.T) {
		k, err := OpenKubernetes(cfg, "", KubeOptions{})
		if err == nil {
			k.Close()
			t.Fatal("OpenKubernetes with an empty namespace succeeded")
		}
	})
}

// startKubeServer starts etcd and the apiextensions API server, stopped
// when t ends, and returns a client config for it. It skips t when either
// cannot start here.
func startKubeServer(t *testing.T) *rest.Config {
	t.Helper()
	etcdURL := kubetest.StartEtcd(t)

	// The server wants a kubeconfig for delegated authentication and
	// authorization even when told to skip the lookups; this one points
	// nowhere and is never used.
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	const fakeKubeconfig = `apiVersion: v1
kind: Config
clusters:
- cluster: {server: "http://127.0.0.1:1"}
  name: none
contexts:
- context: {cluster: none, user: none}
  name: none
current-context: none
users:
- name: none
  user: {token: none}
`
	if err := os.WriteFile(kubeconfig, []byte(fakeKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := servertesting.StartTestServer(t, nil, []string{
		"--etcd-servers", etcdURL,
		"--etcd-prefix", "/wasmbed-test",
		"--authentication-skip-lookup",
		"--authentication-kubeconfig", kubeconfig,
		"--authorization-kubeconfig", kubeconfig,
		"--kubeconfig", kubeconfig,
		// Admission and filters that would call a kube-apiserver.
		"--enable-priority-and-fairness=false",
		"--disable-admission-plugins", "NamespaceLifecycle,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy,MutatingAdmissionPolicy",
	}, nil)
	if err != nil {
		t.Skipf("apiextensions test server cannot start here: %v", err)
	}
	t.Cleanup(srv.TearDownFn)
	return srv.ClientConfig
}

// testKubeValidation checks that the CRD schema is enforced: a Device
// with a board outside the enum is refused, with no sentinel error (the
// name is fine) and the server's reason in the message.
func testKubeValidation(t *testing.T, k *Kubernetes) {
	ctx := t.Context()
	d := suiteDevice.newObj("bad-board")
	d.Spec.Board = "not-a-board"
	_, err := k.Devices().Create(ctx, d)
	if err == nil {
		t.Fatal("Create(Device with board not-a-board) succeeded, want the CRD's enum to refuse it")
	}
	for _, sentinel := range []error{ErrInvalidName, ErrAlreadyExists, ErrConflict, ErrNotFound} {
		if errors.Is(err, sentinel) {
			t.Errorf("Create(bad board) error = %v, want no %v", err, sentinel)
		}
	}
	if !strings.Contains(err.Error(), "spec.board") || !strings.HasPrefix(err.Error(), `create device "bad-board": `) {
		t.Errorf("Create(bad board) error = %q, want it to start with the operation and name spec.board", err)
	}
	if _, err := k.Devices().Get(ctx, "bad-board"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after refused Create error = %v, want ErrNotFound", err)
	}

	// A valid Device whose status breaks the schema is refused by
	// UpdateStatus the same way.
	ok, err := k.Devices().Create(ctx, suiteDevice.newObj("good"))
	if err != nil {
		t.Fatal(err)
	}
	ok.Status.Phase = "Exploded"
	if _, err := k.Devices().UpdateStatus(ctx, ok); err == nil || !strings.Contains(err.Error(), "status.phase") {
		t.Errorf("UpdateStatus(phase Exploded) error = %v, want one naming status.phase", err)
	}
}

// testKubeNamespaces checks that two stores in different namespaces do
// not see each other's objects.
func testKubeNamespaces(t *testing.T, a, b *Kubernetes) {
	ctx := t.Context()
	if _, err := a.Gateways().Create(ctx, suiteGateway.newObj("gw")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Gateways().Get(ctx, "gw"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get in the other namespace error = %v, want ErrNotFound", err)
	}
	if _, err := b.Gateways().Create(ctx, suiteGateway.newObj("gw")); err != nil {
		t.Errorf("Create of the same name in the other namespace: %v", err)
	}
	got, err := a.Gateways().Get(ctx, "gw")
	if err != nil {
		t.Fatal(err)
	}
	if got.Namespace != a.Namespace() {
		t.Errorf("Get namespace = %q, want %q", got.Namespace, a.Namespace())
	}
}

// testKubeWatchRelist starts a watch loop from a resourceVersion the
// server no longer has (as after an etcd compaction or a long outage),
// holding a state that differs from the server's: the loop must get 410
// Gone, list again, and send the difference, then carry on watching.
func testKubeWatchRelist(t *testing.T, k *Kubernetes) {
	ctx := t.Context()
	devs := k.devices
	stay, err := devs.Create(ctx, suiteDevice.newObj("stay"))
	if err != nil {
		t.Fatal(err)
	}
	changed, err := devs.Create(ctx, suiteDevice.newObj("changed"))
	if err != nil {
		t.Fatal(err)
	}
	ghost := suiteDevice.newObj("ghost")
	ghost.ResourceVersion = "1"
	old := changed.DeepCopy()
	changed.Spec.Board = "frdm-k64f"
	if _, err := devs.Update(ctx, changed); err != nil {
		t.Fatal(err)
	}
	added, err := devs.Create(ctx, suiteDevice.newObj("new"))
	if err != nil {
		t.Fatal(err)
	}

	// What the reader was last told: stay and changed as first created,
	// and ghost, which the server never had.
	known := map[string]*v1alpha1.Device{"stay": stay, "changed": old, "ghost": ghost}
	ch := make(chan Event[*v1alpha1.Device], 16)
	devs.startWatch(ctx, ch, known, "1")

	want := []struct {
		typ  EventType
		name string
	}{
		{Modified, "changed"},
		{Added, "new"},
		{Deleted, "ghost"},
	}
	for i, w := range want {
		ev := next(t, ch)
		if ev.Type != w.typ || ev.Object.Name != w.name {
			t.Errorf("relist event %d = %s %s, want %s %s", i, ev.Type, ev.Object.Name, w.typ, w.name)
		}
	}
	// The loop watches on from the fresh list.
	if err := devs.Delete(ctx, "new"); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, ch); ev.Type != Deleted || ev.Object.Name != "new" || ev.Object.UID != added.UID {
		t.Errorf("event after relist = %s %s, want DELETED new", ev.Type, ev.Object.Name)
	}
}

// TestKubeErrorMapping checks the mapping of API errors to the store's
// errors on errors built as the API server builds them.
func TestKubeErrorMapping(t *testing.T) {
	r := &kubeResource[*v1alpha1.Device]{noun: "device"}
	gr := schema.GroupResource{Group: v1alpha1.Group, Resource: "devices"}
	gk := schema.GroupKind{Group: v1alpha1.Group, Kind: v1alpha1.KindDevice}
	for _, tc := range []struct {
		name    string
		err     error
		want    error // nil: no sentinel
		wantMsg string
	}{
		{"not found", apierrors.NewNotFound(gr, "d"), ErrNotFound, `device "d": not found`},
		{"no such resource", apierrors.NewNotFound(gr, ""), nil, `get device "d": devices.wasmbed.io "" not found`},
		{"already exists", apierrors.NewAlreadyExists(gr, "d"), ErrAlreadyExists, `device "d": already exists`},
		{"conflict", apierrors.NewConflict(gr, "d", errors.New("changed")), ErrConflict, `device "d": ` + ErrConflict.Error()},
		{"invalid name", apierrors.NewInvalid(gk, "D", field.ErrorList{field.Invalid(field.NewPath("metadata", "name"), "D", "a lowercase RFC 1123 subdomain")}), ErrInvalidName, ""},
		{"invalid spec", apierrors.NewInvalid(gk, "d", field.ErrorList{field.NotSupported(field.NewPath("spec", "board"), "x", []string{"y"})}), nil, ""},
		{"other", errors.New("connection refused"), nil, `get device "d": connection refused`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := r.mapError("get", "d", tc.err)
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("mapError(%v) = %v, want %v", tc.err, err, tc.want)
			}
			if tc.want == nil {
				for _, s := range []error{ErrNotFound, ErrAlreadyExists, ErrConflict, ErrInvalidName} {
					if errors.Is(err, s) {
						t.Errorf("mapError(%v) = %v, want no sentinel", tc.err, err)
					}
				}
				if !errors.Is(err, tc.err) {
					t.Errorf("mapError(%v) = %v, want it wrapped", tc.err, err)
				}
			}
			if tc.wantMsg != "" && err.Error() != tc.wantMsg {
				t.Errorf("mapError(%v) = %q, want %q", tc.err, err, tc.wantMsg)
			}
			if tc.want == ErrInvalidName && !strings.Contains(err.Error(), "RFC 1123") {
				t.Errorf("mapError(invalid name) = %q, want the server's message in it", err)
			}
		})
	}
}

// TestModuleConfigMapName checks the ConfigMap naming of modules, the one
// part of the ConfigMap modules the in-process server can check without
// core APIs.
func TestModuleConfigMapName(t *testing.T) {
	sum := strings.Repeat("0123456789abcdef", 4)
	name := moduleConfigMapName(sum)
	if want := "wasmbed-module-" + sum[:40]; name != want {
		t.Errorf("moduleConfigMapName(%s) = %q, want %q", sum, name, want)
	}
	if len(name) > 63 || len(sum[:moduleLabelHexLen]) > 63 {
		t.Errorf("name %q or label value too long for Kubernetes", name)
	}
}

// testKubeCached: the informer-backed view reads what the store wrote
// once its watch has carried it, sends a watch replay and the changes in
// order, hands out copies, and a write from a stale read conflicts.
func testKubeCached(t *testing.T, k *Kubernetes) {
	ctx := t.Context()
	dev := func(name string) *v1alpha1.Device {
		return &v1alpha1.Device{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.DeviceSpec{Board: "mps2-an385"}}
	}
	if _, err := k.Devices().Create(ctx, dev("c-2")); err != nil {
		t.Fatal(err)
	}
	cv, err := k.Cached(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w, err := cv.Devices().Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	next := func() Event[*v1alpha1.Device] {
		t.Helper()
		select {
		case e := <-w:
			return e
		case <-time.After(30 * time.Second):
			t.Fatal("no watch event in 30s")
		}
		panic("unreachable")
	}
	if e := next(); e.Type != Added || e.Object.Name != "c-2" {
		t.Fatalf("replay = %s %s, want ADDED c-2", e.Type, e.Object.Name)
	}
	created, err := k.Devices().Create(ctx, dev("c-1"))
	if err != nil {
		t.Fatal(err)
	}
	if e := next(); e.Type != Added || e.Object.Name != "c-1" || e.Object.ResourceVersion != created.ResourceVersion {
		t.Fatalf("event = %s %s@%s, want ADDED c-1@%s", e.Type, e.Object.Name, e.Object.ResourceVersion, created.ResourceVersion)
	}
	// After its event the object reads at least that new.
	got, err := cv.Devices().Get(ctx, "c-1")
	if err != nil || got.ResourceVersion != created.ResourceVersion || got.Kind != v1alpha1.KindDevice {
		t.Fatalf("cached Get = %+v, %v", got, err)
	}
	got.Labels = map[string]string{"mutated": "yes"}
	if again, _ := cv.Devices().Get(ctx, "c-1"); again.Labels["mutated"] != "" {
		t.Error("a cached Get returned the cache's own object")
	}
	list, err := cv.Devices().List(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "c-1" || list[1].Name != "c-2" {
		t.Fatalf("cached List = %v, %v; want c-1, c-2", list, err)
	}

	// A write made from a stale copy conflicts, as with the store itself.
	stale := got.DeepCopy()
	created.Status.RTTMicros = 7
	if _, err := k.Devices().UpdateStatus(ctx, created); err != nil {
		t.Fatal(err)
	}
	if e := next(); e.Type != Modified || e.Object.Status.RTTMicros != 7 {
		t.Fatalf("event = %s rtt %d, want MODIFIED rtt 7", e.Type, e.Object.Status.RTTMicros)
	}
	stale.Status.RTTMicros = 9
	if _, err := cv.Devices().UpdateStatus(ctx, stale); !errors.Is(err, ErrConflict) {
		t.Errorf("UpdateStatus from a stale read = %v, want ErrConflict", err)
	}

	if err := k.Devices().Delete(ctx, "c-2"); err != nil {
		t.Fatal(err)
	}
	if e := next(); e.Type != Deleted || e.Object.Name != "c-2" {
		t.Fatalf("event = %s %s, want DELETED c-2", e.Type, e.Object.Name)
	}
	if _, err := cv.Devices().Get(ctx, "c-2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("cached Get after delete = %v, want ErrNotFound", err)
	}
	if _, err := cv.Devices().Get(ctx, "Bad/Name"); !errors.Is(err, ErrNotFound) {
		t.Errorf("cached Get of an invalid name = %v, want ErrNotFound", err)
	}
}

// installCRDs creates the CRDs in ../../crds and waits until each is
// established and its resource is served.
func installCRDs(t *testing.T, cfg *rest.Config) {
	t.Helper()
	ctx := t.Context()
	cs, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("..", "..", "crds", "wasmbed.io_*.yaml"))
	if err != nil || len(files) != 3 {
		t.Fatalf("CRD files = %v, %v; want 3", files, err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(data, &crd); err != nil {
			t.Fatalf("decode %s: %v", file, err)
		}
		if _, err := cs.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, &crd, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create CRD %s: %v", crd.Name, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, plural := range []string{"devices", "applications", "gateways"} {
		name := plural + "." + v1alpha1.Group
		for {
			crd, err := cs.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("get CRD %s: %v", name, err)
			}
			if established(crd) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("CRD %s not established after 30s: %+v", name, crd.Status.Conditions)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Established can come a moment before the handlers serve the
	// resources; OpenKubernetes checks that they do.
	for {
		k, err := OpenKubernetes(cfg, "default", KubeOptions{Modules: openTest(t).Modules()})
		if err == nil {
			k.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("custom resources not served after 30s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func established(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}
