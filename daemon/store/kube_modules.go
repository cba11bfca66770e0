package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
)

// MaxConfigMapModuleSize is the largest module a Kubernetes store keeps
// in its default ConfigMap modules: the API server refuses a ConfigMap
// whose data is over 1 MiB, and 16 KiB is left for the name, labels,
// annotations and managedFields. It is a limit of that backend; Put
// refuses bigger modules with ErrTooLarge whatever max it is given.
const MaxConfigMapModuleSize = 1<<20 - 16<<10

// Names in a module's ConfigMap.
const (
	moduleConfigMapPrefix = "wasmbed-module-"
	// moduleDataKey is the binaryData key holding the module's bytes.
	moduleDataKey = "module.wasm"
	// moduleSHA256Label holds the first moduleLabelHexLen hex digits of
	// the sha256 (a label value is at most 63 characters); the ConfigMap
	// name ends with the same digits.
	moduleSHA256Label = "wasmbed.io/module-sha256"
	moduleLabelHexLen = 40
	// Annotations with the full sha256 and the size in bytes.
	moduleSHA256Annotation = "wasmbed.io/module-sha256"
	moduleSizeAnnotation   = "wasmbed.io/module-size"
)

// configMapModules keeps each module as an immutable ConfigMap
// wasmbed-module-<first 40 hex digits of its sha256> in one namespace,
// with the bytes under binaryData "module.wasm". Reads of metadata only
// (Stat, List, Delete's check) go through the metadata client, so they do
// not fetch the modules' bytes. Safe for concurrent use.
//
// It needs an API server that serves core/v1 ConfigMaps; the
// apiextensions test server the package's tests run does not, so these
// tests pass other Modules and this type waits for a kube-apiserver test.
type configMapModules struct {
	namespace string
	cms       corev1client.ConfigMapInterface
	meta      metadata.ResourceInterface
}

var _ Modules = (*configMapModules)(nil)

func newConfigMapModules(cfg *rest.Config, namespace string) (*configMapModules, error) {
	core, err := corev1client.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("config map modules: %w", err)
	}
	mc, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("config map modules: %w", err)
	}
	return &configMapModules{
		namespace: namespace,
		cms:       core.ConfigMaps(namespace),
		meta:      mc.Resource(corev1.SchemeGroupVersion.WithResource("configmaps")).Namespace(namespace),
	}, nil
}

// moduleConfigMapName is the ConfigMap of the module sum.
func moduleConfigMapName(sum string) string {
	return moduleConfigMapPrefix + sum[:moduleLabelHexLen]
}

// Put reads r whole (at most min(max, MaxConfigMapModuleSize) bytes, else
// ErrTooLarge) and stores it. Storing bytes already stored returns the
// existing module.
func (m *configMapModules) Put(ctx context.Context, r io.Reader, max int64) (ModuleInfo, error) {
	limit := min(max, MaxConfigMapModuleSize)
	var buf bytes.Buffer
	if _, err := copyLimited(ctx, &buf, r, limit); err != nil {
		if errors.Is(err, ErrTooLarge) && limit < max {
			return ModuleInfo{}, fmt.Errorf("put module: module is more than %d bytes, the most a ConfigMap of the kubernetes store holds: %w", limit, ErrTooLarge)
		}
		return ModuleInfo{}, fmt.Errorf("put module: %w", err)
	}
	data := buf.Bytes()
	h := sha256.Sum256(data)
	sum := hex.EncodeToString(h[:])
	immutable := true
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name:      moduleConfigMapName(sum),
			Namespace: m.namespace,
			Labels: map[string]string{
				moduleSHA256Label:              sum[:moduleLabelHexLen],
				"app.kubernetes.io/managed-by": "wasmbed",
			},
			Annotations: map[string]string{
				moduleSHA256Annotation: sum,
				moduleSizeAnnotation:   strconv.Itoa(len(data)),
			},
		},
		BinaryData: map[string][]byte{moduleDataKey: data},
		Immutable:  &immutable,
	}
	created, err := m.cms.Create(ctx, cm, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		info, err := m.Stat(ctx, sum)
		if err != nil {
			return ModuleInfo{}, fmt.Errorf("put module %s: %w", sum, err)
		}
		return info, nil
	}
	if err != nil {
		return ModuleInfo{}, fmt.Errorf("put module %s: %w", sum, err)
	}
	return moduleInfoFromMeta(sum, created.ObjectMeta)
}

