package agent

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"wasmbed.io/wasmbed/gateway/protocol"
)

// consoleWriter is the device console: local output plus the gateway.
type consoleWriter struct{ a *Agent }

func (w consoleWriter) Write(p []byte) (int, error) {
	n := len(p)
	w.a.cfg.Console.Write(p)
	for len(p) > 0 {
		k := min(len(p), protocol.MaxChunk)
		w.a.send(protocol.TypeConsole, &protocol.Console{Data: bytes.Clone(p[:k])})
		p = p[k:]
	}
	return n, nil
}

// ConsoleInput feeds bytes typed on the device's local console (its
// standard input or UART) to the shell, as console input from the gateway
// is. Safe for concurrent use.
func (a *Agent) ConsoleInput(p []byte) { a.shell(p) }

// shell is the device's console shell: operator input arrives as Console
// messages or on the local console, is echoed like a serial terminal does,
// and each line is a command.
func (a *Agent) shell(in []byte) {
	a.mu.Lock()
	a.line = append(a.line, in...)
	var lines []string
	for {
		i := bytes.IndexAny(a.line, "\r\n")
		if i < 0 {
			break
		}
		lines = append(lines, string(a.line[:i]))
		a.line = a.line[i+1:]
	}
	if len(a.line) > 256 {
		a.line = a.line[:0] // nobody types that much before enter
	}
	a.mu.Unlock()
	echo := bytes.ReplaceAll(bytes.ReplaceAll(in, []byte("\r"), []byte("\n")), []byte("\n"), []byte("\r\n"))
	a.console.Write(echo)
	for _, l := range lines {
		if out := a.command(strings.TrimSpace(l)); out != "" {
			a.console.Write([]byte(strings.ReplaceAll(out, "\n", "\r\n")))
		}
	}
	if len(lines) > 0 {
		a.console.Write([]byte(a.cfg.Name + "> "))
	}
}

// command runs one shell line and returns its output.
func (a *Agent) command(line string) string {
	switch line {
	case "":
		return ""
	case "help":
		return "commands: status, apps, uptime, help\n"
	case "uptime":
		return time.Since(a.start).Round(time.Second).String() + "\n"
	case "status":
		return fmt.Sprintf("device %s board %s firmware %s gateway %s\n", a.cfg.Name, a.cfg.Board, a.cfg.Firmware, a.cfg.Gateway)
	case "apps":
		var b strings.Builder
		for _, in := range a.apps.report() {
			fmt.Fprintf(&b, "%-16s %-10s %-12s %s\n", in.App, in.Version, in.State, in.Reason)
		}
		if b.Len() == 0 {
			return "no apps\n"
		}
		return b.String()
	}
	return fmt.Sprintf("unknown command %q; try help\n", line)
}
