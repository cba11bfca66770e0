package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"wasmbed.io/wasmbed/daemon/api"
)

// Limits of the event stream parser, bytes.
const (
	maxSSELine  = 4 << 20 // one line of the stream
	maxSSEEvent = 8 << 20 // the data of one event, all its lines together
)

// ErrEventTooLarge is returned by EventStream.Next for an event or line
// longer than the parser takes (4 MiB a line, 8 MiB an event).
var ErrEventTooLarge = errors.New("event stream: event too large")

// EventStream is the daemon's live event stream (GET /api/v1/events). Read
// it with Next; Close it when done. It is not safe for concurrent use.
type EventStream struct {
	body io.ReadCloser
	sse  *sseReader
	last uint64
}

// Events opens the event stream. The daemon first sends the events it
// still keeps with a sequence number above after (0 for all it keeps),
// then every new one. To resume after a break, call Events again with
// the stream's LastSeq.
func (c *Client) Events(ctx context.Context, after uint64) (*EventStream, error) {
	return c.events(ctx, url.Values{"after": {strconv.FormatUint(after, 10)}})
}

// DeviceEvents is Events for the events about one device only: its own
// events and changes to its Device object.
func (c *Client) DeviceEvents(ctx context.Context, device string, after uint64) (*EventStream, error) {
	return c.events(ctx, url.Values{"after": {strconv.FormatUint(after, 10)}, "device": {device}})
}

func (c *Client) events(ctx context.Context, q url.Values) (*EventStream, error) {
	resp, err := c.send(ctx, request{
		op: "watch events", method: http.MethodGet, path: api.Prefix + "/events", query: q,
		header: http.Header{"Accept": {"text/event-stream"}},
	})
	if err != nil {
		return nil, err
	}
	return &EventStream{body: resp.Body, sse: newSSEReader(resp.Body)}, nil
}

// Next blocks until the next event and returns it. It returns io.EOF when
// the daemon ended the stream (it does so for a reader that fell too far
// behind), and the context's error, wrapped, once the context of Events
// ends. An event whose data is not an api.Event is an error too; Next may
// be called again after it.
func (s *EventStream) Next() (api.Event, error) {
	ev, err := s.sse.Next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return api.Event{}, io.EOF
		}
		return api.Event{}, fmt.Errorf("read events: %w", err)
	}
	var e api.Event
	if err := json.Unmarshal([]byte(ev.Data), &e); err != nil {
		return api.Event{}, fmt.Errorf("read events: event %q: %w", ev.ID, err)
	}
	if e.Seq == 0 {
		e.Seq, _ = strconv.ParseUint(ev.ID, 10, 64)
	}
	if e.Type == "" && ev.Event != "" {
		e.Type = api.EventType(ev.Event)
	}
	if e.Seq > s.last {
		s.last = e.Seq
	}
	return e, nil
}

// LastSeq is the highest sequence number Next returned, to resume from.
func (s *EventStream) LastSeq() uint64 { return s.last }

// Close ends the stream.
func (s *EventStream) Close() error { return s.body.Close() }

// sseEvent is one event of a server-sent event stream as dispatched.
type sseEvent struct {
	ID    string // the stream's last event ID when the event was dispatched
	Event string // the event type; "" when the event named none ("message")
	Data  string // the data lines joined with "\n"
}

// sseReader parses a text/event-stream as specified in the WHATWG HTML
// standard, section 9.2.6 "Interpreting an event stream": lines end with
// CRLF, LF or CR; a line starting with ':' is a comment; "field: value"
// drops one space after the colon; data lines accumulate, joined by LF;
// an id without NUL sets the last event ID, which persists; a blank line
// dispatches the event unless its data is empty; an event the stream ends
// in the middle of is discarded. A leading byte order mark is skipped.
type sseReader struct {
	sc      *bufio.Scanner
	started bool   // the first line was read
	skipLF  bool   // the last line ended with CR: an LF next is its CRLF
	lastID  string // the last event ID buffer
}

func newSSEReader(r io.Reader) *sseReader {
	sr := &sseReader{sc: bufio.NewScanner(r)}
	sr.sc.Buffer(make([]byte, 0, 4096), maxSSELine)
	sr.sc.Split(sr.split)
	return sr
}

// Next returns the next dispatched event, or io.EOF at the end of the
// stream.
func (r *sseReader) Next() (sseEvent, error) {
	var data strings.Builder
	var event string
	for r.sc.Scan() {
		line := r.sc.Bytes()
		if !r.started {
			r.started = true
			line = bytes.TrimPrefix(line, []byte("\uFEFF"))
		}
		if len(line) == 0 {
			if data.Len() == 0 {
				event = ""
				continue
			}
			d := data.String()
			return sseEvent{ID: r.lastID, Event: event, Data: d[:len(d)-1]}, nil
		}
		if line[0] == ':' {
			continue
		}
		name, value, found := bytes.Cut(line, []byte(":"))
		if found {
			value = bytes.TrimPrefix(value, []byte(" "))
		}
		switch string(name) {
		case "event":
			event = string(value)
		case "data":
			if data.Len()+len(value)+1 > maxSSEEvent {
				return sseEvent{}, ErrEventTooLarge
			}
			data.Write(value)
			data.WriteByte('\n')
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				r.lastID = string(value)
			}
		}
		// "retry" and unknown fields are ignored.
	}
	if err := r.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return sseEvent{}, ErrEventTooLarge
		}
		return sseEvent{}, err
	}
	return sseEvent{}, io.EOF
}

// split is the bufio.SplitFunc of the stream's lines, ended by CRLF, LF
// or CR. A CR ends its line at once, so an event is dispatched without
// waiting for more bytes; an LF right after it is then skipped.
func (r *sseReader) split(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if r.skipLF && len(data) > 0 {
		r.skipLF = false
		if data[0] == '\n' {
			return 1, nil, nil
		}
	}
	for i, b := range data {
		switch b {
		case '\n':
			return i + 1, data[:i], nil
		case '\r':
			if i+1 < len(data) {
				if data[i+1] == '\n' {
					return i + 2, data[:i], nil
				}
				return i + 1, data[:i], nil
			}
			r.skipLF = true
			return i + 1, data[:i], nil
		}
	}
	if atEOF && len(data) > 0 {
		// An unterminated last line: the event it belongs to is never
		// dispatched, but its fields are read as any line's.
		return len(data), data, nil
	}
	return 0, nil, nil
}
