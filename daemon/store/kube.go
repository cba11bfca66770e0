package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"

	"wasmbed.io/wasmbed/crds/v1alpha1"
)

// KubeOptions configures a Kubernetes store. The zero value is ready to
// use.
type KubeOptions struct {
	// Modules stores uploaded modules. Nil keeps them as ConfigMaps in the
	// store's namespace (see OpenKubernetes for that backend's size
	// limit); a caller can pass another Modules, e.g. an embedded store's,
	// where ConfigMaps are not wanted or not served.
	Modules Modules
}

// Kubernetes is a Store backed by a Kubernetes API server: Devices,
// Applications and Gateways are the wasmbed.io/v1alpha1 custom resources
// (the CRDs in crds/*.yaml must be installed) in one namespace, and
// modules are ConfigMaps in that namespace unless KubeOptions.Modules says
// otherwise.
//
// Resources go through a client-go REST client for wasmbed.io/v1alpha1
// whose scheme has only the v1alpha1 types (v1alpha1.AddToScheme), so
// objects are decoded straight into the typed structs, without the
// dynamic client's map round trip. Semantics follow the embedded store:
// the API server sets uid, resourceVersion (its etcd revision: store-wide
// and increasing, but not consecutive), generation and
// creationTimestamp, and its status subresource makes Update ignore the
// status and UpdateStatus ignore everything else. Names are checked here
// as DNS labels (pki.ValidDeviceName), stricter than the server's DNS
// subdomains, so both backends accept the same names; the server's own
// refusal of a name maps to ErrInvalidName too. Other schema violations
// (a board outside the enum) come back as the server's Invalid error,
// wrapped, with no sentinel. Returned objects carry the namespace and the
// server's managedFields. Watches list, then watch, and list again after
// a 410 Gone (see kubeResource.Watch).
//
// A Kubernetes is safe for concurrent use. Close ends every open watch;
// it does not touch the cluster.
type Kubernetes struct {
	namespace string
	client    rest.Interface
	params    runtime.ParameterCodec
	modules   Modules

	// closeCtx is cancelled by Close; every watch goroutine runs under
	// it, counted by watches. mu makes cancelling closeCtx and adding a
	// watch to the count exclusive, so no Add races Close's Wait.
	closeCtx context.Context
	closeFn  context.CancelFunc
	mu       sync.Mutex
	watches  sync.WaitGroup

	devices      *kubeResource[*v1alpha1.Device]
	applications *kubeResource[*v1alpha1.Application]
	gateways     *kubeResource[*v1alpha1.Gateway]
}

var _ Store = (*Kubernetes)(nil)

