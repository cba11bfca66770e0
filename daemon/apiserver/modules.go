package apiserver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/api"
	"wasmbed.io/wasmbed/daemon/store"
)

// wasmHeader is what every binary WebAssembly module starts with: the
// magic "\0asm" and version 1 (core specification, section 5.5.16).
var wasmHeader = []byte("\x00asm\x01\x00\x00\x00")

// moduleTypes are the content types a module upload may carry.
var moduleTypes = []string{"application/wasm", "application/octet-stream"}

// uploadModule stores the request body as a module. The size limit is
// enforced while reading, and nothing is stored for a refused upload.
func (s *server) uploadModule(w http.ResponseWriter, r *http.Request) error {
	if err := checkModuleType(r.Header.Get("Content-Type")); err != nil {
		return err
	}
	max := s.d.MaxModule
	if r.ContentLength > max {
		return tooLargef("the module is %d bytes, more than the limit of %d", r.ContentLength, max)
	}
	head := make([]byte, len(wasmHeader))
	n, err := io.ReadFull(r.Body, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return badRequestf("", "read the module: %v", err)
	}
	if !bytes.Equal(head[:n], wasmHeader) {
		return invalidf("", "not a WebAssembly module: the body does not start with the wasm magic and version 1 (\\0asm\\1\\0\\0\\0)")
	}
	body := &readRecorder{r: io.MultiReader(bytes.NewReader(head), r.Body)}
	info, err := s.d.Store.Modules().Put(r.Context(), body, max)
	if errors.Is(err, store.ErrTooLarge) {
		return tooLargef("the module is more than the limit of %d bytes", max)
	}
	if body.err != nil {
		// The client's body ended early or broke: its fault, not the store's.
		return badRequestf("", "read the module: %v", body.err)
	}
	if err != nil {
		return err
	}
	s.log.Info("module uploaded", "sha256", info.SHA256, "size", info.Size)
	w.Header().Set("Location", api.Prefix+"/modules/"+info.SHA256)
	return writeJSON(w, http.StatusCreated, moduleOf(info))
}

// checkModuleType accepts the content types of a wasm upload.
func checkModuleType(ct string) error {
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil {
		mt = ct
	}
	for _, t := range moduleTypes {
		if mt == t {
			return nil
		}
	}
	if ct == "" {
		ct = "none"
	}
	return &api.Error{
		Status:  http.StatusUnsupportedMediaType,
		Reason:  api.ReasonUnsupported,
		Message: fmt.Sprintf("a module upload needs Content-Type application/wasm or application/octet-stream, not %s", quoteShort(ct)),
	}
}

func moduleOf(info store.ModuleInfo) api.Module {
	return api.Module{SHA256: info.SHA256, Size: info.Size, Added: info.Added.Time.UTC()}
}

func (s *server) listModules(w http.ResponseWriter, r *http.Request) error {
	infos, err := s.d.Store.Modules().List(r.Context())
	if err != nil {
		return err
	}
	mods := make([]api.Module, 0, len(infos))
	for _, info := range infos {
		mods = append(mods, moduleOf(info))
	}
	return writeJSON(w, http.StatusOK, mods)
}

// getModule sends a module's bytes. A module never changes, so clients
// may cache it for good.
func (s *server) getModule(w http.ResponseWriter, r *http.Request) error {
	sum := r.PathValue("sha256")
	data, err := s.d.Store.Modules().Get(r.Context(), sum)
	if err != nil {
		return storeError("module", sum, err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/wasm")
	h.Set("Content-Length", strconv.Itoa(len(data)))
	h.Set("ETag", `"`+sum+`"`)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(data)
	return err
}

// deleteModule removes a module that no Application's spec names.
func (s *server) deleteModule(w http.ResponseWriter, r *http.Request) error {
	sum := r.PathValue("sha256")
	apps, err := s.d.Store.Applications().List(r.Context())
	if err != nil {
		return err
	}
	if _, err := s.d.Store.Modules().Stat(r.Context(), sum); err != nil {
		return storeError("module", sum, err)
	}
	if users := moduleUsers(apps, sum); len(users) > 0 {
		return conflictf("module %s is the module of application %s; change or delete it first", sum, joinQuoted(users))
	}
	if err := s.d.Store.Modules().Delete(r.Context(), sum); err != nil {
		return storeError("module", sum, err)
	}
	s.log.Info("module deleted", "sha256", sum)
	return writeJSON(w, http.StatusOK, deleted{Status: "deleted"})
}

// moduleUsers names the Applications whose spec runs module sum.
func moduleUsers(apps []*v1alpha1.Application, sum string) []string {
	var users []string
	for _, a := range apps {
		if a.Spec.Module.SHA256 == sum {
			users = append(users, a.Name)
		}
	}
	return users
}

// readRecorder keeps the first error of r other than io.EOF.
type readRecorder struct {
	r   io.Reader
	err error
}

func (rr *readRecorder) Read(p []byte) (int, error) {
	n, err := rr.r.Read(p)
	if err != nil && err != io.EOF && rr.err == nil {
		rr.err = err
	}
	return n, err
}
