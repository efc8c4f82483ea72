package serve

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/optictl/optictl/pkg/runtime"
)

// precompute runs every request stored under dir through the model and
// fills the cache. Layout: DIR/<model>/<any>/input_K.pb (ONNX TensorProto
// files named after the model's inputs, the ONNX test-data layout), or,
// when only one model is served, DIR/<any>/input_K.pb.
func (s *Server) precompute(dir string) error {
	n := 0
	for _, name := range s.order {
		sm := s.models[name]
		root := filepath.Join(dir, name)
		if _, err := os.Stat(root); err != nil {
			if len(s.order) != 1 {
				continue
			}
			root = dir
		}
		sets, err := filepath.Glob(filepath.Join(root, "*"))
		if err != nil {
			return err
		}
		sort.Strings(sets)
		for _, set := range sets {
			st, err := os.Stat(set)
			if err != nil || !st.IsDir() {
				continue
			}
			files, _ := filepath.Glob(filepath.Join(set, "input_*.pb"))
			if len(files) == 0 {
				continue
			}
			sort.Strings(files)
			req := &inferRequest{model: sm.name, version: sm.version}
			for _, f := range files {
				t, err := runtime.LoadTensorFile(f)
				if err != nil {
					return fmt.Errorf("serve: precompute %s: %w", f, err)
				}
				// input_K.pb is the model's K-th input (ONNX test-data layout).
				k := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "input_"), ".pb")
				var idx int
				if _, err := fmt.Sscan(k, &idx); err != nil || idx < 0 || idx >= len(sm.variants[0].inputs) {
					return fmt.Errorf("serve: precompute %s: the model has no input number %q", f, k)
				}
				tname := sm.variants[0].inputs[idx].Name
				req.names = append(req.names, tname)
				req.tensors = append(req.tensors, t)
			}
			s.ready.Store(true)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_, err = s.infer(ctx, req)
			cancel()
			s.ready.Store(false)
			if err != nil {
				return fmt.Errorf("serve: precompute %s: %w", set, err)
			}
			n++
		}
	}
	s.cfg.Log.Info("precomputed", "requests", n, "dir", dir)
	if n == 0 {
		return fmt.Errorf("serve: precompute: no input_*.pb request folders under %s", dir)
	}
	return nil
}
