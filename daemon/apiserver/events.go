package apiserver

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/api"
)

// keepaliveInterval is how often an idle event stream gets a comment
// line, so that proxies and clients see the connection alive.
const keepaliveInterval = 15 * time.Second

// streamEvents serves the event bus as server-sent events (WHATWG HTML,
// "Server-sent events"): each event is "id: <seq>", "event: <type>",
// "data: <api.Event JSON>" and a blank line. A client resumes with
// Last-Event-ID or ?after=<seq>, getting the kept events after that
// number first. ?device=<name> keeps only what concerns one device. The
// stream ends when the client goes or the bus drops a subscriber that
// fell behind; the client then reconnects with the last id it saw.
func (s *server) streamEvents(w http.ResponseWriter, r *http.Request) error {
	after, err := afterParam(r)
	if err != nil {
		return err
	}
	device := r.URL.Query().Get("device")
	if s.d.Events == nil {
		return unavailablef("this daemon has no event stream")
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	past, live := s.d.Events.Subscribe(ctx, after)

	rc := startStream(w, "text/event-stream")

	bw := bufio.NewWriter(w)
	for _, e := range past {
		if err := s.writeEvent(bw, e, device); err != nil {
			return err
		}
	}
	if err := flush(bw, rc); err != nil {
		return err
	}
	tick := time.NewTicker(keepaliveInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			bw.WriteString(": keepalive\n\n")
			if err := flush(bw, rc); err != nil {
				return err
			}
		case e, ok := <-live:
			if !ok {
				return nil
			}
			if err := s.writeEvent(bw, e, device); err != nil {
				return err
			}
			// Send what is queued at once, flushing once per burst.
			for more := true; more; {
				select {
				case e, ok := <-live:
					if !ok {
						return flush(bw, rc)
					}
					if err := s.writeEvent(bw, e, device); err != nil {
						return err
					}
				default:
					more = false
				}
			}
			if err := flush(bw, rc); err != nil {
				return err
			}
		}
	}
}

// afterParam reads where the stream resumes: Last-Event-ID (sent by a
// reconnecting EventSource) wins over ?after=.
func afterParam(r *http.Request) (uint64, error) {
	if id := strings.TrimSpace(r.Header.Get("Last-Event-ID")); id != "" {
		n, err := strconv.ParseUint(id, 10, 64)
		if err != nil {
			return 0, badRequestf("Last-Event-ID", "Last-Event-ID %s is not an event number", quoteShort(id))
		}
		return n, nil
	}
	q := r.URL.Query().Get("after")
	if q == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(q, 10, 64)
	if err != nil {
		return 0, badRequestf("after", "after %s is not an event number", quoteShort(q))
	}
	return n, nil
}

// concerns reports whether e is about device: it names the device, or it
// is a change to the Device of that name.
func concerns(e api.Event, device string) bool {
	return e.Device == device || e.Kind == v1alpha1.KindDevice && e.Name == device
}

// writeEvent writes e as one server-sent event, unless a device filter
// leaves it out. json.Marshal never writes a newline, so the data is one
// line. JSON has no NaN or infinity: telemetry values that are not finite
// are left out of the event rather than losing it whole.
func (s *server) writeEvent(w *bufio.Writer, e api.Event, device string) error {
	if device != "" && !concerns(e, device) {
		return nil
	}
	data, err := json.Marshal(e)
	if err != nil && len(e.Values) > 0 {
		finite := make(map[string]float64, len(e.Values))
		for k, v := range e.Values {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				finite[k] = v
			}
		}
		e.Values = finite
		data, err = json.Marshal(e)
	}
	if err != nil {
		s.log.Warn("event not sent", "seq", e.Seq, "type", e.Type, "err", err)
		return nil
	}
	fmt.Fprintf(w, "id: %d\nevent: %s\ndata: ", e.Seq, sseField(string(e.Type)))
	w.Write(data)
	_, err = w.WriteString("\n\n")
	return err
}

// sseField keeps a line break out of a field value, where it would end
// the field.
func sseField(s string) string {
	return strings.NewReplacer("\r", "", "\n", "").Replace(s)
}

func flush(bw *bufio.Writer, rc *http.ResponseController) error {
	if err := bw.Flush(); err != nil {
		return err
	}
	return rc.Flush()
}