// Get returns the module's bytes, after checking their sha256.
func (m *configMapModules) Get(ctx context.Context, sum string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get module %q: %w", sum, err)
	}
	if err := checkSHA256(sum); err != nil {
		return nil, err
	}
	cm, err := m.cms.Get(ctx, moduleConfigMapName(sum), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("module %s: %w", sum, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get module %s: %w", sum, err)
	}
	if cm.Annotations[moduleSHA256Annotation] != sum {
		// Another module with the same 40-digit prefix: not this one.
		return nil, fmt.Errorf("module %s: %w", sum, ErrNotFound)
	}
	data := cm.BinaryData[moduleDataKey]
	if h := sha256.Sum256(data); hex.EncodeToString(h[:]) != sum {
		return nil, fmt.Errorf("get module %s: config map %s holds bytes with another sha256", sum, cm.Name)
	}
	return data, nil
}

// Stat describes the module from its ConfigMap's metadata; Added is the
// ConfigMap's creationTimestamp.
func (m *configMapModules) Stat(ctx context.Context, sum string) (ModuleInfo, error) {
	if err := ctx.Err(); err != nil {
		return ModuleInfo{}, fmt.Errorf("stat module %q: %w", sum, err)
	}
	if err := checkSHA256(sum); err != nil {
		return ModuleInfo{}, err
	}
	pom, err := m.meta.Get(ctx, moduleConfigMapName(sum), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return ModuleInfo{}, fmt.Errorf("module %s: %w", sum, ErrNotFound)
	}
	if err != nil {
		return ModuleInfo{}, fmt.Errorf("stat module %s: %w", sum, err)
	}
	if pom.Annotations[moduleSHA256Annotation] != sum {
		return ModuleInfo{}, fmt.Errorf("module %s: %w", sum, ErrNotFound)
	}
	return moduleInfoFromMeta(sum, pom.ObjectMeta)
}

// List describes every module, sorted by sha256. ConfigMaps with the
// label but without a valid sha256 annotation are skipped.
func (m *configMapModules) List(ctx context.Context) ([]ModuleInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list modules: %w", err)
	}
	list, err := m.meta.List(ctx, metav1.ListOptions{LabelSelector: moduleSHA256Label})
	if err != nil {
		return nil, fmt.Errorf("list modules: %w", err)
	}
	infos := []ModuleInfo{}
	for _, item := range list.Items {
		sum := item.Annotations[moduleSHA256Annotation]
		if checkSHA256(sum) != nil || item.Name != moduleConfigMapName(sum) {
			continue
		}
		info, err := moduleInfoFromMeta(sum, item.ObjectMeta)
		if err != nil {
			continue
		}
		infos = append(infos, info)
	}
	slices.SortFunc(infos, func(a, b ModuleInfo) int { return strings.Compare(a.SHA256, b.SHA256) })
	return infos, nil
}

// Delete removes the module's ConfigMap, only if it is still the one
// whose annotation names sum (a uid precondition).
func (m *configMapModules) Delete(ctx context.Context, sum string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete module %q: %w", sum, err)
	}
	if err := checkSHA256(sum); err != nil {
		return err
	}
	name := moduleConfigMapName(sum)
	pom, err := m.meta.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("module %s: %w", sum, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("delete module %s: %w", sum, err)
	}
	if pom.Annotations[moduleSHA256Annotation] != sum {
		return fmt.Errorf("module %s: %w", sum, ErrNotFound)
	}
	uid := pom.UID
	err = m.cms.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("module %s: %w", sum, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("delete module %s: %w", sum, err)
	}
	return nil
}

// moduleInfoFromMeta describes module sum from its ConfigMap's metadata.
func moduleInfoFromMeta(sum string, om metav1.ObjectMeta) (ModuleInfo, error) {
	size, err := strconv.ParseInt(om.Annotations[moduleSizeAnnotation], 10, 64)
	if err != nil {
		return ModuleInfo{}, fmt.Errorf("module %s: config map %s: size annotation: %w", sum, om.Name, err)
	}
	return ModuleInfo{SHA256: sum, Size: size, Added: om.CreationTimestamp}, nil
}
