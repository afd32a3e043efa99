//go:build race

package main

// raceEnabled: the parleyd the end-to-end tests build has the race
// detector too.
const raceEnabled = true
