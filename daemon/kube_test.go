//go:build linux

package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon"
	"wasmbed.io/wasmbed/daemon/kubetest"
	"wasmbed.io/wasmbed/gateway/pki"
)

// These tests run daemons on the Kubernetes store against a real
// kube-apiserver (daemon/kubetest; `make kube-apiserver` builds it), as
// the wasmbedd ServiceAccount with only the RBAC of deploy/kubernetes,
// and drive them the way kubectl users do: resources created and read
// with client-go.

const kubeNS = "wasmbed"

var (
	devicesGVR      = kubetest.GVR(v1alpha1.Group, v1alpha1.Version, "devices")
	applicationsGVR = kubetest.GVR(v1alpha1.Group, v1alpha1.Version, "applications")
	gatewaysGVR     = kubetest.GVR(v1alpha1.Group, v1alpha1.Version, "gateways")
	serviceAccount  = kubetest.ServiceAccount(kubeNS, "wasmbedd")
)

// kubeCluster starts an API server with the namespace, the CRDs and the
// daemon's RBAC installed, and returns it with an admin client and a CA
// directory for the daemons to share.
func kubeCluster(t testing.TB) (c *kubetest.Cluster, dyn dynamic.Interface, caDir string) {
	t.Helper()
	c = kubetest.Start(t, serviceAccount)
	deploy := filepath.Join("..", "deploy", "kubernetes")
	kubetest.Apply(t, c.Admin(), filepath.Join(deploy, "namespace.yaml"))
	kubetest.InstallCRDs(t, c.Admin(), filepath.Join("..", "crds"))
	kubetest.Apply(t, c.Admin(), filepath.Join(deploy, "rbac.yaml"))
	c.WaitAllowed(t, serviceAccount, "list", "wasmbed.io", "devices", "wasmbed")
	caDir = filepath.Join(t.TempDir(), "ca")
	if _, err := pki.Open(caDir, pki.Options{}); err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(c.Admin())
	if err != nil {
		t.Fatal(err)
	}
	return c, dyn, caDir
}

// leads waits until the daemon in reports leader as the leader.
func leads(t *testing.T, in *instance, leader string) {
	t.Helper()
	eventually(t, in.name+" sees "+leader+" lead", func() (bool, error) {
		info, err := in.c.Info(context.Background())
		return info.Leader == leader, err
	})
}

// startKubeDaemon runs a daemon named gateway on the cluster's store, as
// the ServiceAccount.
func startKubeDaemon(t *testing.T, c *kubetest.Cluster, caDir, gateway string) *instance {
	return startDaemon(t, t.TempDir(), func(cfg *daemon.Config) {
		cfg.Store, cfg.Kube, cfg.Namespace, cfg.CADir = daemon.StoreKubernetes, c.Config(serviceAccount), kubeNS, caDir
		cfg.GatewayName = gateway
		cfg.GatewayHeartbeat = time.Second
		cfg.Lease = daemon.LeaseTimes{Duration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 250 * time.Millisecond}
	})
}

func kubeCreate(t testing.TB, dyn dynamic.Interface, gvr schema.GroupVersionResource, kind string, obj runtime.Object) {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion(v1alpha1.Group + "/" + v1alpha1.Version)
	u.SetKind(kind)
	u.SetNamespace(kubeNS)
	if _, err := dyn.Resource(gvr).Namespace(kubeNS).Create(context.Background(), u, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create %s %s: %v", kind, u.GetName(), err)
	}
}

// kubeGet reads a resource with client-go into out.
func kubeGet(dyn dynamic.Interface, gvr schema.GroupVersionResource, name string, out any) error {
	u, err := dyn.Resource(gvr).Namespace(kubeNS).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	return fromUnstructured(u.Object, out)
}

func fromUnstructured(obj map[string]any, out any) error {
	return runtime.DefaultUnstructuredConverter.FromUnstructured(obj, out)
}

