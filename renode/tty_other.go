//go:build !linux

package renode

import "os"

// makeRaw leaves the terminal as it is where the termios calls differ from
// Linux's: the shell then sees input line by line, echoed by the terminal.
func makeRaw(*os.File) error { return nil }
