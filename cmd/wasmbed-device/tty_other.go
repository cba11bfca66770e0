//go:build !linux

package main

// consoleMode leaves standard input as it is where terminal modes are not
// handled.
func consoleMode() (restore func()) { return func() {} }
