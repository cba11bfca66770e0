package apiserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/api"
	"wasmbed.io/wasmbed/gateway/pki"
)

// Emulation backends a Device may name in spec.emulation.backend.
var emulationBackends = []string{"sim", "docker", "renode", "qemu"}

// defaultBackend is the backend of an emulation that names none.
const defaultBackend = "sim"

// Largest values of an enrollment token's lifetime, and its default.
const (
	defaultTokenTTLSeconds = 3600
	maxTokenTTLSeconds     = 7 * 24 * 3600
)

// decodeJSON reads one JSON value of at most maxJSONBody bytes from body
// into v. Unknown fields, trailing data and malformed JSON are 400
// BadRequest; a longer body is 413 TooLarge.
func decodeJSON(body io.Reader, v any) error {
	data, err := io.ReadAll(io.LimitReader(body, maxJSONBody+1))
	if err != nil {
		return badRequestf("", "read the request body: %v", err)
	}
	if len(data) > maxJSONBody {
		return tooLargef("the request body is more than %d bytes", maxJSONBody)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return badRequestf("", "the request body is empty; a JSON object is expected")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequestf("", "the request body has data after its JSON value")
	}
	return nil
}

// jsonError describes a decoding error for the user, naming the field
// where the decoder knows it.
func jsonError(err error) *api.Error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return badRequestf("", "malformed JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		return badRequestf(typ.Field, "%s must be a JSON %s, not %s", fieldName(typ.Field), typ.Type, typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequestf("", "malformed JSON: the body ends in the middle of a value")
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		name, _ := strconv.Unquote(f)
		return badRequestf(name, "unknown field %s", f)
	}
	return badRequestf("", "malformed JSON: %s", strings.TrimPrefix(msg, "json: "))
}

func fieldName(f string) string {
	if f == "" {
		return "the body"
	}
	return f
}

// checkTypeMeta accepts an empty apiVersion and kind, or the right ones.
func checkTypeMeta(tm metav1.TypeMeta, kind string) error {
	if tm.APIVersion != "" && tm.APIVersion != v1alpha1.GroupVersion.String() {
		return invalidf("apiVersion", "apiVersion %s is not %s", quoteShort(tm.APIVersion), v1alpha1.GroupVersion.String())
	}
	if tm.Kind != "" && tm.Kind != kind {
		return invalidf("kind", "kind %s is not %s", quoteShort(tm.Kind), kind)
	}
	return nil
}

// checkMeta validates the metadata a user may write: the name (a DNS
// label, as every object of the store) and the labels.
func checkMeta(m *metav1.ObjectMeta, kind string) error {
	if m.Name == "" {
		return invalidf("metadata.name", "a %s needs metadata.name", kind)
	}
	if err := pki.ValidName(kind, m.Name); err != nil {
		return invalidf("metadata.name", "%v", err)
	}
	if errs := metavalidation.ValidateLabels(m.Labels, field.NewPath("metadata", "labels")); len(errs) > 0 {
		return fieldError(errs[0])
	}
	return nil
}

// fieldError turns an apimachinery validation error into the API's.
func fieldError(e *field.Error) *api.Error {
	return invalidf(e.Field, "%s", e.ErrorBody())
}

// checkCreateMeta adds to checkMeta what a new object must not carry.
func checkCreateMeta(m *metav1.ObjectMeta, kind string) error {
	if err := checkMeta(m, kind); err != nil {
		return err
	}
	if m.ResourceVersion != "" {
		return invalidf("metadata.resourceVersion", "a new %s must not carry metadata.resourceVersion", kind)
	}
	return nil
}

// checkUpdateMeta checks an object sent to PUT .../{name}: the name is the
// path's (filled in when empty) and the resourceVersion is there.
func checkUpdateMeta(m *metav1.ObjectMeta, kind, name string) error {
	if m.Name == "" {
		m.Name = name
	}
	if m.Name != name {
		return invalidf("metadata.name", "metadata.name %s is not %q, the name in the path", quoteShort(m.Name), name)
	}
	if err := checkMeta(m, kind); err != nil {
		return err
	}
	if m.ResourceVersion == "" {
		return invalidf("metadata.resourceVersion", "an update needs metadata.resourceVersion, from the %s as last read", kind)
	}
	return nil
}

