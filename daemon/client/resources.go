package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/api"
)

// ListOptions ask for one page of a list (the list routes' ?labelSelector=,
// ?limit= and ?continue=).
type ListOptions struct {
	// Selector is a Kubernetes label selector, e.g. "room=lab,tier!=edge";
	// "" for every object.
	Selector string
	// Limit is the most objects on the page; 0 for all of them.
	Limit int
	// Continue is the list's metadata.continue of the page before; "" for
	// the first page.
	Continue string
}

func (o ListOptions) query() url.Values {
	q := url.Values{}
	if o.Selector != "" {
		q.Set("labelSelector", o.Selector)
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Continue != "" {
		q.Set("continue", o.Continue)
	}
	return q
}

// PageSize is the page the List methods read whole lists by.
const PageSize = 500

// listAll reads every page of a list, PageSize objects at a time, into
// one list; parts gives a list's items and metadata.
func listAll[L, T any](ctx context.Context, selector string, page func(context.Context, ListOptions) (*L, error), parts func(*L) (*[]T, *metav1.ListMeta)) (*L, error) {
	opts := ListOptions{Selector: selector, Limit: PageSize}
	var all *L
	for {
		p, err := page(ctx, opts)
		if err != nil {
			return nil, err
		}
		items, meta := parts(p)
		if all == nil {
			all = p
		} else {
			allItems, _ := parts(all)
			*allItems = append(*allItems, *items...)
		}
		if opts.Continue = meta.Continue; opts.Continue == "" {
			return all, nil
		}
		_, allMeta := parts(all)
		allMeta.Continue = ""
	}
}

// ListDevices returns every device whose labels match selector ("" for
// all), sorted by name, read a page at a time (GET /api/v1/devices).
func (c *Client) ListDevices(ctx context.Context, selector string) (*v1alpha1.DeviceList, error) {
	return listAll(ctx, selector, c.ListDevicesPage, func(l *v1alpha1.DeviceList) (*[]v1alpha1.Device, *metav1.ListMeta) { return &l.Items, &l.ListMeta })
}

// ListDevicesPage returns one page of devices (GET /api/v1/devices).
func (c *Client) ListDevicesPage(ctx context.Context, opts ListOptions) (*v1alpha1.DeviceList, error) {
	list := new(v1alpha1.DeviceList)
	err := c.do(ctx, request{op: "list devices", method: http.MethodGet, path: api.Prefix + "/devices", query: opts.query()}, list)
	return list, err
}

// GetDevice returns the named device (GET /api/v1/devices/{name}).
func (c *Client) GetDevice(ctx context.Context, name string) (*v1alpha1.Device, error) {
	dev := new(v1alpha1.Device)
	err := c.do(ctx, request{op: "get device " + name, method: http.MethodGet, path: api.Prefix + "/devices/" + seg(name)}, dev)
	return dev, err
}

// CreateDevice creates dev and returns it as stored, with its
// resourceVersion (POST /api/v1/devices).
func (c *Client) CreateDevice(ctx context.Context, dev *v1alpha1.Device) (*v1alpha1.Device, error) {
	out := new(v1alpha1.Device)
	err := c.doJSON(ctx, request{op: "create device " + dev.Name, method: http.MethodPost, path: api.Prefix + "/devices"}, dev, out)
	return out, err
}

// UpdateDevice replaces dev's labels, annotations and spec (PUT
// /api/v1/devices/{name}). dev must carry the resourceVersion it was read
// with; an api.ReasonConflict error means it changed since: get it again
// and retry.
func (c *Client) UpdateDevice(ctx context.Context, dev *v1alpha1.Device) (*v1alpha1.Device, error) {
	out := new(v1alpha1.Device)
	err := c.doJSON(ctx, request{op: "update device " + dev.Name, method: http.MethodPut, path: api.Prefix + "/devices/" + seg(dev.Name)}, dev, out)
	return out, err
}

// DeleteDevice deletes the named device (DELETE /api/v1/devices/{name}).
func (c *Client) DeleteDevice(ctx context.Context, name string) error {
	return c.do(ctx, request{op: "delete device " + name, method: http.MethodDelete, path: api.Prefix + "/devices/" + seg(name)}, nil)
}

// StartEmulation sets the device's spec.emulation.enabled, giving it the
// sim backend when it has no emulation yet (POST
// /api/v1/devices/{name}/emulation/start).
func (c *Client) StartEmulation(ctx context.Context, name string) (*v1alpha1.Device, error) {
	out := new(v1alpha1.Device)
	err := c.do(ctx, request{op: "start emulation of " + name, method: http.MethodPost, path: api.Prefix + "/devices/" + seg(name) + "/emulation/start"}, out)
	return out, err
}

// StopEmulation clears the device's spec.emulation.enabled (POST
// /api/v1/devices/{name}/emulation/stop).
func (c *Client) StopEmulation(ctx context.Context, name string) (*v1alpha1.Device, error) {
	out := new(v1alpha1.Device)
	err := c.do(ctx, request{op: "stop emulation of " + name, method: http.MethodPost, path: api.Prefix + "/devices/" + seg(name) + "/emulation/stop"}, out)
	return out, err
}

// CreateToken issues a one-time enrollment token for the device, valid
// for ttl (rounded up to seconds; 0 means the daemon's default of one
// hour, the most is seven days) (POST /api/v1/devices/{name}/token). The
// token is shown only here: keep it out of logs.
func (c *Client) CreateToken(ctx context.Context, device string, ttl time.Duration) (api.Token, error) {
	var tok api.Token
	if ttl < 0 {
		return tok, fmt.Errorf("create token for %s: negative lifetime %v", device, ttl)
	}
	secs := math.Ceil(ttl.Seconds())
	if secs > math.MaxInt32 {
		secs = math.MaxInt32 // the daemon refuses it with a clear message
	}
	err := c.doJSON(ctx, request{op: "create token for " + device, method: http.MethodPost, path: api.Prefix + "/devices/" + seg(device) + "/token"},
		api.TokenRequest{TTLSeconds: int(secs)}, &tok)
	return tok, err
}

// Console streams the console of the device's board: its scrollback, then
// what it prints, until ctx ends or the board's output ends (GET
// /api/v1/devices/{name}/console). The caller closes the stream. A board
// that is off is an api.ReasonUnavailable error.
func (c *Client) Console(ctx context.Context, device string) (io.ReadCloser, error) {
	resp, err := c.send(ctx, request{op: "attach console of " + device, method: http.MethodGet, path: api.Prefix + "/devices/" + seg(device) + "/console"})
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// SendConsole types input (at most 4 KiB) into the device's board (POST
// /api/v1/devices/{name}/console).
func (c *Client) SendConsole(ctx context.Context, device string, input []byte) error {
	return c.do(ctx, request{
		op: "send console input to " + device, method: http.MethodPost, path: api.Prefix + "/devices/" + seg(device) + "/console",
		body: bytes.NewReader(input), contentType: "application/octet-stream",
	}, nil)
}

// ListApplications returns every application whose labels match
// selector ("" for all), sorted by name, read a page at a time (GET
// /api/v1/applications).
func (c *Client) ListApplications(ctx context.Context, selector string) (*v1alpha1.ApplicationList, error) {
	return listAll(ctx, selector, c.ListApplicationsPage, func(l *v1alpha1.ApplicationList) (*[]v1alpha1.Application, *metav1.ListMeta) {
		return &l.Items, &l.ListMeta
	})
}

// ListApplicationsPage returns one page of applications (GET
// /api/v1/applications).
func (c *Client) ListApplicationsPage(ctx context.Context, opts ListOptions) (*v1alpha1.ApplicationList, error) {
	list := new(v1alpha1.ApplicationList)
	err := c.do(ctx, request{op: "list applications", method: http.MethodGet, path: api.Prefix + "/applications", query: opts.query()}, list)
	return list, err
}

// GetApplication returns the named application (GET
// /api/v1/applications/{name}).
func (c *Client) GetApplication(ctx context.Context, name string) (*v1alpha1.Application, error) {
	app := new(v1alpha1.Application)
	err := c.do(ctx, request{op: "get application " + name, method: http.MethodGet, path: api.Prefix + "/applications/" + seg(name)}, app)
	return app, err
}

// CreateApplication creates app (POST /api/v1/applications). Its
// spec.module.sha256 must name an uploaded module; spec.module.size may be
// left 0 for the daemon to fill in.
func (c *Client) CreateApplication(ctx context.Context, app *v1alpha1.Application) (*v1alpha1.Application, error) {
	out := new(v1alpha1.Application)
	err := c.doJSON(ctx, request{op: "create application " + app.Name, method: http.MethodPost, path: api.Prefix + "/applications"}, app, out)
	return out, err
}

// UpdateApplication replaces app's labels, annotations and spec, as
// UpdateDevice does (PUT /api/v1/applications/{name}).
func (c *Client) UpdateApplication(ctx context.Context, app *v1alpha1.Application) (*v1alpha1.Application, error) {
	out := new(v1alpha1.Application)
	err := c.doJSON(ctx, request{op: "update application " + app.Name, method: http.MethodPut, path: api.Prefix + "/applications/" + seg(app.Name)}, app, out)
	return out, err
}

// DeleteApplication deletes the named application (DELETE
// /api/v1/applications/{name}).
func (c *Client) DeleteApplication(ctx context.Context, name string) error {
	return c.do(ctx, request{op: "delete application " + name, method: http.MethodDelete, path: api.Prefix + "/applications/" + seg(name)}, nil)
}

// ListApplicationDevices returns every device app targets, with its part
// of the rollout, sorted by name, read a page at a time (GET
// /api/v1/applications/{name}/devices). state, when set, keeps the devices
// in that rollout state (e.g. "Failed").
func (c *Client) ListApplicationDevices(ctx context.Context, app, state string) (*v1alpha1.DeviceRolloutList, error) {
	page := func(ctx context.Context, opts ListOptions) (*v1alpha1.DeviceRolloutList, error) {
		return c.ListApplicationDevicesPage(ctx, app, state, opts)
	}
	return listAll(ctx, "", page, func(l *v1alpha1.DeviceRolloutList) (*[]v1alpha1.DeviceRollout, *metav1.ListMeta) {
		return &l.Items, &l.ListMeta
	})
}

// ListApplicationDevicesPage returns one page of the devices app targets
// (GET /api/v1/applications/{name}/devices); opts.Selector narrows them by
// label.
func (c *Client) ListApplicationDevicesPage(ctx context.Context, app, state string, opts ListOptions) (*v1alpha1.DeviceRolloutList, error) {
	q := opts.query()
	if state != "" {
		q.Set("state", state)
	}
	list := new(v1alpha1.DeviceRolloutList)
	err := c.do(ctx, request{op: "list devices of application " + app, method: http.MethodGet, path: api.Prefix + "/applications/" + seg(app) + "/devices", query: q}, list)
	return list, err
}

func (c *Client) appAction(ctx context.Context, name, action string) (*v1alpha1.Application, error) {
	out := new(v1alpha1.Application)
	err := c.do(ctx, request{op: action + " application " + name, method: http.MethodPost, path: api.Prefix + "/applications/" + seg(name) + "/" + action}, out)
	return out, err
}

// PauseApplication sets spec.paused, holding the rollout where it is.
func (c *Client) PauseApplication(ctx context.Context, name string) (*v1alpha1.Application, error) {
	return c.appAction(ctx, name, "pause")
}

// ResumeApplication clears spec.paused.
func (c *Client) ResumeApplication(ctx context.Context, name string) (*v1alpha1.Application, error) {
	return c.appAction(ctx, name, "resume")
}

// StopApplication sets spec.stopped, stopping the app on every device.
func (c *Client) StopApplication(ctx context.Context, name string) (*v1alpha1.Application, error) {
	return c.appAction(ctx, name, "stop")
}

// StartApplication clears spec.stopped.
func (c *Client) StartApplication(ctx context.Context, name string) (*v1alpha1.Application, error) {
	return c.appAction(ctx, name, "start")
}

// RollbackApplication sets spec.module and spec.version to the revision
// rolled out before the current one (from status.history); an
// api.ReasonInvalid error means there is none.
func (c *Client) RollbackApplication(ctx context.Context, name string) (*v1alpha1.Application, error) {
	return c.appAction(ctx, name, "rollback")
}

// ListGateways returns every gateway whose labels match selector (""
// for all), sorted by name, read a page at a time (GET /api/v1/gateways).
func (c *Client) ListGateways(ctx context.Context, selector string) (*v1alpha1.GatewayList, error) {
	return listAll(ctx, selector, c.ListGatewaysPage, func(l *v1alpha1.GatewayList) (*[]v1alpha1.Gateway, *metav1.ListMeta) { return &l.Items, &l.ListMeta })
}

// ListGatewaysPage returns one page of gateways (GET /api/v1/gateways).
func (c *Client) ListGatewaysPage(ctx context.Context, opts ListOptions) (*v1alpha1.GatewayList, error) {
	list := new(v1alpha1.GatewayList)
	err := c.do(ctx, request{op: "list gateways", method: http.MethodGet, path: api.Prefix + "/gateways", query: opts.query()}, list)
	return list, err
}

// GetGateway returns the named gateway (GET /api/v1/gateways/{name}).
func (c *Client) GetGateway(ctx context.Context, name string) (*v1alpha1.Gateway, error) {
	gw := new(v1alpha1.Gateway)
	err := c.do(ctx, request{op: "get gateway " + name, method: http.MethodGet, path: api.Prefix + "/gateways/" + seg(name)}, gw)
	return gw, err
}

// CreateGateway creates gw (POST /api/v1/gateways).
func (c *Client) CreateGateway(ctx context.Context, gw *v1alpha1.Gateway) (*v1alpha1.Gateway, error) {
	out := new(v1alpha1.Gateway)
	err := c.doJSON(ctx, request{op: "create gateway " + gw.Name, method: http.MethodPost, path: api.Prefix + "/gateways"}, gw, out)
	return out, err
}

// UpdateGateway replaces gw's labels, annotations and spec, as
// UpdateDevice does (PUT /api/v1/gateways/{name}).
func (c *Client) UpdateGateway(ctx context.Context, gw *v1alpha1.Gateway) (*v1alpha1.Gateway, error) {
	out := new(v1alpha1.Gateway)
	err := c.doJSON(ctx, request{op: "update gateway " + gw.Name, method: http.MethodPut, path: api.Prefix + "/gateways/" + seg(gw.Name)}, gw, out)
	return out, err
}

// DeleteGateway deletes the named gateway (DELETE
// /api/v1/gateways/{name}).
func (c *Client) DeleteGateway(ctx context.Context, name string) error {
	return c.do(ctx, request{op: "delete gateway " + name, method: http.MethodDelete, path: api.Prefix + "/gateways/" + seg(name)}, nil)
}

// UploadModule uploads the WebAssembly module read from r (POST
// /api/v1/modules). Uploading the same bytes twice gives the same module.
// The daemon refuses a module over its limit (api.ReasonTooLarge) and
// bytes that are not a module (api.ReasonInvalid).
func (c *Client) UploadModule(ctx context.Context, r io.Reader) (api.Module, error) {
	var m api.Module
	err := c.do(ctx, request{
		op: "upload module", method: http.MethodPost, path: api.Prefix + "/modules",
		body: r, contentType: "application/wasm",
		// The daemon can refuse an upload by its length before the
		// body is sent.
		header: http.Header{"Expect": {"100-continue"}},
	}, &m)
	return m, err
}

// ListModules describes every uploaded module, sorted by sha256 (GET
// /api/v1/modules).
func (c *Client) ListModules(ctx context.Context) ([]api.Module, error) {
	var mods []api.Module
	err := c.do(ctx, request{op: "list modules", method: http.MethodGet, path: api.Prefix + "/modules"}, &mods)
	return mods, err
}

// GetModule returns the bytes of the module (GET
// /api/v1/modules/{sha256}).
func (c *Client) GetModule(ctx context.Context, sha256 string) ([]byte, error) {
	return c.bytes(ctx, request{op: "get module " + sha256, method: http.MethodGet, path: api.Prefix + "/modules/" + seg(sha256)})
}

// DeleteModule deletes the module (DELETE /api/v1/modules/{sha256}); a
// module an application's spec names is an api.ReasonConflict error.
func (c *Client) DeleteModule(ctx context.Context, sha256 string) error {
	return c.do(ctx, request{op: "delete module " + sha256, method: http.MethodDelete, path: api.Prefix + "/modules/" + seg(sha256)}, nil)
}

// SessionCommand has the daemon act on an app of device through the
// device's session on its gateway (POST
// /api/v1/devices/{name}/session/{command}; command is deploy, start or
// stop). It returns when the device has done it; an *api.Error with
// ReasonNotConnected or ReasonDeployFailed says why it did not.
func (c *Client) SessionCommand(ctx context.Context, device, command string, cmd api.SessionCommand) error {
	return c.doJSON(ctx, request{
		op: command + " " + cmd.App + " on " + device, method: http.MethodPost,
		path: api.Prefix + "/devices/" + seg(device) + "/session/" + seg(command),
	}, cmd, nil)
}
