;; badimport is a test fixture: it imports wasmbed.reboot, which the host ABI
;; does not provide, so the runtime refuses it before running anything.
(module
  (import "wasmbed" "reboot" (func $reboot))
  (func (export "_start")
    (call $reboot)))
