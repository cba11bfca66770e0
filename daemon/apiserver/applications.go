package apiserver

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/api"
	"wasmbed.io/wasmbed/daemon/controller"
	"wasmbed.io/wasmbed/daemon/store"
)

func (s *server) listApplications(w http.ResponseWriter, r *http.Request) error {
	page, err := listPage(r, s.d.Store.Applications(), v1alpha1.KindApplication)
	if err != nil {
		return err
	}
	apps := page.Items
	list := &v1alpha1.ApplicationList{Items: make([]v1alpha1.Application, 0, len(apps))}
	list.APIVersion, list.Kind = v1alpha1.GroupVersion.String(), "ApplicationList"
	list.Continue = page.Continue
	for _, a := range apps {
		list.Items = append(list.Items, *a)
	}
	return writeJSON(w, http.StatusOK, list)
}

func (s *server) getApplication(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	app, err := s.d.Store.Applications().Get(r.Context(), name)
	if err != nil {
		return storeError("application", name, err)
	}
	return writeJSON(w, http.StatusOK, stamp(app, v1alpha1.KindApplication))
}

func (s *server) createApplication(w http.ResponseWriter, r *http.Request) error {
	app, err := decodeApplication(r.Body)
	if err != nil {
		return err
	}
	if err := checkCreateMeta(&app.ObjectMeta, "application"); err != nil {
		return err
	}
	if err := s.checkModuleRef(r.Context(), &app.Spec.Module, "spec.module"); err != nil {
		return err
	}
	out, err := s.d.Store.Applications().Create(r.Context(), app)
	if err != nil {
		return storeError("application", app.Name, err)
	}
	s.log.Info("application created", "app", out.Name, "version", out.Spec.Version)
	return writeJSON(w, http.StatusCreated, stamp(out, v1alpha1.KindApplication))
}

func (s *server) updateApplication(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	app, err := decodeApplication(r.Body)
	if err != nil {
		return err
	}
	if err := checkUpdateMeta(&app.ObjectMeta, "application", name); err != nil {
		return err
	}
	if err := s.checkModuleRef(r.Context(), &app.Spec.Module, "spec.module"); err != nil {
		return err
	}
	out, err := s.d.Store.Applications().Update(r.Context(), app)
	if err != nil {
		return storeError("application", name, err)
	}
	return writeJSON(w, http.StatusOK, stamp(out, v1alpha1.KindApplication))
}

func (s *server) deleteApplication(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := s.d.Store.Applications().Delete(r.Context(), name); err != nil {
		return storeError("application", name, err)
	}
	s.log.Info("application deleted", "app", name)
	return writeJSON(w, http.StatusOK, deleted{Status: "deleted"})
}

// checkModuleRef checks that ref names an uploaded module and fills in its
// size; a size the user gave must be the module's.
func (s *server) checkModuleRef(ctx context.Context, ref *v1alpha1.ModuleRef, field string) error {
	info, err := s.d.Store.Modules().Stat(ctx, ref.SHA256)
	if errors.Is(err, store.ErrNotFound) {
		return invalidf(field+".sha256", "module %s is not uploaded; upload it first (POST /api/v1/modules)", ref.SHA256)
	}
	if err != nil {
		return err
	}
	if ref.Size != 0 && ref.Size != info.Size {
		return invalidf(field+".size", "module %s is %d bytes, not %d; leave %s.size out to have it filled in", ref.SHA256, info.Size, ref.Size, field)
	}
	ref.Size = info.Size
	return nil
}

// appChange is one action on an Application's spec; it reports whether it
// changed anything.
type appChange func(ctx context.Context, app *v1alpha1.Application) (bool, error)

// appAction serves POST /api/v1/applications/{name}/<action>: change is
// applied to a fresh copy, again on conflict, and the updated Application
// is the answer.
func (s *server) appAction(change appChange) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		name := r.PathValue("name")
		ctx := r.Context()
		out, err := modify(ctx, s.d.Store.Applications(), v1alpha1.KindApplication, "application", name, func(app *v1alpha1.Application) (bool, error) {
			return change(ctx, app)
		})
		if err != nil {
			return err
		}
		s.log.Info("application action", "app", name, "path", r.URL.Path, "version", out.Spec.Version)
		return writeJSON(w, http.StatusOK, out)
	}
}

func pauseApp(_ context.Context, app *v1alpha1.Application) (bool, error) {
	return setFlag(&app.Spec.Paused, true), nil
}

func resumeApp(_ context.Context, app *v1alpha1.Application) (bool, error) {
	return setFlag(&app.Spec.Paused, false), nil
}

func stopApp(_ context.Context, app *v1alpha1.Application) (bool, error) {
	return setFlag(&app.Spec.Stopped, true), nil
}

func startApp(_ context.Context, app *v1alpha1.Application) (bool, error) {
	return setFlag(&app.Spec.Stopped, false), nil
}

func setFlag(f *bool, v bool) bool {
	if *f == v {
		return false
	}
	*f = v
	return true
}

