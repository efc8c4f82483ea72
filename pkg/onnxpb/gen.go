// Package onnxpb holds Go types generated from ONNX's official onnx.proto
// (as shipped by Debian's libonnx-dev, ONNX 1.12, the ONNX-ML variant).
//
// The protobuf package is renamed from "onnx" to "optictl.onnx" so that these
// types never clash with another ONNX registration (for example
// github.com/owulveryck/onnx-go) linked into the same binary. The wire format
// is unaffected by the package name.
//
// Fields added to onnx.proto after 1.12 are not lost: protobuf-go keeps them as
// unknown fields and writes them back unchanged.
package onnxpb

//go:generate sh -c "sed -e 's/^package onnx;/package optictl.onnx;/' /usr/include/onnx/onnx.proto > onnx.proto && protoc --plugin=protoc-gen-go=$(go env GOPATH)/bin/protoc-gen-go --go_out=. --go_opt=paths=source_relative --go_opt=Monnx.proto=github.com/optictl/optictl/pkg/onnxpb onnx.proto"
