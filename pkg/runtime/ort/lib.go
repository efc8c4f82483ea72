//go:build cgo

package ort

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	const void *(*GetApi)(uint32_t version);
	const char *(*GetVersionString)(void);
} optictl_api_base;

typedef const optictl_api_base *(*optictl_get_api_base)(void);

// optictl_probe opens path and asks ONNX Runtime for its version and for
// the C API version api. It returns 0 on success, 1 when dlopen fails, 2
// when the file is not ONNX Runtime. *version and *err are malloc'd (or
// NULL). On success the handle stays open (the library is about to be
// used); otherwise it is closed.
static int optictl_probe(const char *path, uint32_t api, char **version, int *has_api, char **err) {
	*version = NULL;
	*err = NULL;
	*has_api = 0;
	void *h = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
	if (h == NULL) {
		const char *e = dlerror();
		*err = strdup(e ? e : "dlopen failed");
		return 1;
	}
	optictl_get_api_base f = (optictl_get_api_base)dlsym(h, "OrtGetApiBase");
	if (f == NULL) {
		dlclose(h);
		return 2;
	}
	const optictl_api_base *b = f();
	if (b == NULL) {
		dlclose(h);
		return 2;
	}
	if (b->GetVersionString != NULL) {
		const char *v = b->GetVersionString();
		if (v != NULL) *version = strdup(v);
	}
	*has_api = b->GetApi != NULL && b->GetApi(api) != NULL;
	if (!*has_api) dlclose(h);
	return 0;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	ortgo "github.com/yalue/onnxruntime_go"
)

// cAPIVersion is the ONNX Runtime C API version onnxruntime_go v1.27 asks for.
const cAPIVersion = 24

// errTooOld marks a library that loads but lacks the needed C API.
var errTooOld = errors.New("too old")

// probe checks that path is an ONNX Runtime with the needed C API and
// returns its version.
func probe(path string) (string, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var cver, cerr *C.char
	var hasAPI C.int
	rc := C.optictl_probe(cpath, C.uint32_t(cAPIVersion), &cver, &hasAPI, &cerr)
	var ver string
	if cver != nil {
		ver = C.GoString(cver)
		C.free(unsafe.Pointer(cver))
	}
	if cerr != nil {
		defer C.free(unsafe.Pointer(cerr))
	}
	switch rc {
	case 1:
		return "", fmt.Errorf("cannot load it: %s", C.GoString(cerr))
	case 2:
		return "", fmt.Errorf("it is not an ONNX Runtime library (no OrtGetApiBase)")
	}
	if hasAPI == 0 {
		if ver == "" {
			ver = VersionFromName(path)
		}
		if ver == "" {
			ver = "unknown"
		}
		return ver, fmt.Errorf("%w: ONNX Runtime %s lacks C API %d (needs ONNX Runtime >= %s)", errTooOld, ver, cAPIVersion, MinVersion)
	}
	return ver, nil
}

// env is the process-global ONNX Runtime environment.
var env struct {
	sync.Mutex
	path, version, source string
}

// LoadedLibrary reports the library the process uses, or "" before the
// first successful Open.
func LoadedLibrary() (path, version, source string) {
	env.Lock()
	defer env.Unlock()
	return env.path, env.version, env.source
}

func samePath(a, b string) bool {
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	if err1 != nil || err2 != nil {
		return filepath.Clean(a) == filepath.Clean(b)
	}
	return ra == rb
}

// ensureEnv loads the library (once per process) and initializes the
// environment. A failed attempt is not remembered, so a later call with a
// better path can succeed.
func ensureEnv(explicit string) error {
	env.Lock()
	defer env.Unlock()
	if env.path != "" {
		want := explicit
		if want == "" {
			want = os.Getenv(EnvLibraryPath)
		}
		if want != "" && !samePath(want, env.path) {
			return fmt.Errorf("ort: ONNX Runtime is already loaded from %s in this process; it cannot also load %s", env.path, want)
		}
		return nil
	}
	cands := Candidates(explicit)
	if len(cands) == 0 {
		return fmt.Errorf("ort: ONNX Runtime (libonnxruntime.so) not found; %s", installHint)
	}
	var rejected []string
	for _, c := range cands {
		if c.Explicit {
			if _, err := os.Stat(c.Path); err != nil {
				return fmt.Errorf("ort: ONNX Runtime library %s (from %s): %w; %s", c.Path, c.Source, err, installHint)
			}
		}
		ver, err := probe(c.Path)
		if err != nil {
			if c.Explicit {
				return fmt.Errorf("ort: ONNX Runtime library %s (from %s): %w; %s", c.Path, c.Source, err, installHint)
			}
			rejected = append(rejected, fmt.Sprintf("%s (%s): %v", c.Path, c.Source, err))
			continue
		}
		ortgo.SetSharedLibraryPath(c.Path)
		if err := ortgo.InitializeEnvironment(ortgo.WithLogLevelFatal()); err != nil {
			if c.Explicit {
				return fmt.Errorf("ort: initializing ONNX Runtime %s from %s: %w", ver, c.Path, err)
			}
			rejected = append(rejected, fmt.Sprintf("%s (%s): %v", c.Path, c.Source, err))
			continue
		}
		if v := ortgo.GetVersion(); v != "" {
			ver = v
		}
		env.path, env.version, env.source = c.Path, ver, c.Source
		return nil
	}
	return fmt.Errorf("ort: no usable ONNX Runtime library: %s; %s", strings.Join(rejected, "; "), installHint)
}

// Load finds and loads ONNX Runtime (as the first Open does) and reports
// which library the process uses.
func Load(explicit string) (path, version, source string, err error) {
	if err := ensureEnv(explicit); err != nil {
		return "", "", "", err
	}
	path, version, source = LoadedLibrary()
	return path, version, source, nil
}
