// Package kservepb holds the Go types and gRPC stubs generated from the KServe
// v2 inference protocol (grpc_predict_v2.proto beside this file).
package kservepb

//go:generate protoc --plugin=protoc-gen-go=$HOME/go/bin/protoc-gen-go --plugin=protoc-gen-go-grpc=$HOME/go/bin/protoc-gen-go-grpc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative grpc_predict_v2.proto
