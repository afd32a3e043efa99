module github.com/parleychat/parley/interop/mlsgo

go 1.26.0

require (
	github.com/parleychat/parley v0.0.0
	github.com/thomas-vilte/mls-go v1.6.0
	golang.org/x/sys v0.50.0
)

require (
	github.com/cloudflare/circl v1.6.5 // indirect
	golang.org/x/crypto v0.59.0 // indirect
)

replace github.com/parleychat/parley => ../..
