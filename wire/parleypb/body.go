// Package parleypb holds the generated protobuf code of Parley's wire
// protocol (parley.proto); regenerate with `go generate ./wire`.
package parleypb

// ServerFrameBody is any of the ServerFrame_* oneof wrappers, exported so
// code can build frames generically.
type ServerFrameBody = isServerFrame_Body

// ClientFrameBody is any of the ClientFrame_* oneof wrappers.
type ClientFrameBody = isClientFrame_Body
