;; grow is a test fixture: each tick calls memory.grow by one page and records
;; the result as telemetry "grow" (the old size in pages, or -1 once the app's
;; memory limit is reached) and the size after it as "pages".
(module
  (import "wasmbed" "telemetry" (func $telemetry (param i32 i32 f64)))
  (memory (export "memory") 1)
  (data (i32.const 16) "grow")
  (data (i32.const 32) "pages")
  (func (export "tick")
    (call $telemetry (i32.const 16) (i32.const 4)
      (f64.convert_i32_s (memory.grow (i32.const 1))))
    (call $telemetry (i32.const 32) (i32.const 5)
      (f64.convert_i32_u (memory.size)))))
