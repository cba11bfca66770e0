package apiserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v2"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/api"
	"wasmbed.io/wasmbed/daemon/store"
	"wasmbed.io/wasmbed/docs"
)

// TestOpenAPICoversRoutes keeps docs/openapi.yaml and the route table in
// step: every route is documented and every documented operation is a
// route.
func TestOpenAPICoversRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                            `yaml:"openapi"`
		Paths   map[string]map[string]interface{} `yaml:"paths"`
	}
	if err := yaml.Unmarshal(docs.OpenAPI, &doc); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0") {
		t.Errorf("openapi = %q, want 3.0.x", doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options":
				documented[strings.ToUpper(method)+" "+path] = true
			}
		}
	}
	s := &server{}
	routed := map[string]bool{}
	for _, rt := range s.routeTable() {
		if routed[rt.pattern] {
			t.Errorf("route %s is in the table twice", rt.pattern)
		}
		routed[rt.pattern] = true
		if !documented[rt.pattern] {
			t.Errorf("route %s is not in docs/openapi.yaml", rt.pattern)
		}
	}
	for op := range documented {
		if !routed[op] {
			t.Errorf("docs/openapi.yaml documents %s, which is no route", op)
		}
	}
}

func TestPreviousRevision(t *testing.T) {
	rev := func(v string) v1alpha1.Revision { return v1alpha1.Revision{Version: v} }
	for _, tc := range []struct {
		current string
		history []string
		want    string // "" for none
	}{
		{"1", nil, ""},
		{"1", []string{"1"}, ""},
		{"2", []string{"1", "2"}, "1"},
		{"3", []string{"1", "2"}, "2"},
		{"2", []string{"1", "2", "3"}, "1"},
		{"1", []string{"1", "2", "1"}, "2"},
		{"2", []string{"1", "2", "2"}, "1"},
	} {
		app := &v1alpha1.Application{}
		app.Spec.Version = tc.current
		for _, v := range tc.history {
			app.Status.History = append(app.Status.History, rev(v))
		}
		got, ok := previousRevision(app)
		if !ok {
			got.Version = ""
		}
		if got.Version != tc.want {
			t.Errorf("previousRevision(current %s, history %v) = %q, want %q", tc.current, tc.history, got.Version, tc.want)
		}
	}
}

// checkDecodeError fails unless err is an *api.Error with a 4xx status.
func checkDecodeError(t *testing.T, body []byte, err error) {
	t.Helper()
	var ae *api.Error
	if !errors.As(err, &ae) {
		t.Fatalf("decode(%q) = %v (%T), want *api.Error", body, err, err)
	}
	if ae.Status < 400 || ae.Status > 499 || ae.Reason == "" || ae.Message == "" {
		t.Fatalf("decode(%q) = %+v, want a 4xx with reason and message", body, ae)
	}
}

// checkStable fails unless encode -> decode -> encode gives the same
// bytes.
func checkStable[T any](t *testing.T, body []byte, v T, decode func(io.Reader) (T, error)) {
	t.Helper()
	first, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("decode(%q) accepted an object it cannot encode: %v", body, err)
	}
	again, err := decode(bytes.NewReader(first))
	if err != nil {
		t.Fatalf("decode(encode(decode(%q))) = %v; encoded %s", body, err, first)
	}
	second, err := json.Marshal(again)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Fatalf("decode -> encode unstable for %q:\n%s\n%s", body, first, second)
	}
}

var fuzzBoards = []api.Board{{Name: "nrf52840-dk", Backends: []string{"sim", "renode"}}, {Name: "esp32-devkitc"}}

