// Package tensorio reads and writes tensors in the file formats optictl's
// commands accept: NumPy .npy (format versions 1-3, little-endian, C order),
// .npz (a zip of .npy files), ONNX TensorProto .pb files, and ONNX
// test_data_set_N folders (input_K.pb / output_K.pb).
//
// Test data set folders are read through runtime.LoadTestDataSet, so the
// runtime's tests and the commands share one implementation of that layout;
// tensorio adds the model's input/output names where files carry none.
// DecodePB/LoadPB decode single TensorProto files (with their names) by the
// same raw_data/typed-field rules that pkg/graph applies to initializers.
//
// Invariants: decoding never panics on hostile input and never allocates
// more than the input's own size plus a small constant (sizes claimed by a
// header are checked against the bytes actually present before any
// allocation). Tensors come back as *runtime.Tensor with 8-byte aligned
// little-endian data.
package tensorio
