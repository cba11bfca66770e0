// Package mcu holds the C firmware for microcontroller boards; its Go files are only tests that build the C parts on the host.
package mcu