// fuzzServer is a server over a real store, for the decoding functions
// that need its board catalog.
func fuzzServer(tb testing.TB) *server {
	st, err := store.OpenEmbedded(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	h, err := New(Deps{Store: st, Boards: fuzzBoards})
	if err != nil {
		tb.Fatal(err)
	}
	return h.(*server)
}

func FuzzDecodeDevice(f *testing.F) {
	for _, seed := range []string{
		`{"metadata":{"name":"d1","labels":{"room":"lab"}},"spec":{"board":"nrf52840-dk"}}`,
		`{"apiVersion":"wasmbed.io/v1alpha1","kind":"Device","metadata":{"name":"d1"},"spec":{"board":"nrf52840-dk","gateway":"gw-1","emulation":{"backend":"renode","enabled":true,"memoryMiB":64}}}`,
		`{"metadata":{"name":"d1","creationTimestamp":"2026-01-02T03:04:05Z"},"spec":{"board":"esp32-devkitc","emulation":{"enabled":true}},"status":{"phase":"Online"}}`,
		`{"metadata":{"name":"d1"},"spec":{"board":"pdp-11"}}`,
		`{"metadata":{"name":"d1"},"spec":{"board":"nrf52840-dk"}} trailing`,
		`{"spec":{"board":7}}`,
		`{"metadata":{"name":"D_1"},"spec":{"board":"nrf52840-dk"},"extra":1}`,
		`{"metadata":{"name":"d1","managedFields":[{"fieldsV1":{}}]},"spec":{"board":"nrf52840-dk"}}`,
		`[]`, `null`, ``, `{`,
	} {
		f.Add([]byte(seed))
	}
	s := fuzzServer(f)
	decode := func(r io.Reader) (*v1alpha1.Device, error) {
		dev, err := s.decodeDevice(r)
		if err != nil {
			return nil, err
		}
		dev.ResourceVersion = "" // what a create must not carry
		return dev, checkCreateMeta(&dev.ObjectMeta, "device")
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		dev, err := decode(bytes.NewReader(body))
		if err != nil {
			checkDecodeError(t, body, err)
			return
		}
		if _, ok := s.boards[dev.Spec.Board]; !ok {
			t.Fatalf("decode(%q) accepted board %q", body, dev.Spec.Board)
		}
		checkStable(t, body, dev, decode)
	})
}

func FuzzDecodeApplication(f *testing.F) {
	sum := strings.Repeat("0a", 32)
	for _, seed := range []string{
		`{"metadata":{"name":"sensor"},"spec":{"module":{"sha256":"` + sum + `"},"version":"1.0.0","target":{"devices":["d1"]}}}`,
		`{"metadata":{"name":"sensor"},"spec":{"module":{"sha256":"` + sum + `","size":618},"version":"2","target":{"selector":{"matchLabels":{"room":"lab"},"matchExpressions":[{"key":"tier","operator":"In","values":["edge"]}]}},"rollout":{"batchPercent":50,"maxFailures":1},"limits":{"memoryPages":2},"paused":true}}`,
		`{"metadata":{"name":"sensor"},"spec":{"module":{"sha256":"` + sum + `"},"version":"1","target":{"selector":{"matchExpressions":[{"key":"k","operator":"Near"}]}}}}`,
		`{"metadata":{"name":"sensor"},"spec":{"module":{"sha256":"xyz"},"version":"1","target":{}}}`,
		`{"metadata":{"name":"sensor"},"spec":{"rollout":{"batchPercent":101}}}`,
		`{"metadata":{"name":"sensor"},"status":{"history":[{"version":"1","module":{"sha256":"` + sum + `"},"time":"2026-01-01T00:00:00Z"}]}}`,
		`{"spec":{"version":1}}`, `"x"`, `{}`,
	} {
		f.Add([]byte(seed))
	}
	decode := func(r io.Reader) (*v1alpha1.Application, error) {
		app, err := decodeApplication(r)
		if err != nil {
			return nil, err
		}
		app.ResourceVersion = ""
		return app, checkCreateMeta(&app.ObjectMeta, "application")
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		app, err := decode(bytes.NewReader(body))
		if err != nil {
			checkDecodeError(t, body, err)
			return
		}
		if !isSHA256(app.Spec.Module.SHA256) || app.Spec.Rollout.BatchPercent > 100 {
			t.Fatalf("decode(%q) accepted spec %+v", body, app.Spec)
		}
		checkStable(t, body, app, decode)
	})
}

func TestDecodeJSONLimits(t *testing.T) {
	var v map[string]any
	big := append([]byte(`{"a":"`), bytes.Repeat([]byte("x"), maxJSONBody)...)
	big = append(big, `"}`...)
	err := decodeJSON(bytes.NewReader(big), &v)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Reason != api.ReasonTooLarge || ae.Status != 413 {
		t.Errorf("decodeJSON(%d bytes) = %v, want 413 TooLarge", len(big), err)
	}
	if err := decodeJSON(strings.NewReader(`{"a":1}`+"\r\n"), &v); err != nil {
		t.Errorf("decodeJSON with trailing CRLF = %v, want nil", err)
	}
	if !slices.Contains(emulationBackends, defaultBackend) {
		t.Errorf("default backend %q is not a backend", defaultBackend)
	}
}