// decodeDevice reads a Device body and validates its spec; the handler
// checks the metadata for a create or an update.
func (s *server) decodeDevice(body io.Reader) (*v1alpha1.Device, error) {
	dev := new(v1alpha1.Device)
	if err := decodeJSON(body, dev); err != nil {
		return nil, err
	}
	if err := checkTypeMeta(dev.TypeMeta, v1alpha1.KindDevice); err != nil {
		return nil, err
	}
	return dev, s.checkDeviceSpec(&dev.Spec)
}

// checkDeviceSpec validates a device's spec against the board catalog
// and fills in the default emulation backend.
func (s *server) checkDeviceSpec(spec *v1alpha1.DeviceSpec) error {
	if spec.Board == "" {
		return invalidf("spec.board", "spec.board is required; valid boards: %s", s.boardList)
	}
	board, ok := s.boards[spec.Board]
	if !ok {
		if len(s.boards) == 0 {
			return invalidf("spec.board", "board %s is not in the catalog, which is empty", quoteShort(spec.Board))
		}
		return invalidf("spec.board", "board %s is not in the catalog; valid boards: %s", quoteShort(spec.Board), s.boardList)
	}
	if spec.Gateway != "" {
		if errs := validation.IsDNS1123Label(spec.Gateway); len(errs) > 0 {
			return invalidf("spec.gateway", "gateway name %s: %s", quoteShort(spec.Gateway), errs[0])
		}
	}
	if e := spec.Emulation; e != nil {
		if e.Backend == "" {
			e.Backend = defaultBackend
		}
		if !slices.Contains(emulationBackends, e.Backend) {
			return invalidf("spec.emulation.backend", "emulation backend %s is not one of %s", quoteShort(e.Backend), strings.Join(emulationBackends, ", "))
		}
		if len(board.Backends) > 0 && !slices.Contains(board.Backends, e.Backend) {
			return invalidf("spec.emulation.backend", "board %s cannot run on backend %s; it runs on %s", board.Name, e.Backend, strings.Join(board.Backends, ", "))
		}
		if e.MemoryMiB < 0 {
			return invalidf("spec.emulation.memoryMiB", "spec.emulation.memoryMiB must be 0 (no limit) or more")
		}
		if e.CPUMillis < 0 {
			return invalidf("spec.emulation.cpuMillis", "spec.emulation.cpuMillis must be 0 (no limit) or more")
		}
	}
	return nil
}

// decodeApplication reads an Application body and validates its spec as
// far as it can without the store: whether its module is uploaded is
// checked by checkModuleRef, the metadata by the handler.
func decodeApplication(body io.Reader) (*v1alpha1.Application, error) {
	app := new(v1alpha1.Application)
	if err := decodeJSON(body, app); err != nil {
		return nil, err
	}
	if err := checkTypeMeta(app.TypeMeta, v1alpha1.KindApplication); err != nil {
		return nil, err
	}
	return app, checkApplicationSpec(&app.Spec)
}

func checkApplicationSpec(spec *v1alpha1.ApplicationSpec) error {
	if strings.TrimSpace(spec.Version) == "" {
		return invalidf("spec.version", "spec.version is required, e.g. \"1.0.0\"")
	}
	if len(spec.Version) > 128 {
		return invalidf("spec.version", "spec.version is longer than 128 bytes")
	}
	if spec.Module.SHA256 == "" {
		return invalidf("spec.module.sha256", "spec.module.sha256 is required: the sha256 of an uploaded module (POST %s/modules)", api.Prefix)
	}
	if !isSHA256(spec.Module.SHA256) {
		return invalidf("spec.module.sha256", "spec.module.sha256 %s is not 64 lowercase hex digits", quoteShort(spec.Module.SHA256))
	}
	if spec.Module.Size < 0 {
		return invalidf("spec.module.size", "spec.module.size must not be negative")
	}
	t := spec.Target
	if len(t.Devices) == 0 && t.Selector == nil {
		return invalidf("spec.target", "spec.target must name at least one device or have a selector")
	}
	for i, d := range t.Devices {
		if err := pki.ValidDeviceName(d); err != nil {
			return invalidf(fmt.Sprintf("spec.target.devices[%d]", i), "%v", err)
		}
	}
	if t.Selector != nil {
		if errs := metavalidation.ValidateLabelSelector(t.Selector, metavalidation.LabelSelectorValidationOptions{}, field.NewPath("spec", "target", "selector")); len(errs) > 0 {
			return fieldError(errs[0])
		}
		if _, err := metav1.LabelSelectorAsSelector(t.Selector); err != nil {
			return invalidf("spec.target.selector", "spec.target.selector: %v", err)
		}
	}
	for _, f := range []struct {
		name string
		v    int32
	}{
		{"spec.rollout.batchSize", spec.Rollout.BatchSize},
		{"spec.rollout.batchPercent", spec.Rollout.BatchPercent},
		{"spec.rollout.maxFailures", spec.Rollout.MaxFailures},
		{"spec.rollout.healthySeconds", spec.Rollout.HealthySeconds},
		{"spec.limits.memoryPages", spec.Limits.MemoryPages},
		{"spec.limits.callTimeoutMillis", spec.Limits.CallTimeoutMillis},
		{"spec.limits.periodMillis", spec.Limits.PeriodMillis},
	} {
		if f.v < 0 {
			return invalidf(f.name, "%s must be 0 or more, not %d", f.name, f.v)
		}
	}
	if spec.Rollout.BatchPercent > 100 {
		return invalidf("spec.rollout.batchPercent", "spec.rollout.batchPercent must be at most 100, not %d", spec.Rollout.BatchPercent)
	}
	if spec.Limits.MemoryPages > 65536 {
		return invalidf("spec.limits.memoryPages", "spec.limits.memoryPages must be at most 65536 (4 GiB), not %d", spec.Limits.MemoryPages)
	}
	return validateHealth(spec.Rollout)
}