func emulatedDevice(name, board, gateway string) *v1alpha1.Device {
	return &v1alpha1.Device{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"fleet": "kube"}},
		Spec: v1alpha1.DeviceSpec{Board: board, Gateway: gateway,
			Emulation: &v1alpha1.Emulation{Backend: "sim", Enabled: true}},
	}
}

func sensorApp(sha string) *v1alpha1.Application {
	return &v1alpha1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: "sensor"},
		Spec: v1alpha1.ApplicationSpec{
			Module: v1alpha1.ModuleRef{SHA256: sha}, Version: "1",
			Target:  v1alpha1.Target{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"fleet": "kube"}}},
			Rollout: v1alpha1.Rollout{BatchSize: 2},
			Limits:  v1alpha1.Limits{PeriodMillis: 100},
		},
	}
}

// deviceOn waits until the device is online on gateway, as its resource
// says.
func deviceOn(t *testing.T, dyn dynamic.Interface, name, gateway string) {
	t.Helper()
	eventually(t, name+" online on "+gateway, func() (bool, error) {
		var d v1alpha1.Device
		if err := kubeGet(dyn, devicesGVR, name, &d); err != nil {
			return false, err
		}
		return d.Status.Phase == v1alpha1.DeviceOnline && d.Status.Gateway == gateway,
			fmt.Errorf("%s on %q", d.Status.Phase, d.Status.Gateway)
	})
}

// appRunsOn waits until the Application is Running on as many devices as
// given, and each of them reports the app running.
func appRunsOn(t *testing.T, dyn dynamic.Interface, app string, devices ...string) {
	t.Helper()
	eventually(t, app+" running on "+fmt.Sprint(devices), func() (bool, error) {
		var a v1alpha1.Application
		if err := kubeGet(dyn, applicationsGVR, app, &a); err != nil {
			return false, err
		}
		if a.Status.Phase != v1alpha1.AppRunning || int(a.Status.Running) != len(devices) {
			return false, fmt.Errorf("phase %s, running on %d", a.Status.Phase, a.Status.Running)
		}
		for _, name := range devices {
			var d v1alpha1.Device
			if err := kubeGet(dyn, devicesGVR, name, &d); err != nil {
				return false, err
			}
			if i := slices.IndexFunc(d.Status.Apps, func(da v1alpha1.DeviceApp) bool { return da.Name == app }); i < 0 || d.Status.Apps[i].State != "running" {
				return false, fmt.Errorf("%s reports %+v", name, d.Status.Apps)
			}
		}
		return true, nil
	})
}

// eventReasons lists the reasons of the Events recorded on one object.
func eventReasons(t *testing.T, cfg *rest.Config, name string) []string {
	t.Helper()
	cs, err := corev1client.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	list, err := cs.Events(kubeNS).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		out = append(out, e.Reason)
	}
	return out
}

// hasEvents waits for events with the reasons on the named object.
func hasEvents(t *testing.T, cfg *rest.Config, name string, reasons ...string) {
	t.Helper()
	eventually(t, name+" has events "+fmt.Sprint(reasons), func() (bool, error) {
		got := eventReasons(t, cfg, name)
		for _, r := range reasons {
			if !slices.Contains(got, r) {
				return false, fmt.Errorf("events %v", got)
			}
		}
		return true, nil
	})
}

// table reads resources as kubectl get prints them: the server's Table
// rendering of the CRD's printer columns.
func table(t *testing.T, cfg *rest.Config, resource string) *metav1.Table {
	t.Helper()
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/apis/%s/%s/namespaces/%s/%s", cfg.Host, v1alpha1.Group, v1alpha1.Version, kubeNS, resource), nil)
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	req.Header.Set("Authorization", "Bearer "+cfg.BearerToken)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tab metav1.Table
	if err := json.NewDecoder(resp.Body).Decode(&tab); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("table of %s: %s, %v", resource, resp.Status, err)
	}
	return &tab
}

