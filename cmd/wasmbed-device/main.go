// Command wasmbed-device is the Wasmbed device runtime for Linux-class
// devices and the default emulated board: it enrolls with the gateway (or
// uses a provisioned identity), keeps its session and runs the WebAssembly
// apps deployed to it. Its console (app output, shell) is standard output;
// logs go to standard error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"wasmbed.io/wasmbed/firmware/agent"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "wasmbed-device:", err)
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
	var cfg agent.Config
	var caFile, tokenFile, caps, logLevel string
	flag.StringVar(&cfg.Name, "name", env("WASMBED_DEVICE", ""), "device name (env WASMBED_DEVICE)")
	flag.StringVar(&cfg.Board, "board", env("WASMBED_BOARD", "linux"), "board or MCU type reported to the gateway (env WASMBED_BOARD)")
	flag.StringVar(&cfg.Firmware, "firmware", env("WASMBED_FIRMWARE", "wasmbed-device/dev"), "firmware version reported (env WASMBED_FIRMWARE)")
	flag.StringVar(&caps, "capabilities", env("WASMBED_CAPABILITIES", "wasm,wasi"), "comma-separated capabilities (env WASMBED_CAPABILITIES)")
	flag.StringVar(&cfg.Gateway, "gateway", env("WASMBED_GATEWAY", "127.0.0.1:8081"), "gateway host:port (env WASMBED_GATEWAY)")
	flag.StringVar(&cfg.ServerName, "server-name", env("WASMBED_SERVER_NAME", ""), "name in the gateway's certificate; default the gateway host")
	flag.StringVar(&cfg.StateDir, "state-dir", env("WASMBED_STATE_DIR", ""), "identity, modules and app state (env WASMBED_STATE_DIR)")
	flag.StringVar(&caFile, "ca-file", env("WASMBED_CA_FILE", ""), "CA certificate (PEM) to trust before enrollment (env WASMBED_CA_FILE)")
	flag.StringVar(&tokenFile, "token-file", env("WASMBED_TOKEN_FILE", ""), "file holding a one-time enrollment token (env WASMBED_TOKEN_FILE)")
	flag.Int64Var(&cfg.MaxModule, "max-module", agent.DefaultMaxModule, "largest module accepted, bytes")
	flag.StringVar(&logLevel, "log-level", env("WASMBED_LOG_LEVEL", "info"), "debug, info, warn or error")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg.Console = os.Stdout
	if caps != "" {
		cfg.Capabilities = strings.Split(caps, ",")
	}
	if cfg.StateDir == "" {
		return errors.New("--state-dir is required")
	}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return err
		}
		cfg.CAPEM = b
	}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return err
		}
		cfg.Token = strings.TrimSpace(string(b))
	}
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	// Standard input is the local console (a board's UART under the sim
	// and docker backends): what is typed there goes to the device shell.
	restore := consoleMode()
	defer restore()
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := os.Stdin.Read(buf)
			if n > 0 {
				a.ConsoleInput(append([]byte(nil), buf[:n]...))
			}
			if err != nil {
				return
			}
		}
	}()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second signal ends the process at once
	}()
	return a.Run(ctx)
}
