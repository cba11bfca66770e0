;; sleep is a test fixture: its _start records one telemetry value, then asks
;; for a 60 s sleep through wasmbed.sleep_ms. Stopping the app must end the
;; sleep at once; a time limit below 60 s stops it with "time limit".
(module
  (import "wasmbed" "telemetry" (func $telemetry (param i32 i32 f64)))
  (import "wasmbed" "sleep_ms" (func $sleep_ms (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "sleeping")
  (func (export "_start")
    (call $telemetry (i32.const 16) (i32.const 8) (f64.const 1))
    (call $sleep_ms (i32.const 60000))))