// OpenKubernetes returns a store that keeps its resources in namespace on
// the API server cfg points at. It checks that the three CRDs are served
// (one List each) so that a missing installation fails here, not at the
// first Get.
//
// With the default ConfigMap modules (opts.Modules nil), a module is one
// ConfigMap holding its bytes, so a module can be at most
// MaxConfigMapModuleSize bytes (1 MiB, the API server's ConfigMap limit,
// less room for the metadata) whatever max a Put asks for.
//
// cfg's QPS and Burst apply to every request; when zero they are 50 and
// 100 rather than client-go's 5 and 10. Requests have no timeout of their
// own: callers bound them with ctx.
func OpenKubernetes(cfg *rest.Config, namespace string, opts KubeOptions) (*Kubernetes, error) {
	if namespace == "" {
		return nil, errors.New("open kubernetes store: empty namespace")
	}
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("open kubernetes store: %w", err)
	}
	codecs := serializer.NewCodecFactory(scheme)

	c := rest.CopyConfig(cfg)
	gv := v1alpha1.GroupVersion
	c.GroupVersion = &gv
	c.APIPath = "/apis"
	c.NegotiatedSerializer = codecs.WithoutConversion()
	c.ContentType = runtime.ContentTypeJSON
	c.AcceptContentTypes = runtime.ContentTypeJSON
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	setRateLimits(c)
	client, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("open kubernetes store: %w", err)
	}

	modules := opts.Modules
	if modules == nil {
		mc := rest.CopyConfig(cfg)
		setRateLimits(mc)
		cm, err := newConfigMapModules(mc, namespace)
		if err != nil {
			return nil, fmt.Errorf("open kubernetes store: %w", err)
		}
		modules = cm
	}

	closeCtx, closeFn := context.WithCancel(context.Background())
	k := &Kubernetes{
		namespace: namespace,
		client:    client,
		params:    runtime.NewParameterCodec(scheme),
		modules:   modules,
		closeCtx:  closeCtx,
		closeFn:   closeFn,
	}
	k.devices = newKubeResource(k, "devices", v1alpha1.KindDevice,
		func() *v1alpha1.Device { return new(v1alpha1.Device) },
		func() runtime.Object { return new(v1alpha1.DeviceList) })
	k.applications = newKubeResource(k, "applications", v1alpha1.KindApplication,
		func() *v1alpha1.Application { return new(v1alpha1.Application) },
		func() runtime.Object { return new(v1alpha1.ApplicationList) })
	k.gateways = newKubeResource(k, "gateways", v1alpha1.KindGateway,
		func() *v1alpha1.Gateway { return new(v1alpha1.Gateway) },
		func() runtime.Object { return new(v1alpha1.GatewayList) })

	ctx, cancel := context.WithTimeout(context.Background(), openCheckTimeout)
	defer cancel()
	for _, check := range []func(context.Context) error{k.devices.served, k.applications.served, k.gateways.served} {
		if err := check(ctx); err != nil {
			closeFn()
			return nil, fmt.Errorf("open kubernetes store: %w", err)
		}
	}
	return k, nil
}

// Devices returns the Device custom resources.
func (k *Kubernetes) Devices() Resource[*v1alpha1.Device] { return k.devices }

// Applications returns the Application custom resources.
func (k *Kubernetes) Applications() Resource[*v1alpha1.Application] { return k.applications }

// Gateways returns the Gateway custom resources.
func (k *Kubernetes) Gateways() Resource[*v1alpha1.Gateway] { return k.gateways }

// Modules returns the module store: KubeOptions.Modules, or ConfigMaps.
func (k *Kubernetes) Modules() Modules { return k.modules }

// Backend returns "kubernetes".
func (k *Kubernetes) Backend() string { return "kubernetes" }

// Namespace returns the namespace the store keeps its objects in.
func (k *Kubernetes) Namespace() string { return k.namespace }

// Close closes every open watch channel and waits for their goroutines;
// later reads and writes fail. Later calls return nil. It does not close
// KubeOptions.Modules, which the caller owns.
func (k *Kubernetes) Close() error {
	k.mu.Lock()
	k.closeFn()
	k.mu.Unlock()
	k.watches.Wait()
	return nil
}

// addWatch counts one more watch goroutine for Close to wait for; false
// when the store is closed.
func (k *Kubernetes) addWatch() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed() {
		return false
	}
	k.watches.Add(1)
	return true
}

// closed reports whether Close was called.
func (k *Kubernetes) closed() bool { return k.closeCtx.Err() != nil }

// Client-side rate limits used when the rest.Config leaves them zero:
// client-go's own defaults (5 requests a second, bursts of 10) would
// throttle a daemon that writes a status for every device heartbeat.
const (
	defaultKubeQPS   = 50
	defaultKubeBurst = 100
)

// setRateLimits fills in c's QPS and Burst when they are zero (a
// negative QPS, no limit, is kept).
func setRateLimits(c *rest.Config) {
	if c.QPS == 0 {
		c.QPS = defaultKubeQPS
	}
	if c.Burst == 0 {
		c.Burst = defaultKubeBurst
	}
}

// openCheckTimeout bounds OpenKubernetes's check that the CRDs are served.
const openCheckTimeout = 30 * time.Second
