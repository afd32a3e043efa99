//go:build !race

package video

const conformanceStep = 1
