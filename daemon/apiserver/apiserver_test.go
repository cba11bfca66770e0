package apiserver_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/api"
	"wasmbed.io/wasmbed/daemon/apiserver"
	"wasmbed.io/wasmbed/daemon/client"
	"wasmbed.io/wasmbed/daemon/controller"
	"wasmbed.io/wasmbed/docs"
	"wasmbed.io/wasmbed/gateway"
	"wasmbed.io/wasmbed/gateway/pki"
)

func TestDeviceCRUD(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()

	created, err := h.c.CreateDevice(ctx, device("dev-1", "nrf52840-dk", map[string]string{"room": "lab"}))
	if err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	if created.ResourceVersion == "" || created.UID == "" || created.Generation != 1 {
		t.Errorf("created metadata = %+v, want resourceVersion, uid and generation 1", created.ObjectMeta)
	}
	if created.Kind != v1alpha1.KindDevice || created.APIVersion != "wasmbed.io/v1alpha1" {
		t.Errorf("created type = %s %s, want wasmbed.io/v1alpha1 Device", created.APIVersion, created.Kind)
	}

	got, err := h.c.GetDevice(ctx, "dev-1")
	if err != nil {
		t.Fatalf("GetDevice: %v", err)
	}
	if got.Spec.Board != "nrf52840-dk" || got.Labels["room"] != "lab" || got.ResourceVersion != created.ResourceVersion {
		t.Errorf("GetDevice = %+v, want the created device", got)
	}

	_, err = h.c.CreateDevice(ctx, device("dev-1", "mps2-an385", nil))
	wantAPIError(t, "CreateDevice(duplicate)", err, api.ReasonAlreadyExists, http.StatusConflict)

	got.Spec.Gateway = "gw-1"
	got.Labels["tier"] = "edge"
	updated, err := h.c.UpdateDevice(ctx, got)
	if err != nil {
		t.Fatalf("UpdateDevice: %v", err)
	}
	if updated.Spec.Gateway != "gw-1" || updated.Labels["tier"] != "edge" || updated.Generation != 2 {
		t.Errorf("UpdateDevice = %+v, want gateway gw-1, label tier=edge, generation 2", updated)
	}

	// got still carries the old resourceVersion.
	got.Spec.Gateway = "gw-2"
	_, err = h.c.UpdateDevice(ctx, got)
	wantAPIError(t, "UpdateDevice(stale)", err, api.ReasonConflict, http.StatusConflict)
	if !errors.Is(err, &api.Error{Reason: api.ReasonConflict}) {
		t.Errorf("errors.Is(%v, Conflict) = false", err)
	}

	noVersion := updated.DeepCopy()
	noVersion.ResourceVersion = ""
	_, err = h.c.UpdateDevice(ctx, noVersion)
	if ae := wantAPIError(t, "UpdateDevice(no resourceVersion)", err, api.ReasonInvalid, http.StatusUnprocessableEntity); ae.Field != "metadata.resourceVersion" {
		t.Errorf("field = %q, want metadata.resourceVersion", ae.Field)
	}

	list, err := h.c.ListDevices(ctx, "")
	if err != nil {
		t.Fatalf("ListDevices: %v", err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "dev-1" || list.Kind != "DeviceList" {
		t.Errorf("ListDevices = %+v, want DeviceList of dev-1", list)
	}

	if err := h.c.DeleteDevice(ctx, "dev-1"); err != nil {
		t.Fatalf("DeleteDevice: %v", err)
	}
	_, err = h.c.GetDevice(ctx, "dev-1")
	wantAPIError(t, "GetDevice(deleted)", err, api.ReasonNotFound, http.StatusNotFound)
	if !errors.Is(err, &api.Error{Reason: api.ReasonNotFound}) {
		t.Errorf("errors.Is(%v, NotFound) = false", err)
	}
	err = h.c.DeleteDevice(ctx, "dev-1")
	wantAPIError(t, "DeleteDevice(deleted)", err, api.ReasonNotFound, http.StatusNotFound)

	list, err = h.c.ListDevices(ctx, "")
	if err != nil || list.Items == nil || len(list.Items) != 0 {
		t.Errorf("ListDevices(empty) = %+v, %v, want an empty, non-nil list", list, err)
	}
}

func TestUpdateNameMustMatchPath(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	dev, err := h.c.CreateDevice(ctx, device("dev-1", "nrf52840-dk", nil))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(dev)
	status, ae := h.raw(t, http.MethodPut, "/api/v1/devices/dev-2", "application/json", body)
	if status != http.StatusUnprocessableEntity || ae.Field != "metadata.name" {
		t.Errorf("PUT dev-1 at dev-2 = %d %+v, want 422 on metadata.name", status, ae)
	}
}

func TestListLabelSelector(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for _, d := range []*v1alpha1.Device{
		device("a", "nrf52840-dk", map[string]string{"room": "lab", "tier": "edge"}),
		device("b", "nrf52840-dk", map[string]string{"room": "lab"}),
		device("c", "esp32-devkitc", map[string]string{"room": "office"}),
		device("d", "esp32-devkitc", nil),
	} {
		if _, err := h.c.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		selector string
		want     string
	}{
		{"", "a b c d"},
		{"room=lab", "a b"},
		{"room in (lab,office),tier!=edge", "b c"},
		{"!room", "d"},
		{"room=cellar", ""},
	} {
		t.Run(tc.selector, func(t *testing.T) {
			list, err := h.c.ListDevices(ctx, tc.selector)
			if err != nil {
				t.Fatalf("ListDevices(%q): %v", tc.selector, err)
			}
			var names []string
			for _, d := range list.Items {
				names = append(names, d.Name)
			}
			if got := strings.Join(names, " "); got != tc.want {
				t.Errorf("ListDevices(%q) = %q, want %q", tc.selector, got, tc.want)
			}
		})
	}
	_, err := h.c.ListDevices(ctx, "room==(")
	if ae := wantAPIError(t, "ListDevices(bad selector)", err, api.ReasonBadRequest, http.StatusBadRequest); ae.Field != "labelSelector" {
		t.Errorf("field = %q, want labelSelector", ae.Field)
	}
}

func TestDeviceValidation(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		dev   *v1alpha1.Device
		field string
		msg   []string // substrings of the message
	}{
		{"unknown board", device("d1", "pdp-11", nil), "spec.board", []string{"pdp-11", "nrf52840-dk", "esp32-devkitc", "mps2-an385"}},
		{"no board", device("d1", "", nil), "spec.board", []string{"required"}},
		{"name not a DNS label", device("Dev_1", "nrf52840-dk", nil), "metadata.name", []string{"Dev_1"}},
		{"no name", device("", "nrf52840-dk", nil), "metadata.name", nil},
		{"bad label", device("d1", "nrf52840-dk", map[string]string{"room": "lab/1"}), "metadata.labels", nil},
		{"bad gateway", device("d1", "nrf52840-dk", nil), "spec.gateway", nil},
		{"unknown backend", device("d1", "nrf52840-dk", nil), "spec.emulation.backend", []string{"vmware", "sim, docker, renode, qemu"}},
		{"backend the board lacks", device("d1", "esp32-devkitc", nil), "spec.emulation.backend", []string{"sim, docker"}},
		{"negative memory", device("d1", "nrf52840-dk", nil), "spec.emulation.memoryMiB", nil},
		{"resourceVersion on create", device("d1", "nrf52840-dk", nil), "metadata.resourceVersion", nil},
		{"wrong kind", device("d1", "nrf52840-dk", nil), "kind", []string{"Gateway"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			switch tc.name {
			case "bad gateway":
				tc.dev.Spec.Gateway = "Gate way"
			case "unknown backend":
				tc.dev.Spec.Emulation = &v1alpha1.Emulation{Backend: "vmware"}
			case "backend the board lacks":
				tc.dev.Spec.Emulation = &v1alpha1.Emulation{Backend: "renode"}
			case "negative memory":
				tc.dev.Spec.Emulation = &v1alpha1.Emulation{MemoryMiB: -1}
			case "resourceVersion on create":
				tc.dev.ResourceVersion = "12"
			case "wrong kind":
				tc.dev.Kind = "Gateway"
			}
			_, err := h.c.CreateDevice(ctx, tc.dev)
			ae := wantAPIError(t, "CreateDevice", err, api.ReasonInvalid, http.StatusUnprocessableEntity)
			if ae.Field != tc.field {
				t.Errorf("field = %q, want %q (%v)", ae.Field, tc.field, ae)
			}
			for _, s := range tc.msg {
				if !strings.Contains(ae.Message, s) {
					t.Errorf("message %q does not contain %q", ae.Message, s)
				}
			}
		})
	}
	list, err := h.c.ListDevices(ctx, "")
	if err != nil || len(list.Items) != 0 {
		t.Errorf("ListDevices after refused creates = %d items, %v; want none", len(list.Items), err)
	}
}

func TestDefaultBackend(t *testing.T) {
	h := newHarness(t)
	dev := device("d1", "nrf52840-dk", nil)
	dev.Spec.Emulation = &v1alpha1.Emulation{Enabled: true}
	out, err := h.c.CreateDevice(context.Background(), dev)
	if err != nil {
		t.Fatal(err)
	}
	if out.Spec.Emulation.Backend != "sim" {
		t.Errorf("backend = %q, want the default sim", out.Spec.Emulation.Backend)
	}
}

func TestBadBodies(t *testing.T) {
	h := newHarness(t)
	valid := `{"metadata":{"name":"d1"},"spec":{"board":"nrf52840-dk"}}`
	huge := `{"metadata":{"name":"d1","annotations":{"a":"` + strings.Repeat("x", 1<<20) + `"}},"spec":{"board":"nrf52840-dk"}}`
	for _, tc := range []struct {
		name   string
		path   string
		body   string
		status int
		reason api.Reason
		field  string
	}{
		{"malformed", "/api/v1/devices", `{"metadata":{"name":"d1"},`, 400, api.ReasonBadRequest, ""},
		{"not an object", "/api/v1/devices", `[1,2]`, 400, api.ReasonBadRequest, ""},
		{"syntax", "/api/v1/devices", `{"metadata":}`, 400, api.ReasonBadRequest, ""},
		{"unknown field", "/api/v1/devices", `{"metadata":{"name":"d1"},"spec":{"board":"nrf52840-dk","colour":"red"}}`, 400, api.ReasonBadRequest, "colour"},
		{"wrong type", "/api/v1/devices", `{"metadata":{"name":"d1"},"spec":{"board":7}}`, 400, api.ReasonBadRequest, "spec.board"},
		{"trailing garbage", "/api/v1/devices", valid + `}x`, 400, api.ReasonBadRequest, ""},
		{"second value", "/api/v1/devices", valid + valid, 400, api.ReasonBadRequest, ""},
		{"empty", "/api/v1/devices", ``, 400, api.ReasonBadRequest, ""},
		{"oversize", "/api/v1/devices", huge, 413, api.ReasonTooLarge, ""},
		{"application unknown field", "/api/v1/applications", `{"metadata":{"name":"a"},"spec":{"image":"x"}}`, 400, api.ReasonBadRequest, "image"},
		{"gateway trailing", "/api/v1/gateways", `{"metadata":{"name":"g"},"spec":{"endpoint":"h:1"}} 1`, 400, api.ReasonBadRequest, ""},
		{"token unknown field", "/api/v1/devices/d1/token", `{"ttl":5}`, 400, api.ReasonBadRequest, "ttl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, ae := h.raw(t, http.MethodPost, tc.path, "application/json", []byte(tc.body))
			if status != tc.status || ae == nil || ae.Reason != tc.reason || ae.Field != tc.field {
				t.Errorf("POST %s %s = %d %+v, want %d %s field %q", tc.path, tc.name, status, ae, tc.status, tc.reason, tc.field)
			}
		})
	}
	// Trailing white space is no trailing data.
	if status, ae := h.raw(t, http.MethodPost, "/api/v1/devices", "application/json", []byte(valid+"\n\t ")); status != http.StatusCreated {
		t.Errorf("POST with trailing newline = %d %+v, want 201", status, ae)
	}
}

