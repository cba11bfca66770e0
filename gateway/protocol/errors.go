package protocol

import (
	"errors"
	"fmt"
)

// Code classifies an Error (spec section "Error codes"). Numbers are part of
// the wire format.
type Code uint16

// Error codes.
const (
	CodeMalformed          Code = 1  // bytes are not a valid frame, envelope or body
	CodeFrameTooLarge      Code = 2  // frame length over the limit
	CodeUnsupportedVersion Code = 3  // no common protocol version
	CodeUnsupportedType    Code = 4  // message type unknown to the receiver
	CodeUnauthenticated    Code = 5  // message needs a client certificate
	CodeEnrollRefused      Code = 6  // token unknown, used, expired, or CSR refused
	CodeRevoked            Code = 7  // certificate revoked
	CodeHashMismatch       Code = 8  // module bytes do not match the manifest's sha256
	CodeInvalidModule      Code = 9  // not a valid WebAssembly module for this device
	CodeTooLarge           Code = 10 // module larger than the device accepts
	CodeUnknownApp         Code = 11 // command names an app the device does not have
	CodeBadRequest         Code = 12 // well-formed but not acceptable (field missing, bad offset, ...)
	CodeIdentityMismatch   Code = 13 // hello names another device than the certificate
	CodeUnexpected         Code = 14 // message not allowed in the session's current state
	CodeInternal           Code = 15 // the receiver failed; retrying may help
	CodeReplaced           Code = 16 // a newer session of the same device took over
)

var codeNames = map[Code]string{
	CodeMalformed: "malformed", CodeFrameTooLarge: "frame-too-large",
	CodeUnsupportedVersion: "unsupported-version", CodeUnsupportedType: "unsupported-type",
	CodeUnauthenticated: "unauthenticated", CodeEnrollRefused: "enroll-refused", CodeRevoked: "revoked",
	CodeHashMismatch: "hash-mismatch", CodeInvalidModule: "invalid-module", CodeTooLarge: "too-large",
	CodeUnknownApp: "unknown-app", CodeBadRequest: "bad-request", CodeIdentityMismatch: "identity-mismatch",
	CodeUnexpected: "unexpected", CodeInternal: "internal", CodeReplaced: "replaced",
}

func (c Code) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("code(%d)", uint16(c))
}

// Error is the body of an error message and the Go error a peer's error
// reply turns into. Text is for people; programs branch on Code.
type Error struct {
	Code Code   `cbor:"1,keyasint"`
	Text string `cbor:"2,keyasint,omitempty"`
}

func (e *Error) Error() string {
	if e.Text == "" {
		return e.Code.String()
	}
	return e.Code.String() + ": " + e.Text
}

// Is makes errors.Is(err, &Error{Code: c}) match any Error with code c.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Text == ""
}

// Errorf builds an Error with a formatted text.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Text: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of the first *Error in err's chain, or
// CodeInternal when there is none.
func CodeOf(err error) Code {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return CodeInternal
}