// cells maps each printed row's name to its cells by column name.
func cells(tab *metav1.Table) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, row := range tab.Rows {
		m := map[string]string{}
		for i, col := range tab.ColumnDefinitions {
			if i < len(row.Cells) {
				m[col.Name] = fmt.Sprint(row.Cells[i])
			}
		}
		out[m["Name"]] = m
	}
	return out
}

// TestKubeDaemon: one daemon on the Kubernetes store. Devices created with
// client-go come online and show in the daemon's API; a module uploaded
// through the API is a ConfigMap; an Application created with client-go
// rolls out with per-device status in the resource; kubectl's printer
// columns print; Events tell the story.
func TestKubeDaemon(t *testing.T) {
	c, dyn, caDir := kubeCluster(t)
	in := startKubeDaemon(t, c, caDir, "gw-a")
	ctx := context.Background()

	boards := map[string]string{"k-1": "mps2-an385", "k-2": "nrf52840-dk", "k-3": "stm32f746g-disco"}
	for name, board := range boards {
		kubeCreate(t, dyn, devicesGVR, v1alpha1.KindDevice, emulatedDevice(name, board, ""))
	}
	for name := range boards {
		deviceOn(t, dyn, name, "gw-a")
	}
	list, err := in.c.ListDevices(ctx, "fleet=kube")
	if err != nil || len(list.Items) != 3 {
		t.Fatalf("the daemon's API lists %v, %v; want the three devices", list, err)
	}
	info, err := in.c.Info(ctx)
	if err != nil || info.Store != "kubernetes" || info.Leader != "gw-a" {
		t.Errorf("Info = %+v, %v; want the kubernetes store led by gw-a", info, err)
	}

	mod, err := in.c.UploadModule(ctx, bytes.NewReader(readApp(t, "sensor.wasm")))
	if err != nil {
		t.Fatal(err)
	}
	cms, err := corev1client.NewForConfigOrDie(c.Admin()).ConfigMaps(kubeNS).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var stored bool
	for _, cm := range cms.Items {
		for _, data := range cm.BinaryData {
			stored = stored || int64(len(data)) == mod.Size
		}
	}
	if !stored {
		t.Errorf("no ConfigMap holds the %d-byte module; ConfigMaps: %d", mod.Size, len(cms.Items))
	}

	kubeCreate(t, dyn, applicationsGVR, v1alpha1.KindApplication, sensorApp(mod.SHA256))
	appRunsOn(t, dyn, "sensor", "k-1", "k-2", "k-3")

	devs := cells(table(t, c.Admin(), "devices"))
	for name, board := range boards {
		row := devs[name]
		if row["Board"] != board || row["Gateway"] != "gw-a" || row["Phase"] != "Online" || row["Apps"] != "1" || row["Last Seen"] == "" {
			t.Errorf("kubectl get devices prints %s as %v", name, row)
		}
	}
	apps := cells(table(t, c.Admin(), "applications"))
	if row := apps["sensor"]; row["Version"] != "1" || row["Phase"] != "Running" || row["Targeted"] != "3" || row["Running"] != "3" || row["Failed"] != "0" {
		t.Errorf("kubectl get applications prints sensor as %v", row)
	}
	eventually(t, "kubectl get gateways prints gw-a online with its 3 devices", func() (bool, error) {
		row := cells(table(t, c.Admin(), "gateways"))["gw-a"]
		return row["Online"] == "true" && row["Devices"] == "3", fmt.Errorf("row %v", row)
	})

	hasEvents(t, c.Admin(), "sensor", "RolloutStarted", "RolloutComplete")
	hasEvents(t, c.Admin(), "k-1", "Online")
}