// TestNameErrorsNameTheirKind: a bad name is described with the kind of
// object it names.
func TestNameErrorsNameTheirKind(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct{ path, body, want string }{
		{"/api/v1/devices", `{"metadata":{"name":"Bad_Name"},"spec":{"board":"nrf52840-dk"}}`, `device name "Bad_Name"`},
		{"/api/v1/applications", `{"metadata":{"name":"App_1"},"spec":{"module":{"sha256":"` + strings.Repeat("ab", 32) + `"},"version":"1","target":{"devices":["d1"]}}}`, `application name "App_1"`},
		{"/api/v1/gateways", `{"metadata":{"name":"Gw_1"},"spec":{"endpoint":"h:1"}}`, `gateway name "Gw_1"`},
	} {
		status, ae := h.raw(t, http.MethodPost, tc.path, "application/json", []byte(tc.body))
		if status != http.StatusUnprocessableEntity || ae == nil || !strings.HasPrefix(ae.Message, tc.want) {
			t.Errorf("POST %s = %d %+v, want 422 starting %q", tc.path, status, ae, tc.want)
		}
	}
}

// TestMalformedQuery: a query string that does not parse is refused, not
// read as no query (a mistyped selector must not list everything).
func TestMalformedQuery(t *testing.T) {
	h := newHarness(t)
	for _, q := range []string{"labelSelector=demo=true;x", "labelSelector=demo%zz", "after=%zz"} {
		path := "/api/v1/devices?" + q
		if strings.HasPrefix(q, "after") {
			path = "/api/v1/events?" + q
		}
		status, ae := h.raw(t, http.MethodGet, path, "", nil)
		if status != http.StatusBadRequest || ae == nil || !strings.Contains(ae.Message, "malformed query string") {
			t.Errorf("GET %s = %d %+v, want 400 malformed query string", path, status, ae)
		}
	}
}

// TestModuleTruncated sends a module upload that ends before its
// Content-Length: the client's fault, answered 400, and nothing stored.
func TestModuleTruncated(t *testing.T) {
	h := newHarness(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/v1/modules HTTP/1.1\r\nHost: x\r\nContent-Type: application/wasm\r\nContent-Length: 100000\r\n\r\n\x00asm\x01\x00\x00\x00")
	conn.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body api.ErrorBody
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body.Error.Message, "read the module") {
		t.Errorf("truncated upload = %d %+v, want 400 read the module", resp.StatusCode, body.Error)
	}
	if mods, err := h.c.ListModules(context.Background()); err != nil || len(mods) != 0 {
		t.Errorf("modules after a truncated upload = %v, %v; want none", mods, err)
	}
}

