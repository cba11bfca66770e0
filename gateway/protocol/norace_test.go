//go:build !race

package protocol_test

// raceDetector is whether the tests run under the race detector, whose
// sync.Pool drops a quarter of what is put back at random.
const raceDetector = false
