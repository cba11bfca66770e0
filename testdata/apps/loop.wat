;; loop is a misbehaving Wasmbed app: its tick never returns. The runtime
;; interrupts the call when the app's time limit (default 5000 ms per call)
;; runs out and stops the app with the reason "time limit"; the device and
;; its other apps keep running.
(module
  (memory (export "memory") 1)
  (func (export "tick")
    (loop $forever
      (br $forever))))