func TestUnknownRouteAndMethod(t *testing.T) {
	h := newHarness(t)
	status, ae := h.raw(t, http.MethodGet, "/api/v1/toasters", "", nil)
	if status != http.StatusNotFound || ae.Reason != api.ReasonNotFound {
		t.Errorf("GET /api/v1/toasters = %d %+v, want 404 NotFound", status, ae)
	}
	req, _ := http.NewRequest(http.MethodPatch, h.url+"/api/v1/devices", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(resp.Header.Get("Allow"), "POST") || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("PATCH /api/v1/devices = %d, Allow %q, Content-Type %q; want 405 JSON with Allow listing POST", resp.StatusCode, resp.Header.Get("Allow"), resp.Header.Get("Content-Type"))
	}
}

func TestEmulation(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.c.CreateDevice(ctx, device("d1", "nrf52840-dk", nil)); err != nil {
		t.Fatal(err)
	}
	dev, err := h.c.StartEmulation(ctx, "d1")
	if err != nil {
		t.Fatalf("StartEmulation: %v", err)
	}
	if e := dev.Spec.Emulation; e == nil || e.Backend != "sim" || !e.Enabled {
		t.Errorf("after start, emulation = %+v, want {sim, enabled}", e)
	}
	dev, err = h.c.StopEmulation(ctx, "d1")
	if err != nil {
		t.Fatalf("StopEmulation: %v", err)
	}
	if e := dev.Spec.Emulation; e == nil || e.Backend != "sim" || e.Enabled {
		t.Errorf("after stop, emulation = %+v, want {sim, disabled}", e)
	}
	again, err := h.c.StopEmulation(ctx, "d1")
	if err != nil || again.ResourceVersion != dev.ResourceVersion {
		t.Errorf("second StopEmulation = rv %s, %v; want no write (rv %s)", again.ResourceVersion, err, dev.ResourceVersion)
	}
	// A renode board stays on renode.
	dev.Spec.Emulation.Backend = "renode"
	if dev, err = h.c.UpdateDevice(ctx, dev); err != nil {
		t.Fatal(err)
	}
	if dev, err = h.c.StartEmulation(ctx, "d1"); err != nil || dev.Spec.Emulation.Backend != "renode" || !dev.Spec.Emulation.Enabled {
		t.Errorf("StartEmulation(renode) = %+v, %v", dev.Spec.Emulation, err)
	}
	_, err = h.c.StartEmulation(ctx, "nope")
	wantAPIError(t, "StartEmulation(missing)", err, api.ReasonNotFound, http.StatusNotFound)
}

func TestModules(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	sensor := wasm(t, "sensor.wasm")
	sum := sha256.Sum256(sensor)

	m, err := h.c.UploadModule(ctx, bytes.NewReader(sensor))
	if err != nil {
		t.Fatalf("UploadModule: %v", err)
	}
	if m.SHA256 != hex.EncodeToString(sum[:]) || m.Size != int64(len(sensor)) || m.Added.IsZero() {
		t.Errorf("UploadModule = %+v, want sha256 %x, size %d", m, sum, len(sensor))
	}
	again, err := h.c.UploadModule(ctx, bytes.NewReader(sensor))
	if err != nil || again.SHA256 != m.SHA256 {
		t.Errorf("second UploadModule = %+v, %v; want the same module", again, err)
	}
	data, err := h.c.GetModule(ctx, m.SHA256)
	if err != nil || !bytes.Equal(data, sensor) {
		t.Errorf("GetModule = %d bytes, %v; want the uploaded %d", len(data), err, len(sensor))
	}
	mods, err := h.c.ListModules(ctx)
	if err != nil || len(mods) != 1 || mods[0].SHA256 != m.SHA256 {
		t.Errorf("ListModules = %+v, %v; want the one module", mods, err)
	}

	_, err = h.c.UploadModule(ctx, strings.NewReader("#!/bin/sh\necho hi\n"))
	if ae := wantAPIError(t, "UploadModule(script)", err, api.ReasonInvalid, http.StatusUnprocessableEntity); !strings.Contains(ae.Message, "not a WebAssembly module") {
		t.Errorf("message %q does not say it is not a WebAssembly module", ae.Message)
	}
	_, err = h.c.UploadModule(ctx, strings.NewReader("\x00as"))
	wantAPIError(t, "UploadModule(short)", err, api.ReasonInvalid, http.StatusUnprocessableEntity)

	status, ae := h.raw(t, http.MethodPost, "/api/v1/modules", "application/x-www-form-urlencoded", sensor)
	if status != http.StatusUnsupportedMediaType || ae.Reason != api.ReasonUnsupported {
		t.Errorf("upload as a form = %d %+v, want 415 Unsupported", status, ae)
	}
	if status, _ := h.raw(t, http.MethodPost, "/api/v1/modules", "application/octet-stream", sensor); status != http.StatusCreated {
		t.Errorf("upload as application/octet-stream = %d, want 201", status)
	}

	if _, err := h.c.CreateApplication(ctx, application("app-1", m.SHA256, "1.0.0", "d1")); err != nil {
		t.Fatal(err)
	}
	err = h.c.DeleteModule(ctx, m.SHA256)
	if ae := wantAPIError(t, "DeleteModule(in use)", err, api.ReasonConflict, http.StatusConflict); !strings.Contains(ae.Message, "app-1") {
		t.Errorf("message %q does not name app-1", ae.Message)
	}
	if err := h.c.DeleteApplication(ctx, "app-1"); err != nil {
		t.Fatal(err)
	}
	if err := h.c.DeleteModule(ctx, m.SHA256); err != nil {
		t.Fatalf("DeleteModule: %v", err)
	}
	_, err = h.c.GetModule(ctx, m.SHA256)
	wantAPIError(t, "GetModule(deleted)", err, api.ReasonNotFound, http.StatusNotFound)
	_, err = h.c.GetModule(ctx, "../../etc/passwd")
	wantAPIError(t, "GetModule(not a sha256)", err, api.ReasonNotFound, http.StatusNotFound)
	err = h.c.DeleteModule(ctx, m.SHA256)
	wantAPIError(t, "DeleteModule(deleted)", err, api.ReasonNotFound, http.StatusNotFound)
}

func TestModuleTooLarge(t *testing.T) {
	h := newHarness(t, func(d *apiserver.Deps) { d.MaxModule = 64 << 10 })
	ctx := context.Background()
	big := append(bytes.Clone([]byte("\x00asm\x01\x00\x00\x00")), make([]byte, 1<<20)...)

	// Length known up front: refused before the body is read.
	_, err := h.c.UploadModule(ctx, bytes.NewReader(big))
	wantAPIError(t, "UploadModule(1 MiB, known length)", err, api.ReasonTooLarge, http.StatusRequestEntityTooLarge)
	// Length unknown (chunked): refused while reading.
	_, err = h.c.UploadModule(ctx, io.MultiReader(bytes.NewReader(big[:1000]), bytes.NewReader(big[1000:])))
	wantAPIError(t, "UploadModule(1 MiB, chunked)", err, api.ReasonTooLarge, http.StatusRequestEntityTooLarge)

	mods, err := h.c.ListModules(ctx)
	if err != nil || len(mods) != 0 {
		t.Errorf("ListModules after refused uploads = %+v, %v; want none", mods, err)
	}
	if _, err := h.c.UploadModule(ctx, bytes.NewReader(wasm(t, "sensor.wasm"))); err != nil {
		t.Errorf("UploadModule(small) after refusals: %v", err)
	}
}