// rollbackApp sets the spec's module and version to the revision to go
// back to (see previousRevision): the one write of spec the daemon makes,
// on the user's word.
func (s *server) rollbackApp(ctx context.Context, app *v1alpha1.Application) (bool, error) {
	prev, ok := previousRevision(app)
	if !ok {
		return false, invalidf("status.history", "application %q has no revision before version %q to roll back to", app.Name, app.Spec.Version)
	}
	ref := prev.Module
	if err := s.checkModuleRef(ctx, &ref, "status.history.module"); err != nil {
		var ae *api.Error
		if !errors.As(err, &ae) {
			return false, err
		}
		return false, invalidf("status.history", "cannot roll application %q back to version %q: its module %s is no longer uploaded", app.Name, prev.Version, prev.Module.SHA256)
	}
	app.Spec.Module = ref
	app.Spec.Version = prev.Version
	return true, nil
}

// previousRevision finds the revision a rollback returns to: the stable
// revision when the spec names another; else the newest entry of another
// version older than the newest entry of the current version, or the
// newest entry when the current version is not in the history.
func previousRevision(app *v1alpha1.Application) (v1alpha1.Revision, bool) {
	h := app.Status.History
	if stable := app.Status.StableRevision; stable != app.Spec.Version {
		if r := controller.FindRevision(h, stable); r != nil {
			return *r, true
		}
	}
	start := len(h) - 1
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].Version == app.Spec.Version {
			start = i - 1
			break
		}
	}
	for i := start; i >= 0; i-- {
		if h[i].Version != app.Spec.Version {
			return h[i], true
		}
	}
	return v1alpha1.Revision{}, false
}

// rolloutStates are the states GET /applications/{name}/devices can
// filter on.
var rolloutStates = []string{controller.RolloutPending, controller.RolloutWaiting, controller.RolloutTransferring,
	controller.RolloutRunning, controller.RolloutExited, controller.RolloutStopped, controller.RolloutFailed}

// listApplicationDevices serves the devices an application targets, each
// with its part of the rollout, a page at a time, optionally those in one
// state: the per-device view the Application's status does not hold. The
// rows come from the devices' status; a transfer's progress is on the
// event stream.
func (s *server) listApplicationDevices(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	name := r.PathValue("name")
	app, err := s.d.Store.Applications().Get(ctx, name)
	if err != nil {
		return storeError("application", name, err)
	}
	opts, err := listParams(r)
	if err != nil {
		return err
	}
	state := r.URL.Query().Get("state")
	if state != "" && !slices.Contains(rolloutStates, state) {
		return badRequestf("state", "state %s is not one of %s", quoteShort(state), strings.Join(rolloutStates, ", "))
	}
	sel, err := metav1.LabelSelectorAsSelector(app.Spec.Target.Selector)
	if err != nil {
		return invalidf("spec.target.selector", "application %q has a bad target selector: %v", name, err)
	}
	want, _ := controller.Wanted(app)
	list := &v1alpha1.DeviceRolloutList{Items: []v1alpha1.DeviceRollout{}}
	list.APIVersion, list.Kind = v1alpha1.GroupVersion.String(), "DeviceRolloutList"
	// add takes the next targeted device in name order and reports whether
	// the page has room for more.
	add := func(d *v1alpha1.Device) bool {
		if opts.Selector != nil && !opts.Selector.Matches(labels.Set(d.Labels)) {
			return true
		}
		row := controller.DeviceRollout(app.Name, want, d)
		if state != "" && row.State != state {
			return true
		}
		if opts.Limit > 0 && len(list.Items) == opts.Limit {
			list.Continue = store.ContinueToken(list.Items[len(list.Items)-1].Device)
			return false
		}
		list.Items = append(list.Items, row)
		return true
	}
	if app.Spec.Target.Selector == nil {
		err = s.namedTargets(ctx, app.Spec.Target.Devices, opts.Continue, add)
	} else {
		err = s.selectedTargets(ctx, app.Spec.Target.Devices, sel, opts.Continue, add)
	}
	if errors.Is(err, store.ErrInvalidContinue) {
		return badRequestf("continue", "continue %s was not given by a list: start the list again without it", quoteShort(opts.Continue))
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, list)
}

// scanPage is how many devices a filtered list reads from the store at a
// time.
const scanPage = 500

// namedTargets passes the named devices that exist to add, in name order,
// from after the continue token, until add says the page is full.
func (s *server) namedTargets(ctx context.Context, names []string, cont string, add func(*v1alpha1.Device) bool) error {
	after, err := store.ContinueAfter(cont)
	if err != nil {
		return err
	}
	names = slices.Clone(names)
	slices.Sort(names)
	for _, n := range slices.Compact(names) {
		if n <= after {
			continue
		}
		d, err := s.d.Store.Devices().Get(ctx, n)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if !add(d) {
			return nil
		}
	}
	return nil
}

// selectedTargets passes the devices sel or names selects to add, reading
// the store a page at a time, until add says the page is full.
func (s *server) selectedTargets(ctx context.Context, names []string, sel labels.Selector, cont string, add func(*v1alpha1.Device) bool) error {
	named := make(map[string]bool, len(names))
	for _, n := range names {
		named[n] = true
	}
	opts := store.ListOptions{Limit: scanPage, Continue: cont}
	for {
		page, err := s.d.Store.Devices().ListPage(ctx, opts)
		if err != nil {
			return err
		}
		for _, d := range page.Items {
			if (named[d.Name] || sel.Matches(labels.Set(d.Labels))) && !add(d) {
				return nil
			}
		}
		if opts.Continue = page.Continue; opts.Continue == "" {
			return nil
		}
	}
}
