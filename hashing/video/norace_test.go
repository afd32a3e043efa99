//go:build !race

package video

const conformanceStep = 1

// raceDetector says whether the tests run under -race, where hashing
// full-size frames is many times slower.
const raceDetector = false