func TestApplicationCRUD(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	sensor := wasm(t, "sensor.wasm")
	m, err := h.c.UploadModule(ctx, bytes.NewReader(sensor))
	if err != nil {
		t.Fatal(err)
	}

	app := application("sensor", m.SHA256, "1.0.0", "d1", "d2")
	app.Labels = map[string]string{"team": "env"}
	app.Spec.Rollout = v1alpha1.Rollout{BatchPercent: 50, MaxFailures: 1}
	created, err := h.c.CreateApplication(ctx, app)
	if err != nil {
		t.Fatalf("CreateApplication: %v", err)
	}
	if created.Spec.Module.Size != int64(len(sensor)) {
		t.Errorf("spec.module.size = %d, want it filled in as %d", created.Spec.Module.Size, len(sensor))
	}
	_, err = h.c.CreateApplication(ctx, app)
	wantAPIError(t, "CreateApplication(duplicate)", err, api.ReasonAlreadyExists, http.StatusConflict)

	got, err := h.c.GetApplication(ctx, "sensor")
	if err != nil || got.Spec.Version != "1.0.0" {
		t.Fatalf("GetApplication = %+v, %v", got, err)
	}
	got.Spec.Paused = true
	updated, err := h.c.UpdateApplication(ctx, got)
	if err != nil || !updated.Spec.Paused {
		t.Fatalf("UpdateApplication = %+v, %v", updated, err)
	}
	_, err = h.c.UpdateApplication(ctx, got)
	wantAPIError(t, "UpdateApplication(stale)", err, api.ReasonConflict, http.StatusConflict)

	list, err := h.c.ListApplications(ctx, "team=env")
	if err != nil || len(list.Items) != 1 {
		t.Errorf("ListApplications(team=env) = %+v, %v", list, err)
	}
	list, err = h.c.ListApplications(ctx, "team=ops")
	if err != nil || len(list.Items) != 0 {
		t.Errorf("ListApplications(team=ops) = %+v, %v", list, err)
	}
	if err := h.c.DeleteApplication(ctx, "sensor"); err != nil {
		t.Fatal(err)
	}
	_, err = h.c.GetApplication(ctx, "sensor")
	wantAPIError(t, "GetApplication(deleted)", err, api.ReasonNotFound, http.StatusNotFound)
}

func TestApplicationValidation(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	m, err := h.c.UploadModule(ctx, bytes.NewReader(wasm(t, "sensor.wasm")))
	if err != nil {
		t.Fatal(err)
	}
	missing := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name  string
		edit  func(*v1alpha1.Application)
		field string
	}{
		{"module not uploaded", func(a *v1alpha1.Application) { a.Spec.Module.SHA256 = missing }, "spec.module.sha256"},
		{"module not a sha256", func(a *v1alpha1.Application) { a.Spec.Module.SHA256 = "sensor.wasm" }, "spec.module.sha256"},
		{"no module", func(a *v1alpha1.Application) { a.Spec.Module.SHA256 = "" }, "spec.module.sha256"},
		{"wrong size", func(a *v1alpha1.Application) { a.Spec.Module.Size = 3 }, "spec.module.size"},
		{"no version", func(a *v1alpha1.Application) { a.Spec.Version = " " }, "spec.version"},
		{"no target", func(a *v1alpha1.Application) { a.Spec.Target = v1alpha1.Target{} }, "spec.target"},
		{"bad device", func(a *v1alpha1.Application) { a.Spec.Target.Devices = []string{"ok", "Not OK"} }, "spec.target.devices[1]"},
		{"bad selector", func(a *v1alpha1.Application) {
			a.Spec.Target.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "room", Operator: "Near"}}}
		}, "spec.target.selector.matchExpressions[0].operator"},
		{"negative batch", func(a *v1alpha1.Application) { a.Spec.Rollout.BatchSize = -1 }, "spec.rollout.batchSize"},
		{"percent over 100", func(a *v1alpha1.Application) { a.Spec.Rollout.BatchPercent = 101 }, "spec.rollout.batchPercent"},
		{"negative limit", func(a *v1alpha1.Application) { a.Spec.Limits.CallTimeoutMillis = -5 }, "spec.limits.callTimeoutMillis"},
		{"health gate without a metric", func(a *v1alpha1.Application) {
			a.Spec.Rollout.HealthySeconds, a.Spec.Rollout.Health = 5, &v1alpha1.HealthGate{Max: quantity("1")}
		}, "spec.rollout.health.metric"},
		{"health gate without bounds", func(a *v1alpha1.Application) {
			a.Spec.Rollout.HealthySeconds, a.Spec.Rollout.Health = 5, &v1alpha1.HealthGate{Metric: "t"}
		}, "spec.rollout.health"},
		{"health gate min above max", func(a *v1alpha1.Application) {
			a.Spec.Rollout.HealthySeconds, a.Spec.Rollout.Health = 5, &v1alpha1.HealthGate{Metric: "t", Min: quantity("2"), Max: quantity("1")}
		}, "spec.rollout.health.min"},
		{"health gate with no window", func(a *v1alpha1.Application) {
			a.Spec.Rollout.Health = &v1alpha1.HealthGate{Metric: "t", Max: quantity("1")}
		}, "spec.rollout.healthySeconds"},
		{"bad name", func(a *v1alpha1.Application) { a.Name = "Sensor" }, "metadata.name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := application("sensor", m.SHA256, "1.0.0", "d1")
			tc.edit(app)
			_, err := h.c.CreateApplication(ctx, app)
			ae := wantAPIError(t, "CreateApplication", err, api.ReasonInvalid, http.StatusUnprocessableEntity)
			if ae.Field != tc.field {
				t.Errorf("field = %q, want %q (%v)", ae.Field, tc.field, ae)
			}
		})
	}
	// A selector alone is a target.
	app := application("by-label", m.SHA256, "1.0.0")
	app.Spec.Target.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"room": "lab"}}
	if _, err := h.c.CreateApplication(ctx, app); err != nil {
		t.Errorf("CreateApplication(selector only): %v", err)
	}
}

