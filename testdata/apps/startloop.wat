;; startloop is a hostile fixture: its start section never returns, so it
;; runs while the module is instantiated, before any tick. The runtime bounds
;; instantiation by the app's time limit and reports "time limit".
(module
  (memory (export "memory") 1)
  (func $forever
    (loop $again
      (br $again)))
  (func (export "tick"))
  (start $forever))
