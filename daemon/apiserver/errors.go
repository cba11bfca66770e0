package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"wasmbed.io/wasmbed/daemon/api"
	"wasmbed.io/wasmbed/daemon/store"
)

func badRequestf(field, format string, args ...any) *api.Error {
	return &api.Error{Status: http.StatusBadRequest, Reason: api.ReasonBadRequest, Message: fmt.Sprintf(format, args...), Field: field}
}

func invalidf(field, format string, args ...any) *api.Error {
	return &api.Error{Status: http.StatusUnprocessableEntity, Reason: api.ReasonInvalid, Message: fmt.Sprintf(format, args...), Field: field}
}

func notFoundf(format string, args ...any) *api.Error {
	return &api.Error{Status: http.StatusNotFound, Reason: api.ReasonNotFound, Message: fmt.Sprintf(format, args...)}
}

func tooLargef(format string, args ...any) *api.Error {
	return &api.Error{Status: http.StatusRequestEntityTooLarge, Reason: api.ReasonTooLarge, Message: fmt.Sprintf(format, args...)}
}

func unavailablef(format string, args ...any) *api.Error {
	return &api.Error{Status: http.StatusServiceUnavailable, Reason: api.ReasonUnavailable, Message: fmt.Sprintf(format, args...)}
}

func conflictf(format string, args ...any) *api.Error {
	return &api.Error{Status: http.StatusConflict, Reason: api.ReasonConflict, Message: fmt.Sprintf(format, args...)}
}

// storeError turns an error of the store about one object into the API
// error the user sees. kind is the noun ("device"), name the object. Errors
// the user cannot act on are returned as they are, for writeError to log
// and answer with 500.
func storeError(kind, name string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFoundf("%s %q not found", kind, name)
	case errors.Is(err, store.ErrAlreadyExists):
		return &api.Error{Status: http.StatusConflict, Reason: api.ReasonAlreadyExists, Message: fmt.Sprintf("%s %q already exists", kind, name)}
	case errors.Is(err, store.ErrConflict):
		return conflictf("%s %q was changed since it was read; get it again and retry", kind, name)
	case errors.Is(err, store.ErrTooLarge):
		return tooLargef("%s %q is too large", kind, name)
	case errors.Is(err, store.ErrInvalidName):
		return invalidf("metadata.name", "%s name %q is not a DNS label (lowercase letters, digits and '-', at most 63)", kind, name)
	}
	return err
}

// writeError sends err as the JSON error shape. An *api.Error goes as it
// is; anything else is an internal error: its detail is logged and the
// user gets a generic message.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *api.Error
	if !errors.As(err, &ae) {
		switch {
		case isClientGone(r, err):
			// Nobody is listening; the status is for the metrics.
			ae = &api.Error{Status: 499, Reason: api.ReasonBadRequest, Message: "client closed the request"}
		case errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT):
			s.log.Warn("request failed: the daemon's disk is full", "method", r.Method, "path", r.URL.Path, "err", err)
			ae = &api.Error{Status: http.StatusInsufficientStorage, Reason: api.ReasonInsufficientStorage,
				Message: "the daemon's disk is full; nothing was changed. Free space where its data directory is, then try again"}
		default:
			s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			ae = &api.Error{Status: http.StatusInternalServerError, Reason: api.ReasonInternal, Message: "internal error; the daemon log has the detail"}
		}
	}
	if ae.Status == 0 {
		ae.Status = http.StatusInternalServerError
	}
	if ae.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="wasmbed"`)
	}
	// A handler may have set headers for a success it did not send.
	w.Header().Del("Content-Length")
	w.Header().Del("Content-Disposition")
	writeJSON(w, ae.Status, api.ErrorBody{Error: *ae})
}

// maxDrain is how much of a refused body the server still reads so that
// the client, still sending, gets the 413 answer rather than a reset
// connection. A longer body ends with the connection closed.
const maxDrain = 64 << 20

// trackedBody notes whether a handler began reading the request body and
// whether it read it all, and gives up on a body that sends nothing for
// stall: each read has a deadline, lifted at the end of the body (net/http
// then reads the connection in the background to notice a client going
// away, which a deadline would mistake for one).
type trackedBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	stall   time.Duration
	started bool
	done    bool // read to its end
	stalled bool // a read ran into the deadline
}

func (b *trackedBody) Read(p []byte) (int, error) {
	b.started = true
	_ = b.rc.SetReadDeadline(time.Now().Add(b.stall))
	n, err := b.ReadCloser.Read(p)
	switch {
	case errors.Is(err, io.EOF):
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	case errors.Is(err, os.ErrDeadlineExceeded):
		b.stalled = true
	}
	return n, err
}

// drainRefused reads and discards the rest of a body refused part way
// through, up to maxDrain bytes.
func drainRefused(body io.Reader) {
	io.CopyN(io.Discard, body, maxDrain)
}

// isTooLarge reports whether err refuses a request for its size.
func isTooLarge(err error) bool {
	var ae *api.Error
	return errors.As(err, &ae) && ae.Status == http.StatusRequestEntityTooLarge
}

// isClientGone reports whether err comes from the request's context
// ending, that is from the client going away.
func isClientGone(r *http.Request, err error) bool {
	return r.Context().Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
}

// writeJSON sends v as the JSON body of a response with status code.
func writeJSON(w http.ResponseWriter, code int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	body = append(body, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, err = w.Write(body)
	return err
}

// responseWriter records whether the response was started and its status,
// for the error path and the metrics. Unwrap lets http.ResponseController
// reach the connection's Flush and deadlines.
type responseWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *responseWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status = code
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Flush implements http.Flusher for handlers that test for it.
func (w *responseWriter) Flush() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// code is the status sent, 200 when the handler sent nothing at all (as
// net/http does).
func (w *responseWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// statusRecorder keeps what the mux answers to a request no route
// matches, so that it can be sent in the API's shape instead.
type statusRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *statusRecorder) Header() http.Header { return r.header }

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(p)
}

// quoteShort quotes untrusted text for an error message, cut to a length
// that keeps the message readable.
func quoteShort(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}

// joinQuoted is names as "a", "b", "c".
func joinQuoted(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
