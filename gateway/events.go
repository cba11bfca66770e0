package gateway

import (
	"time"

	"wasmbed.io/wasmbed/gateway/protocol"
)

// EventType names what happened on the gateway.
type EventType string

// Event types.
const (
	EventOnline    EventType = "online"   // a device completed hello; Session is set
	EventOffline   EventType = "offline"  // a device's session ended; Reason says why
	EventApp       EventType = "app"      // an app changed state on a device; App is set
	EventProgress  EventType = "progress" // module transfer progress; App, Sent and Total are set
	EventRemoved   EventType = "removed"  // an app was removed from a device; App names it
	EventTelemetry EventType = "telemetry"
	EventConsole   EventType = "console" // device console output; Console is set
)

// Event is what the gateway reports to its owner.
type Event struct {
	Type      EventType
	Device    string
	Time      time.Time
	Session   *SessionInfo        // EventOnline; EventOffline: the session as it ended
	App       *protocol.AppInfo   // EventApp, EventProgress, EventRemoved
	Sent      uint64              // EventProgress: bytes acked by the device
	Total     uint64              // EventProgress: module size; 0 on statuses the device reports
	Telemetry *protocol.Telemetry // EventTelemetry
	Console   *protocol.Console   // EventConsole
	Reason    string              // EventOffline, failed EventApp
}

// EventSink receives the gateway's events: the boundary between the gateway
// and whoever owns it (the daemon). HandleEvent is called from session
// goroutines, concurrently, and must not block for long.
type EventSink interface {
	HandleEvent(Event)
}

// EventFunc adapts a function to EventSink.
type EventFunc func(Event)

// HandleEvent calls f(e).
func (f EventFunc) HandleEvent(e Event) { f(e) }
