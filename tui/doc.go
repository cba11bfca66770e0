// Package tui is wasmbed-tui, the fleet console: a terminal UI in the
// manner of k9s over the daemon's HTTP API. It owns the in-memory cache of
// devices, applications and gateways fed by one subscription to the
// daemon's event stream, the views over that cache (devices, applications,
// gateways, events, topology, board consoles) and the pure functions that
// render their rows.
//
// It talks to the daemon only through the typed client (daemon/client)
// and the wire types (daemon/api, crds/v1alpha1); a test keeps it from
// importing the daemon's internals. All I/O runs in tea.Cmds that return
// typed messages; Update and View never block.
package tui
