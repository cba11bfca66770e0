;; trap is a failing Wasmbed app: its _start logs one line through
;; wasmbed.log and then executes `unreachable`. The runtime stops the app and
;; reports "trap: wasm error: unreachable"; the logged line still reaches the
;; device console first.
(module
  (import "wasmbed" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "about to trap")
  (func (export "_start")
    (call $log (i32.const 16) (i32.const 13))
    unreachable))