// TestKubeFailover: two daemons on one cluster. They elect one leader;
// each gateway runs the devices placed on it, and the leader rolls an app
// out to devices on both gateways. When the leader stops, the other daemon
// takes over: it leads, the stopped gateway is offline, and its device is
// reassigned, comes online on the remaining gateway and runs the app again.
func TestKubeFailover(t *testing.T) {
	c, dyn, caDir := kubeCluster(t)
	ctx := context.Background()
	a := startKubeDaemon(t, c, caDir, "gw-a")
	leads(t, a, "gw-a")
	b := startKubeDaemon(t, c, caDir, "gw-b")
	leads(t, b, "gw-a")

	// f-1 names no gateway: the least loaded takes it (gw-a: none has a
	// device yet, and it comes first by name). f-2 asks for gw-b.
	kubeCreate(t, dyn, devicesGVR, v1alpha1.KindDevice, emulatedDevice("f-1", "mps2-an385", ""))
	kubeCreate(t, dyn, devicesGVR, v1alpha1.KindDevice, emulatedDevice("f-2", "nrf52840-dk", "gw-b"))
	deviceOn(t, dyn, "f-1", "gw-a")
	deviceOn(t, dyn, "f-2", "gw-b")

	mod, err := a.c.UploadModule(ctx, bytes.NewReader(readApp(t, "sensor.wasm")))
	if err != nil {
		t.Fatal(err)
	}
	kubeCreate(t, dyn, applicationsGVR, v1alpha1.KindApplication, sensorApp(mod.SHA256))
	// gw-a leads: it reaches f-2 through gw-b's daemon.
	appRunsOn(t, dyn, "sensor", "f-1", "f-2")

	// A token issued by gw-a's daemon enrolls a real device at gw-b's
	// gateway: tokens are on the Device, which both see.
	kubeCreate(t, dyn, devicesGVR, v1alpha1.KindDevice, &v1alpha1.Device{
		ObjectMeta: metav1.ObjectMeta{Name: "f-3"}, Spec: v1alpha1.DeviceSpec{Board: "mps2-an385", Gateway: "gw-b"},
	})
	tok, err := a.c.CreateToken(ctx, "f-3", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	actx, stopAgent := context.WithCancel(ctx)
	agentDone := enrollAgent(actx, t, b.c, tok.Token, "f-3", tok.CA)
	waitPhase(t, b.c, "f-3", v1alpha1.DeviceOnline)
	stopAgent()
	<-agentDone
	if err := b.c.DeleteDevice(ctx, "f-3"); err != nil {
		t.Fatal(err)
	}

	a.stop()
	leads(t, b, "gw-b")
	eventually(t, "gw-a is offline", func() (bool, error) {
		var gw v1alpha1.Gateway
		err := kubeGet(dyn, gatewaysGVR, "gw-a", &gw)
		return err == nil && !gw.Status.Online, err
	})
	deviceOn(t, dyn, "f-1", "gw-b")
	appRunsOn(t, dyn, "sensor", "f-1", "f-2")
	hasEvents(t, c.Admin(), "f-1", "Reassigned")
	list, err := b.c.ListDevices(ctx, "")
	if err != nil || len(list.Items) != 2 {
		t.Fatalf("gw-b's API lists %v, %v", list, err)
	}
}

// TestKubeDaemonForbidden: without the RoleBinding of deploy/kubernetes
// the ServiceAccount may not read the resources, and the daemon says so
// and stops instead of running blind.
func TestKubeDaemonForbidden(t *testing.T) {
	c := kubetest.Start(t, serviceAccount)
	kubetest.Apply(t, c.Admin(), filepath.Join("..", "deploy", "kubernetes", "namespace.yaml"))
	kubetest.InstallCRDs(t, c.Admin(), filepath.Join("..", "crds"))
	err := daemon.Run(context.Background(), daemon.Config{
		DataDir: t.TempDir(), APIListen: "127.0.0.1:0", GatewayListen: "127.0.0.1:0", GatewayName: "gw-a",
		Store: daemon.StoreKubernetes, Kube: c.Config(serviceAccount), Namespace: kubeNS,
	})
	if err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("Run without RBAC = %v, want a forbidden error", err)
	}
}

