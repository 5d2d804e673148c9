//go:build race

package manifests

// raceEnabled makes the binaries the tests build share the race-built
// packages already in the build cache, instead of compiling every
// dependency a second time.
const raceEnabled = true
