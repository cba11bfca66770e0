package apiserver

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"
)

// streamConsole sends the board console of a device: the scrollback
// first, then what the board prints, flushed per write, until the client
// goes away or the board's output ends.
func (s *server) streamConsole(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	ctx := r.Context()
	if s.d.Consoles == nil {
		return unavailablef("this daemon runs no boards")
	}
	if _, err := s.d.Store.Devices().Get(ctx, name); err != nil {
		return storeError("device", name, err)
	}
	history, live, _, err := s.d.Consoles.AttachConsole(ctx, name)
	if err != nil {
		return consoleError(name, err)
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	rc := startStream(w, "application/octet-stream")
	if len(history) > 0 {
		if _, err := w.Write(history); err != nil {
			return err
		}
	}
	if err := rc.Flush(); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case b, ok := <-live:
			if !ok {
				return nil
			}
			if _, err := w.Write(b); err != nil {
				return err
			}
			if err := rc.Flush(); err != nil {
				return err
			}
		}
	}
}

// sendConsole types the request body into the device's board.
func (s *server) sendConsole(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if r.ContentLength > maxConsoleBody {
		return tooLargef("console input is at most %d bytes per request", maxConsoleBody)
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxConsoleBody+1))
	if err != nil {
		return badRequestf("", "read the console input: %v", err)
	}
	if len(data) > maxConsoleBody {
		return tooLargef("console input is at most %d bytes per request", maxConsoleBody)
	}
	if s.d.Consoles == nil {
		return unavailablef("this daemon runs no boards")
	}
	if _, err := s.d.Store.Devices().Get(r.Context(), name); err != nil {
		return storeError("device", name, err)
	}
	// Attach only for the input function; detach when done.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	_, _, input, err := s.d.Consoles.AttachConsole(ctx, name)
	if err != nil {
		return consoleError(name, err)
	}
	if input == nil {
		return unavailablef("the board of device %q takes no input", name)
	}
	if len(data) > 0 {
		if err := input(data); err != nil {
			return consoleError(name, err)
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// consoleError answers a board that is off with 503.
func consoleError(device string, err error) error {
	if errors.Is(err, ErrBoardOff) {
		return unavailablef("the board of device %q is off; start it with POST /api/v1/devices/%s/emulation/start", device, device)
	}
	return err
}

// startStream sends the headers of a long-lived streaming response and
// lifts the server's write deadline: a stream lasts longer than any write
// timeout.
func startStream(w http.ResponseWriter, contentType string) *http.ResponseController {
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	return rc
}