func TestApplicationActions(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	m, err := h.c.UploadModule(ctx, bytes.NewReader(wasm(t, "sensor.wasm")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.CreateApplication(ctx, application("sensor", m.SHA256, "1.0.0", "d1")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name          string
		do            func(context.Context, string) (*v1alpha1.Application, error)
		paused, stopd bool
	}{
		{"pause", h.c.PauseApplication, true, false},
		{"pause again", h.c.PauseApplication, true, false},
		{"stop", h.c.StopApplication, true, true},
		{"resume", h.c.ResumeApplication, false, true},
		{"start", h.c.StartApplication, false, false},
	} {
		app, err := tc.do(ctx, "sensor")
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		stored, err := h.c.GetApplication(ctx, "sensor")
		if err != nil {
			t.Fatal(err)
		}
		if app.Spec.Paused != tc.paused || app.Spec.Stopped != tc.stopd || stored.Spec.Paused != tc.paused || stored.Spec.Stopped != tc.stopd {
			t.Errorf("after %s: answer paused=%v stopped=%v, stored paused=%v stopped=%v; want %v %v",
				tc.name, app.Spec.Paused, app.Spec.Stopped, stored.Spec.Paused, stored.Spec.Stopped, tc.paused, tc.stopd)
		}
	}
	_, err = h.c.PauseApplication(ctx, "nope")
	wantAPIError(t, "PauseApplication(missing)", err, api.ReasonNotFound, http.StatusNotFound)
}

func TestRollback(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	v1, err := h.c.UploadModule(ctx, bytes.NewReader(wasm(t, "sensor.wasm")))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := h.c.UploadModule(ctx, bytes.NewReader(wasm(t, "sensor-v2.wasm")))
	if err != nil {
		t.Fatal(err)
	}
	app, err := h.c.CreateApplication(ctx, application("sensor", v1.SHA256, "1.0.0", "d1"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.c.RollbackApplication(ctx, "sensor")
	if ae := wantAPIError(t, "RollbackApplication(no history)", err, api.ReasonInvalid, http.StatusUnprocessableEntity); !strings.Contains(ae.Message, "no revision before") {
		t.Errorf("message %q does not say there is no earlier revision", ae.Message)
	}

	// What the controller records as it rolls out 1.0.0 then 2.0.0.
	app.Spec.Module = v1alpha1.ModuleRef{SHA256: v2.SHA256}
	app.Spec.Version = "2.0.0"
	if app, err = h.c.UpdateApplication(ctx, app); err != nil {
		t.Fatal(err)
	}
	stored, err := h.store.Applications().Get(ctx, "sensor")
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	stored.Status.History = []v1alpha1.Revision{
		{Version: "1.0.0", Module: v1alpha1.ModuleRef{SHA256: v1.SHA256, Size: v1.Size}, Time: now},
		{Version: "2.0.0", Module: v1alpha1.ModuleRef{SHA256: v2.SHA256, Size: v2.Size}, Time: now},
	}
	if _, err := h.store.Applications().UpdateStatus(ctx, stored); err != nil {
		t.Fatal(err)
	}

	back, err := h.c.RollbackApplication(ctx, "sensor")
	if err != nil {
		t.Fatalf("RollbackApplication: %v", err)
	}
	if back.Spec.Version != "1.0.0" || back.Spec.Module.SHA256 != v1.SHA256 || back.Spec.Module.Size != v1.Size {
		t.Errorf("after rollback spec = %s %+v, want 1.0.0 %s", back.Spec.Version, back.Spec.Module, v1.SHA256)
	}
	_, err = h.c.RollbackApplication(ctx, "sensor")
	wantAPIError(t, "RollbackApplication(at the oldest)", err, api.ReasonInvalid, http.StatusUnprocessableEntity)

	// A version not rolled out yet goes back to the newest in the history.
	back.Spec.Version = "3.0.0-rc1"
	if _, err := h.c.UpdateApplication(ctx, back); err != nil {
		t.Fatal(err)
	}
	back, err = h.c.RollbackApplication(ctx, "sensor")
	if err != nil || back.Spec.Version != "2.0.0" || back.Spec.Module.SHA256 != v2.SHA256 {
		t.Errorf("rollback from an unreleased version = %+v, %v; want 2.0.0", back.Spec, err)
	}
}

func TestGatewayCRUD(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	gw := &v1alpha1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "gw-1"}, Spec: v1alpha1.GatewaySpec{Endpoint: "10.0.0.2:4423", Capacity: 100}}
	created, err := h.c.CreateGateway(ctx, gw)
	if err != nil {
		t.Fatalf("CreateGateway: %v", err)
	}
	_, err = h.c.CreateGateway(ctx, gw)
	wantAPIError(t, "CreateGateway(duplicate)", err, api.ReasonAlreadyExists, http.StatusConflict)
	for _, ep := range []string{"", "gw.local", ":4423", "gw.local:0", "gw.local:http", "gw.local:70000"} {
		bad := gw.DeepCopy()
		bad.Name = "gw-bad"
		bad.Spec.Endpoint = ep
		_, err := h.c.CreateGateway(ctx, bad)
		if ae := wantAPIError(t, "CreateGateway(endpoint "+ep+")", err, api.ReasonInvalid, http.StatusUnprocessableEntity); ae.Field != "spec.endpoint" {
			t.Errorf("endpoint %q: field = %q, want spec.endpoint", ep, ae.Field)
		}
	}
	created.Spec.Endpoint = "[::1]:4423"
	updated, err := h.c.UpdateGateway(ctx, created)
	if err != nil || updated.Spec.Endpoint != "[::1]:4423" {
		t.Fatalf("UpdateGateway = %+v, %v", updated, err)
	}
	_, err = h.c.UpdateGateway(ctx, created)
	wantAPIError(t, "UpdateGateway(stale)", err, api.ReasonConflict, http.StatusConflict)
	got, err := h.c.GetGateway(ctx, "gw-1")
	if err != nil || got.Spec.Capacity != 100 {
		t.Errorf("GetGateway = %+v, %v", got, err)
	}
	list, err := h.c.ListGateways(ctx, "")
	if err != nil || len(list.Items) != 1 || list.Kind != "GatewayList" {
		t.Errorf("ListGateways = %+v, %v", list, err)
	}
	if err := h.c.DeleteGateway(ctx, "gw-1"); err != nil {
		t.Fatal(err)
	}
	_, err = h.c.GetGateway(ctx, "gw-1")
	wantAPIError(t, "GetGateway(deleted)", err, api.ReasonNotFound, http.StatusNotFound)
}

func TestToken(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	_, err := h.c.CreateToken(ctx, "d1", 0)
	wantAPIError(t, "CreateToken(missing device)", err, api.ReasonNotFound, http.StatusNotFound)
	if _, err := h.c.CreateDevice(ctx, device("d1", "nrf52840-dk", nil)); err != nil {
		t.Fatal(err)
	}

	before := time.Now()
	tok, err := h.c.CreateToken(ctx, "d1", 0)
	if err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	if tok.Device != "d1" || !strings.HasPrefix(tok.Token, "wbt_") || tok.CA != string(h.pki.CACertPEM()) {
		t.Errorf("CreateToken = device %q, token prefix ok %v, CA matches %v", tok.Device, strings.HasPrefix(tok.Token, "wbt_"), tok.CA == string(h.pki.CACertPEM()))
	}
	if d := tok.Expires.Sub(before); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("default token expires in %v, want 1h", d)
	}
	// The token enrolls the device.
	csr, _, err := pki.NewCSR("d1")
	if err != nil {
		t.Fatal(err)
	}
	if name, _, err := h.pki.Enroll(tok.Token, csr); err != nil || name != "d1" {
		t.Errorf("Enroll(issued token) = %q, %v; want d1", name, err)
	}

	tok, err = h.c.CreateToken(ctx, "d1", 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(tok.Expires); d < 47*time.Hour || d > 49*time.Hour {
		t.Errorf("48h token expires in %v", d)
	}
	_, err = h.c.CreateToken(ctx, "d1", 8*24*time.Hour)
	if ae := wantAPIError(t, "CreateToken(8 days)", err, api.ReasonInvalid, http.StatusUnprocessableEntity); ae.Field != "ttlSeconds" {
		t.Errorf("field = %q, want ttlSeconds", ae.Field)
	}
	status, ae := h.raw(t, http.MethodPost, "/api/v1/devices/d1/token", "application/json", []byte(`{"ttlSeconds":-1}`))
	if status != http.StatusUnprocessableEntity || ae.Field != "ttlSeconds" {
		t.Errorf("negative ttl = %d %+v, want 422 on ttlSeconds", status, ae)
	}
}

func TestConsole(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := h.c.CreateDevice(ctx, device("d1", "nrf52840-dk", nil)); err != nil {
		t.Fatal(err)
	}
	_, err := h.c.Console(ctx, "d1")
	wantAPIError(t, "Console(board off)", err, api.ReasonUnavailable, http.StatusServiceUnavailable)
	err = h.c.SendConsole(ctx, "d1", []byte("help\n"))
	wantAPIError(t, "SendConsole(board off)", err, api.ReasonUnavailable, http.StatusServiceUnavailable)
	_, err = h.c.Console(ctx, "nope")
	wantAPIError(t, "Console(missing device)", err, api.ReasonNotFound, http.StatusNotFound)

	board := h.consoles.powerOn("d1", "wasmbed boot\nready\n")
	stream, err := h.c.Console(ctx, "d1")
	if err != nil {
		t.Fatalf("Console: %v", err)
	}
	defer stream.Close()
	want := "wasmbed boot\nready\n"
	readExactly(t, stream, want)
	h.consoles.print("d1", "tick 1\n")
	readExactly(t, stream, "tick 1\n")

	if err := h.c.SendConsole(ctx, "d1", []byte("apps\n")); err != nil {
		t.Fatalf("SendConsole: %v", err)
	}
	select {
	case got := <-board.input:
		if string(got) != "apps\n" {
			t.Errorf("board input = %q, want %q", got, "apps\n")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("console input never reached the board")
	}
	err = h.c.SendConsole(ctx, "d1", bytes.Repeat([]byte("x"), 4097))
	wantAPIError(t, "SendConsole(4097 bytes)", err, api.ReasonTooLarge, http.StatusRequestEntityTooLarge)
}

// readExactly reads len(want) bytes from r and compares them with want.
func readExactly(t *testing.T, r io.Reader, want string) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatalf("read %q: got %q, %v", want, got, err)
	}
	if string(got) != want {
		t.Fatalf("read %q, want %q", got, want)
	}
}

func TestEvents(t *testing.T) {
	h := newHarness(t)
	h.publish(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	stream, err := h.c.Events(ctx, 0)
	if err != nil {
		t.Fatalf("Events: %v", err)
	}
	defer stream.Close()
	if _, err := h.c.CreateDevice(ctx, device("d1", "nrf52840-dk", map[string]string{"room": "lab"})); err != nil {
		t.Fatal(err)
	}
	added := nextResource(t, stream, "Device", "d1")
	if added.Action != "ADDED" {
		t.Errorf("first event of d1 is %s, want ADDED", added.Action)
	}
	var dev v1alpha1.Device
	if err := json.Unmarshal(added.Object, &dev); err != nil || dev.Spec.Board != "nrf52840-dk" || dev.Labels["room"] != "lab" {
		t.Errorf("event object = %s (%v), want device d1", added.Object, err)
	}

	// Resuming after an earlier number replays the event.
	replay, err := h.c.Events(ctx, added.Seq-1)
	if err != nil {
		t.Fatal(err)
	}
	defer replay.Close()
	e, err := replay.Next()
	if err != nil || e.Seq != added.Seq || e.Name != "d1" || e.Action != "ADDED" {
		t.Errorf("replay after %d = %+v, %v; want event %d again", added.Seq-1, e, err, added.Seq)
	}

	// Resuming after it does not.
	resume, err := h.c.Events(ctx, added.Seq)
	if err != nil {
		t.Fatal(err)
	}
	defer resume.Close()
	if _, err := h.c.StartEmulation(ctx, "d1"); err != nil {
		t.Fatal(err)
	}
	e, err = resume.Next()
	if err != nil || e.Seq <= added.Seq || e.Action != "MODIFIED" || e.Name != "d1" {
		t.Errorf("resume after %d = %+v, %v; want d1 MODIFIED", added.Seq, e, err)
	}
	if resume.LastSeq() != e.Seq {
		t.Errorf("LastSeq = %d, want %d", resume.LastSeq(), e.Seq)
	}

	// A device filter keeps that device's events only.
	mine, err := h.c.DeviceEvents(ctx, "d2", e.Seq)
	if err != nil {
		t.Fatal(err)
	}
	defer mine.Close()
	h.bus.Publish(api.Event{Type: api.EventOnline, Device: "d1"})
	h.bus.Publish(api.Event{Type: api.EventOnline, Device: "d2"})
	got, err := mine.Next()
	if err != nil || got.Device != "d2" || got.Type != api.EventOnline {
		t.Errorf("DeviceEvents(d2) = %+v, %v; want d2 online", got, err)
	}

	// The stream ends with its context.
	cancel()
	for {
		if _, err := stream.Next(); err != nil {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, io.EOF) {
				t.Logf("after cancel: %v", err)
			}
			break
		}
	}
}

func TestEventsBadResumePoint(t *testing.T) {
	h := newHarness(t)
	status, ae := h.raw(t, http.MethodGet, "/api/v1/events?after=minus-one", "", nil)
	if status != http.StatusBadRequest || ae.Field != "after" {
		t.Errorf("after=minus-one = %d %+v, want 400 on after", status, ae)
	}
}

// nextResource reads events until a resource event of kind and name.
func nextResource(t *testing.T, s *client.EventStream, kind, name string) api.Event {
	t.Helper()
	for {
		e, err := s.Next()
		if err != nil {
			t.Fatalf("waiting for %s %s: %v", kind, name, err)
		}
		if e.Type == api.EventResource && e.Kind == kind && e.Name == name {
			return e
		}
	}
}

func TestAuth(t *testing.T) {
	const token = "wasmbed-test-token-1"
	h := newHarness(t, func(d *apiserver.Deps) {
		d.Token = token
		d.Ready = func() error { return nil }
	})
	ctx := context.Background()
	if _, err := h.c.CreateDevice(ctx, device("d1", "nrf52840-dk", nil)); err != nil {
		t.Fatalf("CreateDevice with the token: %v", err)
	}
	if _, err := h.c.Metrics(ctx); err != nil {
		t.Errorf("Metrics with the token: %v", err)
	}

	anon, err := client.New(h.url)
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := client.New(h.url, client.WithToken("not-"+token))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client.Client{anon, wrong} {
		_, err := c.GetDevice(ctx, "d1")
		ae := wantAPIError(t, "GetDevice without the token", err, api.ReasonUnauthorized, http.StatusUnauthorized)
		if strings.Contains(ae.Message, token) {
			t.Errorf("the error %q shows the token", ae.Message)
		}
		_, err = c.Metrics(ctx)
		wantAPIError(t, "Metrics without the token", err, api.ReasonUnauthorized, http.StatusUnauthorized)
		_, err = c.Events(ctx, 0)
		wantAPIError(t, "Events without the token", err, api.ReasonUnauthorized, http.StatusUnauthorized)
		if err := c.Health(ctx); err != nil {
			t.Errorf("Health without the token: %v", err)
		}
		if err := c.Ready(ctx); err != nil {
			t.Errorf("Ready without the token: %v", err)
		}
	}
	// Unknown routes do not tell strangers what exists.
	_, ae := h.raw(t, http.MethodGet, "/api/v1/toasters", "", nil)
	if ae.Reason != api.ReasonUnauthorized {
		t.Errorf("unknown route without the token = %s, want Unauthorized", ae.Reason)
	}
	resp, err := http.Get(h.url + "/api/v1/devices")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("GET without token = %d, WWW-Authenticate %q; want 401 Bearer", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

func TestReady(t *testing.T) {
	notReady := errors.New("store not open yet")
	var ready error = notReady
	h := newHarness(t, func(d *apiserver.Deps) { d.Ready = func() error { return ready } })
	ctx := context.Background()
	err := h.c.Ready(ctx)
	if ae := wantAPIError(t, "Ready", err, api.ReasonUnavailable, http.StatusServiceUnavailable); !strings.Contains(ae.Message, "store not open yet") {
		t.Errorf("message %q does not carry the reason", ae.Message)
	}
	if err := h.c.Health(ctx); err != nil {
		t.Errorf("Health while not ready: %v", err)
	}
}

func TestMetrics(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.c.GetDevice(ctx, "secret-device-name")
	h.c.ListDevices(ctx, "")
	text, err := h.c.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"wasmbed_api_requests_total",
		"wasmbed_api_request_duration_seconds_bucket",
		`route="/api/v1/devices/{name}"`,
		`code="404"`,
		`method="GET"`,
	} {
		if !bytes.Contains(text, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if bytes.Contains(text, []byte("secret-device-name")) {
		t.Error("metrics carry a raw path")
	}
}

func TestInfoBoardsOpenAPI(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	info, err := h.c.Info(ctx)
	if err != nil || info.Version != "test" || info.Store != "embedded" {
		t.Errorf("Info = %+v, %v", info, err)
	}
	boards, err := h.c.Boards(ctx)
	if err != nil || len(boards) != len(testBoards) || boards[0].Name != testBoards[0].Name || boards[0].RAMKiB != testBoards[0].RAMKiB {
		t.Errorf("Boards = %+v, %v", boards, err)
	}
	doc, err := h.c.OpenAPI(ctx)
	if err != nil || !bytes.Equal(doc, docs.OpenAPI) {
		t.Errorf("OpenAPI = %d bytes, %v; want docs/openapi.yaml", len(doc), err)
	}
}

func TestNewRejectsBadDeps(t *testing.T) {
	st := newHarness(t).store
	for _, tc := range []struct {
		name string
		d    apiserver.Deps
	}{
		{"no store", apiserver.Deps{}},
		{"negative module limit", apiserver.Deps{Store: st, MaxModule: -1}},
		{"duplicate board", apiserver.Deps{Store: st, Boards: []api.Board{{Name: "a"}, {Name: "a"}}}},
		{"unnamed board", apiserver.Deps{Store: st, Boards: []api.Board{{}}}},
	} {
		if _, err := apiserver.New(tc.d); err == nil {
			t.Errorf("New(%s) = nil error", tc.name)
		}
	}
	// Two handlers may share one registry.
	reg := newHarness(t).reg
	for range 2 {
		if _, err := apiserver.New(apiserver.Deps{Store: st, Registry: reg}); err != nil {
			t.Errorf("New with a shared registry: %v", err)
		}
	}
}

// TestActionsRetryOnConflict runs actions that write the same object at
// once: each reads a fresh copy and retries when another got there first,
// so none fails and none undoes another.
func TestActionsRetryOnConflict(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	m, err := h.c.UploadModule(ctx, bytes.NewReader(wasm(t, "sensor.wasm")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.CreateApplication(ctx, application("sensor", m.SHA256, "1.0.0", "d1")); err != nil {
		t.Fatal(err)
	}
	const rounds = 10
	errs := make(chan error, 4*rounds+2)
	var wg sync.WaitGroup
	toggle := func(set, clear func(context.Context, string) (*v1alpha1.Application, error)) {
		for i := range 2*rounds + 1 {
			do := set
			if i%2 == 1 {
				do = clear
			}
			_, err := do(ctx, "sensor")
			errs <- err
		}
	}
	wg.Go(func() { toggle(h.c.PauseApplication, h.c.ResumeApplication) })
	wg.Go(func() { toggle(h.c.StopApplication, h.c.StartApplication) })
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent action: %v", err)
		}
	}
	app, err := h.c.GetApplication(ctx, "sensor")
	if err != nil || !app.Spec.Paused || !app.Spec.Stopped {
		t.Errorf("after concurrent pause and stop, spec = %+v, %v; want both set", app.Spec, err)
	}
}

// TestSessionCommands: the gateway-to-gateway route refuses bad bodies,
// unknown devices, commands and modules with clear errors, and answers
// NotConnected for a device without a session on this daemon's (real)
// gateway; without a gateway it is unavailable.
func TestSessionCommands(t *testing.T) {
	off := newHarness(t)
	ctx := t.Context()
	if _, err := off.c.CreateDevice(ctx, device("d1", "nrf52840-dk", nil)); err != nil {
		t.Fatal(err)
	}
	err := off.c.SessionCommand(ctx, "d1", "start", api.SessionCommand{App: "a"})
	wantAPIError(t, "start without a gateway", err, api.ReasonUnavailable, http.StatusServiceUnavailable)

	var gw *gateway.Gateway
	h := newHarness(t, func(d *apiserver.Deps) {
		ca, err := pki.Open(t.TempDir(), pki.Options{})
		if err != nil {
			t.Fatal(err)
		}
		cert, err := ca.ServerCertificate([]string{"127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		if gw, err = gateway.New(gateway.Config{Authority: ca, Certificate: cert}); err != nil {
			t.Fatal(err)
		}
		d.Sessions = gw
	})
	if _, err := h.c.CreateDevice(ctx, device("d1", "nrf52840-dk", nil)); err != nil {
		t.Fatal(err)
	}
	mod, err := h.c.UploadModule(ctx, bytes.NewReader(wasm(t, "sensor.wasm")))
	if err != nil {
		t.Fatal(err)
	}
	spec := &v1alpha1.ApplicationSpec{Version: "1", Module: v1alpha1.ModuleRef{SHA256: mod.SHA256}}
	for _, verb := range []string{"start", "stop"} {
		err := h.c.SessionCommand(ctx, "d1", verb, api.SessionCommand{App: "sensor", Spec: spec})
		wantAPIError(t, verb+" to a device without a session", err, api.ReasonNotConnected, http.StatusConflict)
	}
	// A deploy is declarative, as the gateway's own: it waits for the
	// device to connect and take the module, until the caller gives up.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := h.c.SessionCommand(short, "d1", "deploy", api.SessionCommand{App: "sensor", Spec: spec}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deploy to a device without a session = %v, want it to wait until the caller gives up", err)
	}
	err = h.c.SessionCommand(ctx, "nope", "start", api.SessionCommand{App: "sensor"})
	wantAPIError(t, "start on an unknown device", err, api.ReasonNotFound, http.StatusNotFound)
	err = h.c.SessionCommand(ctx, "d1", "reboot", api.SessionCommand{App: "sensor"})
	wantAPIError(t, "an unknown command", err, api.ReasonNotFound, http.StatusNotFound)
	err = h.c.SessionCommand(ctx, "d1", "start", api.SessionCommand{App: "Bad Name"})
	wantAPIError(t, "a bad app name", err, api.ReasonInvalid, http.StatusUnprocessableEntity)
	err = h.c.SessionCommand(ctx, "d1", "deploy", api.SessionCommand{App: "sensor"})
	wantAPIError(t, "a deploy without a spec", err, api.ReasonInvalid, http.StatusUnprocessableEntity)
	missing := &v1alpha1.ApplicationSpec{Version: "1", Module: v1alpha1.ModuleRef{SHA256: strings.Repeat("ab", 32)}}
	err = h.c.SessionCommand(ctx, "d1", "deploy", api.SessionCommand{App: "sensor", Spec: missing})
	wantAPIError(t, "a deploy of a module never uploaded", err, api.ReasonInvalid, http.StatusUnprocessableEntity)
	if status, ae := h.raw(t, http.MethodPost, api.Prefix+"/devices/d1/session/start", "application/json", []byte(`{"app":"a","extra":1}`)); status != http.StatusBadRequest || ae.Reason != api.ReasonBadRequest {
		t.Errorf("unknown field: %d %+v, want 400 BadRequest", status, ae)
	}
}

// TestPages lists devices a page at a time through the typed client: the
// pages hold every device once, the last has no continue token; the
// client's whole-list call reads past its page size; a bad limit or
// continue token is a 400 naming the parameter.
func TestPages(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	const n = client.PageSize + 3
	for i := range n {
		labels := map[string]string{"half": "first"}
		if i >= n/2 {
			labels["half"] = "second"
		}
		if _, err := h.c.CreateDevice(ctx, device(fmt.Sprintf("pg-%04d", i), "mps2-an385", labels)); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	opts := client.ListOptions{Limit: 200, Selector: "half=second"}
	pages := 0
	for {
		p, err := h.c.ListDevicesPage(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, d := range p.Items {
			names = append(names, d.Name)
		}
		if p.Continue == "" {
			break
		}
		opts.Continue = p.Continue
	}
	if want := n - n/2; len(names) != want || pages != (want+199)/200 || !slices.IsSorted(names) || names[0] != fmt.Sprintf("pg-%04d", n/2) {
		t.Errorf("pages of half=second: %d devices in %d pages (sorted %v, first %s), want %d in %d",
			len(names), pages, slices.IsSorted(names), names[0], want, (want+199)/200)
	}
	all, err := h.c.ListDevices(ctx, "")
	if err != nil || len(all.Items) != n || all.Continue != "" {
		t.Errorf("ListDevices = %d devices, continue %q, %v; want %d", len(all.Items), all.Continue, err, n)
	}
	for _, tc := range []struct {
		opts  client.ListOptions
		field string
	}{
		{client.ListOptions{Limit: 20000}, "limit"},
		{client.ListOptions{Limit: 2, Continue: "%%%"}, "continue"},
	} {
		_, err := h.c.ListDevicesPage(ctx, tc.opts)
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Field != tc.field {
			t.Errorf("ListDevicesPage(%+v) = %v, want a 400 on %s", tc.opts, err, tc.field)
		}
	}
}

// TestApplicationDevices: an application's devices are served from their
// status, filtered by state and paged, for a target by name and by label.
func TestApplicationDevices(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	mod, err := h.c.UploadModule(ctx, bytes.NewReader(wasm(t, "sensor.wasm")))
	if err != nil {
		t.Fatal(err)
	}
	const n = 700 // more than one page of the store's scan
	failed := map[string]bool{}
	for i := range n {
		name := fmt.Sprintf("ad-%04d", i)
		labels := map[string]string{"fleet": "yes"}
		if i%10 == 9 {
			labels["fleet"] = "no"
		}
		if _, err := h.c.CreateDevice(ctx, device(name, "mps2-an385", labels)); err != nil {
			t.Fatal(err)
		}
		if i%7 != 0 {
			continue
		}
		// Every seventh device is online and reports the app: failed on
		// every other one of those, else running.
		d, err := h.store.Devices().Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		d.Status.Phase = v1alpha1.DeviceOnline
		d.Status.Apps = []v1alpha1.DeviceApp{{Name: "sensor", Version: "1", SHA256: mod.SHA256, State: "running"}}
		if i%14 == 0 {
			d.Status.Apps[0].State, d.Status.Apps[0].Reason = "failed", "trap: unreachable"
			if labels["fleet"] == "yes" || name == "ad-0009" {
				failed[name] = true
			}
		}
		if _, err := h.store.Devices().UpdateStatus(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	app := application("sensor", mod.SHA256, "1", "ad-0009") // ad-0009 by name, the rest by label
	app.Spec.Target.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"fleet": "yes"}}
	if _, err := h.c.CreateApplication(ctx, app); err != nil {
		t.Fatal(err)
	}

	all, err := h.c.ListApplicationDevices(ctx, "sensor", "")
	if want := n - n/10 + 1; err != nil || len(all.Items) != want {
		t.Fatalf("ListApplicationDevices = %d rows, %v; want %d", len(all.Items), err, want)
	}
	states := map[string]int{}
	for _, r := range all.Items {
		states[r.State]++
		if r.Target != "1" {
			t.Fatalf("row %+v, want target 1", r)
		}
	}
	if states[controller.RolloutFailed] != len(failed) || states[controller.RolloutWaiting] == 0 || states[controller.RolloutRunning] == 0 {
		t.Errorf("states %v, want %d failed and some waiting and running", states, len(failed))
	}

	// The failed ones, two to a page.
	var got []string
	opts := client.ListOptions{Limit: 2}
	for {
		p, err := h.c.ListApplicationDevicesPage(ctx, "sensor", controller.RolloutFailed, opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Items) == 0 || len(p.Items) > 2 {
			t.Fatalf("page of %d rows, want 1 or 2", len(p.Items))
		}
		for _, r := range p.Items {
			if !failed[r.Device] || r.Reason != "trap: unreachable" {
				t.Errorf("row %+v, want a failed device with its reason", r)
			}
			got = append(got, r.Device)
		}
		if opts.Continue = p.Continue; opts.Continue == "" {
			break
		}
	}
	if len(got) != len(failed) || !slices.IsSorted(got) {
		t.Errorf("failed devices paged = %v, want the %d failed ones sorted", got, len(failed))
	}

	// A target by name alone.
	named := application("named", mod.SHA256, "1", "ad-0014", "ad-0001", "nope")
	if _, err := h.c.CreateApplication(ctx, named); err != nil {
		t.Fatal(err)
	}
	rows, err := h.c.ListApplicationDevices(ctx, "named", "")
	if err != nil || len(rows.Items) != 2 || rows.Items[0].Device != "ad-0001" || rows.Items[1].State != controller.RolloutPending {
		t.Errorf("devices of a target by name = %+v, %v; want ad-0001 waiting, ad-0014 (online) pending", rows, err)
	}

	_, err = h.c.ListApplicationDevicesPage(ctx, "sensor", "Sleeping", client.ListOptions{})
	wantAPIError(t, "ListApplicationDevices(bad state)", err, api.ReasonBadRequest, http.StatusBadRequest)
	_, err = h.c.ListApplicationDevices(ctx, "ghost", "")
	wantAPIError(t, "ListApplicationDevices(no such app)", err, api.ReasonNotFound, http.StatusNotFound)
}

func quantity(s string) *resource.Quantity {
	q := resource.MustParse(s)
	return &q
}

// TestStalledBodies: a request whose body does not arrive holds nothing.
// Without the token it is answered 401 at once, unread; with it, once the
// body has sent nothing for BodyStall, 408. Either way the connection is
// closed. (Both used to wait for the body forever.)
func TestStalledBodies(t *testing.T) {
	stalled := func(t *testing.T, url, auth string) (int, io.Reader) {
		t.Helper()
		conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(conn, "POST /api/v1/devices HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{", auth)
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no answer to a stalled body: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, br
	}
	closed := func(t *testing.T, r io.Reader) {
		t.Helper()
		if n, err := r.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
			t.Errorf("after the answer the connection gave %d bytes, %v; want it closed", n, err)
		}
	}
	t.Run("no token", func(t *testing.T) {
		h := newHarness(t, func(d *apiserver.Deps) { d.Token = "secret" })
		code, r := stalled(t, h.url, "")
		if code != http.StatusUnauthorized {
			t.Errorf("status %d, want 401", code)
		}
		closed(t, r)
	})
	t.Run("token", func(t *testing.T) {
		h := newHarness(t, func(d *apiserver.Deps) { d.Token, d.BodyStall = "secret", 200*time.Millisecond })
		code, r := stalled(t, h.url, "Authorization: Bearer secret\r\n")
		if code != http.StatusRequestTimeout {
			t.Errorf("status %d, want 408", code)
		}
		closed(t, r)
	})
}
