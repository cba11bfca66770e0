// Command wasmbed-tui is the fleet console: a terminal UI over the
// daemon's HTTP API showing devices, applications, gateways, events, the
// fleet's topology and board consoles, live. It writes nothing to the
// terminal but the UI; errors that end it are printed after it left the
// screen.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"wasmbed.io/wasmbed/daemon/client"
	"wasmbed.io/wasmbed/tui"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "wasmbed-tui:", err)
		os.Exit(1)
	}
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func run() error {
	var addr, tokenFile string
	flag.StringVar(&addr, "daemon", env("WASMBED_DAEMON", "http://127.0.0.1:3001"), "the daemon's API address (env WASMBED_DAEMON)")
	flag.StringVar(&tokenFile, "token-file", env("WASMBED_TOKEN_FILE", ""), "file holding the API bearer token (env WASMBED_TOKEN_FILE)")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}

	var opts []client.Option
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return fmt.Errorf("token file: %w", err)
		}
		token := strings.TrimSpace(string(b))
		if token == "" {
			return fmt.Errorf("token file %s is empty", tokenFile)
		}
		opts = append(opts, client.WithToken(token))
	}
	c, err := client.New(addr, opts...)
	if err != nil {
		return err
	}

	// SIGINT arrives as ctrl+c through the terminal; SIGTERM and SIGHUP
	// (the ssh session went away) end the console.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	return tui.Run(ctx, tui.Options{Client: c, Address: addr})
}
