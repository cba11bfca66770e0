;; bigmem is a test fixture: it declares a minimum of 17 pages (1088 KiB) of
;; linear memory, one page over the default limit, so the runtime refuses it.
(module
  (memory (export "memory") 17)
  (func (export "tick")))