// TestKubeLeaderKilled: the leading daemon is a wasmbedd process that is
// killed outright (SIGKILL: no clean stop, no Gateway marked offline, no
// Lease released). Its board dies with it; the other daemon takes the
// Lease when it expires, sees the gateway fall silent, marks it offline
// and moves its device, which comes back online on the survivor.
func TestKubeLeaderKilled(t *testing.T) {
	c, dyn, caDir := kubeCluster(t)
	ctx := context.Background()
	dir := t.TempDir()
	bin := filepath.Join(dir, "wasmbedd")
	build := exec.Command("go", "build", "-o", bin, "./cmd/wasmbedd")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build wasmbedd: %v\n%s", err, out)
	}
	data := filepath.Join(dir, "data")
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--store=kubernetes", "--kubeconfig="+c.Kubeconfig(t, dir, serviceAccount),
		"--namespace="+kubeNS, "--ca-dir="+caDir, "--data-dir="+data, "--gateway-name=gw-k",
		"--api-listen=127.0.0.1:0", "--gateway-listen=127.0.0.1:0", "--device-binary="+deviceBinary,
		"--gateway-heartbeat=1s", "--lease-duration=3s")
	cmd.Stderr = &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("gw-k's log:\n%s", logs.String())
		}
	})
	leases := coordinationv1client.NewForConfigOrDie(c.Admin()).Leases(kubeNS)
	eventually(t, "gw-k holds the Lease", func() (bool, error) {
		l, err := leases.Get(ctx, daemon.LeaseName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == "gw-k", nil
	})
	a := startKubeDaemon(t, c, caDir, "gw-a")
	kubeCreate(t, dyn, devicesGVR, v1alpha1.KindDevice, emulatedDevice("k-1", "mps2-an385", ""))
	deviceOn(t, dyn, "k-1", "gw-k")
	// Every phase k-1 goes through from now on, as the API server has it.
	w, err := dyn.Resource(devicesGVR).Namespace(kubeNS).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=k-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	phases := make(chan v1alpha1.DevicePhase, 256)
	go func() {
		defer close(phases)
		for e := range w.ResultChan() {
			var d v1alpha1.Device
			if u, ok := e.Object.(*unstructured.Unstructured); ok && fromUnstructured(u.Object, &d) == nil {
				phases <- d.Status.Phase
			}
		}
	}()

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed = true
	eventually(t, "gw-k's board died with it", func() (bool, error) {
		pids := processesUnder(data)
		return len(pids) == 0, fmt.Errorf("processes still working in %s: %v", data, pids)
	})
	leads(t, a, "gw-a")
	deviceOn(t, dyn, "k-1", "gw-a")
	var gw v1alpha1.Gateway
	if err := kubeGet(dyn, gatewaysGVR, "gw-k", &gw); err != nil || gw.Status.Online {
		t.Errorf("gw-k is %+v, %v; want offline", gw.Status, err)
	}
	if c := meta.FindStatusCondition(gw.Status.Conditions, "Ready"); c == nil || c.Status != metav1.ConditionFalse || c.Reason != "HeartbeatMissed" {
		t.Errorf("gw-k's Ready condition is %+v, want False HeartbeatMissed", c)
	}
	hasEvents(t, c.Admin(), "gw-k", "GatewayOffline")
	hasEvents(t, c.Admin(), "k-1", "Reassigned")
	// Online on the dead gateway, k-1 was Unknown (not Online) until the
	// survivor had its session.
	w.Stop()
	var seen []v1alpha1.DevicePhase
	for p := range phases {
		seen = append(seen, p)
	}
	if i := slices.Index(seen, v1alpha1.DeviceUnknown); i < 0 || slices.Contains(seen[:i], v1alpha1.DeviceOffline) {
		t.Errorf("k-1 went through phases %v, want Unknown when its gateway was found dead", seen)
	}
}