// validateHealth checks a rollout's health gate: it names a metric, bounds
// it, and has a window to watch it in.
func validateHealth(r v1alpha1.Rollout) error {
	g := r.Health
	switch {
	case g == nil:
		return nil
	case g.Metric == "":
		return invalidf("spec.rollout.health.metric", "spec.rollout.health.metric names the telemetry value to watch")
	case g.Min == nil && g.Max == nil:
		return invalidf("spec.rollout.health", "spec.rollout.health needs a min, a max or both")
	case g.Min != nil && g.Max != nil && g.Min.Cmp(*g.Max) > 0:
		return invalidf("spec.rollout.health.min", "spec.rollout.health.min %s is above max %s", g.Min, g.Max)
	case r.HealthySeconds == 0:
		return invalidf("spec.rollout.healthySeconds", "spec.rollout.health watches the app for spec.rollout.healthySeconds: set it to 1 or more")
	}
	return nil
}

// isSHA256 reports whether s is 64 lowercase hex digits, the name of a
// module.
func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// decodeGateway reads a Gateway body and validates its spec; the handler
// checks the metadata.
func decodeGateway(body io.Reader) (*v1alpha1.Gateway, error) {
	gw := new(v1alpha1.Gateway)
	if err := decodeJSON(body, gw); err != nil {
		return nil, err
	}
	if err := checkTypeMeta(gw.TypeMeta, v1alpha1.KindGateway); err != nil {
		return nil, err
	}
	return gw, checkGatewaySpec(&gw.Spec)
}

func checkGatewaySpec(spec *v1alpha1.GatewaySpec) error {
	host, port, err := net.SplitHostPort(spec.Endpoint)
	if err != nil || host == "" {
		return invalidf("spec.endpoint", "spec.endpoint %s is not host:port, e.g. \"gw.example.com:4423\"", quoteShort(spec.Endpoint))
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return invalidf("spec.endpoint", "spec.endpoint %s: port %s is not a number from 1 to 65535", quoteShort(spec.Endpoint), quoteShort(port))
	}
	if spec.Capacity < 0 {
		return invalidf("spec.capacity", "spec.capacity must be 0 (no limit) or more, not %d", spec.Capacity)
	}
	return nil
}

// decodeTokenRequest reads an optional TokenRequest (an empty body takes
// the defaults) and returns the lifetime in seconds.
func decodeTokenRequest(body io.Reader) (int, error) {
	data, err := io.ReadAll(io.LimitReader(body, maxJSONBody+1))
	if err != nil {
		return 0, badRequestf("", "read the request body: %v", err)
	}
	var req api.TokenRequest
	if len(bytes.TrimSpace(data)) > 0 {
		if err := decodeJSON(bytes.NewReader(data), &req); err != nil {
			return 0, err
		}
	}
	switch {
	case req.TTLSeconds == 0:
		return defaultTokenTTLSeconds, nil
	case req.TTLSeconds < 0:
		return 0, invalidf("ttlSeconds", "ttlSeconds must be positive, not %d", req.TTLSeconds)
	case req.TTLSeconds > maxTokenTTLSeconds:
		return 0, invalidf("ttlSeconds", "ttlSeconds must be at most %d (7 days), not %d", maxTokenTTLSeconds, req.TTLSeconds)
	}
	return req.TTLSeconds, nil
}
