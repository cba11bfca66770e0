;; longname is a test fixture: its _start records a telemetry value whose name
;; is 65 bytes long, one over the limit, so the call traps with
;; "telemetry limit".
(module
  (import "wasmbed" "telemetry" (func $telemetry (param i32 i32 f64)))
  (memory (export "memory") 1)
  (data (i32.const 16) "a_name_that_is_sixty_five_bytes_long_which_is_over_the_limit_of64")
  (func (export "_start")
    (call $telemetry (i32.const 16) (i32.const 65) (f64.const 1))))