// processesUnder lists the processes whose working directory is under dir.
func processesUnder(dir string) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd")); err == nil && strings.HasPrefix(cwd, dir) {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestKubeGitOps drives an Application the way a GitOps tool does, with
// server-side apply under a field manager of its own, on two daemons: a
// broken version is rolled back to the stable one with the spec left as
// applied, applying the same manifest again succeeds without a conflict
// and changes nothing, no other manager owns a field of the spec, and
// deleting the Application removes the app from the devices of both
// gateways.
func TestKubeGitOps(t *testing.T) {
	c, dyn, caDir := kubeCluster(t)
	ctx := context.Background()
	a := startKubeDaemon(t, c, caDir, "gw-a")
	leads(t, a, "gw-a")
	b := startKubeDaemon(t, c, caDir, "gw-b")
	kubeCreate(t, dyn, devicesGVR, v1alpha1.KindDevice, emulatedDevice("g-1", "mps2-an385", "gw-a"))
	kubeCreate(t, dyn, devicesGVR, v1alpha1.KindDevice, emulatedDevice("g-2", "mps2-an385", "gw-b"))
	deviceOn(t, dyn, "g-1", "gw-a")
	deviceOn(t, dyn, "g-2", "gw-b")

	good := uploadApp(t, a.c, "sensor.wasm")
	broken := uploadApp(t, b.c, "badimport.wasm")
	apply := func(sha, version string) *v1alpha1.Application {
		t.Helper()
		app := sensorApp(sha)
		app.Spec.Version = version
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(app)
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{Object: m}
		u.SetAPIVersion(v1alpha1.Group + "/" + v1alpha1.Version)
		u.SetKind(v1alpha1.KindApplication)
		u.SetNamespace(kubeNS)
		unstructured.RemoveNestedField(u.Object, "status")
		unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
		out, err := dyn.Resource(applicationsGVR).Namespace(kubeNS).Apply(ctx, "sensor", u, metav1.ApplyOptions{FieldManager: "gitops"})
		if err != nil {
			t.Fatalf("server-side apply of version %s: %v", version, err)
		}
		var got v1alpha1.Application
		if err := fromUnstructured(out.Object, &got); err != nil {
			t.Fatal(err)
		}
		return &got
	}
	apply(good, "1")
	appRunsOn(t, dyn, "sensor", "g-1", "g-2")

	applied := apply(broken, "2")
	eventually(t, "version 2 aborted, back on 1", func() (bool, error) {
		var app v1alpha1.Application
		if err := kubeGet(dyn, applicationsGVR, "sensor", &app); err != nil {
			return false, err
		}
		ab := app.Status.Aborted
		return ab != nil && ab.RolledBackTo == "1" && app.Status.Running == 2, fmt.Errorf("status %+v", app.Status)
	})
	again := apply(broken, "2")
	if again.Generation != applied.Generation || again.Spec.Version != "2" || again.Spec.Module.SHA256 != broken {
		t.Errorf("the same manifest applied again: generation %d -> %d, spec %s %s", applied.Generation, again.Generation, again.Spec.Version, again.Spec.Module.SHA256)
	}
	for _, mf := range again.ManagedFields {
		if mf.Manager != "gitops" && mf.Subresource == "" && mf.FieldsV1 != nil && strings.Contains(string(mf.FieldsV1.Raw), `"f:spec"`) {
			t.Errorf("manager %s owns spec fields: %s", mf.Manager, mf.FieldsV1.Raw)
		}
	}

	if err := dyn.Resource(applicationsGVR).Namespace(kubeNS).Delete(ctx, "sensor", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"g-1", "g-2"} {
		eventually(t, "sensor removed from "+name, func() (bool, error) {
			var d v1alpha1.Device
			if err := kubeGet(dyn, devicesGVR, name, &d); err != nil {
				return false, err
			}
			return len(d.Status.Apps) == 0, fmt.Errorf("apps %+v", d.Status.Apps)
		})
	}
}
