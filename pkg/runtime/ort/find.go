package ort

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// CacheVersion is the ONNX Runtime version that "make setup"
// (scripts/fetch-ort.sh) puts into .cache/ort.
const CacheVersion = "1.24.1"

// MinVersion is the oldest ONNX Runtime whose C API onnxruntime_go v1.27
// can use (C API version 24).
const MinVersion = "1.24"

// EnvLibraryPath names the environment variable holding an explicit
// library path.
const EnvLibraryPath = "ONNXRUNTIME_SHARED_LIBRARY_PATH"

// EnvCache names the environment variable that overrides the cache root.
const EnvCache = "OPTICTL_ORT_CACHE"

// installHint says how to get a library; every "not found" error ends with it.
const installHint = "run `make setup` in the optictl repository (it fetches ONNX Runtime " + CacheVersion +
	" into .cache/ort), or set " + EnvLibraryPath + " (or --ort-lib) to a libonnxruntime.so of ONNX Runtime >= " + MinVersion

// Candidate is a library file and where the search found it.
type Candidate struct {
	Path   string
	Source string // "--ort-lib", "$ONNXRUNTIME_SHARED_LIBRARY_PATH", "cache", "python", "system"
	// Explicit candidates are used or reported, never skipped.
	Explicit bool
}

// Candidates lists the library files the search would try, best first.
// explicit is Options.ORTLib; when it or $ONNXRUNTIME_SHARED_LIBRARY_PATH
// is set, it is the only candidate.
func Candidates(explicit string) []Candidate {
	if explicit != "" {
		return []Candidate{{Path: explicit, Source: "--ort-lib", Explicit: true}}
	}
	if p := os.Getenv(EnvLibraryPath); p != "" {
		return []Candidate{{Path: p, Source: "$" + EnvLibraryPath, Explicit: true}}
	}
	var out []Candidate
	seen := map[string]bool{}
	add := func(src string, paths ...string) {
		for _, p := range paths {
			abs, err := filepath.Abs(p)
			if err != nil {
				abs = p
			}
			if real, err := filepath.EvalSymlinks(abs); err == nil {
				abs = real
			}
			if seen[abs] {
				continue
			}
			if st, err := os.Stat(abs); err != nil || st.IsDir() {
				continue
			}
			seen[abs] = true
			out = append(out, Candidate{Path: p, Source: src})
		}
	}
	for _, root := range CacheRoots() {
		add("cache", libsIn(root)...)
	}
	add("python", pythonLibs()...)
	for _, d := range []string{"/usr/local/lib", "/usr/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib64"} {
		add("system", libsInDir(d)...)
	}
	return out
}

// CacheRoots lists the cache folders searched, in order: $OPTICTL_ORT_CACHE,
// then every .cache/ort met walking up from the executable's folder and
// from the working directory, stopping at a module root (a go.mod).
func CacheRoots() []string {
	var roots []string
	seen := map[string]bool{}
	add := func(d string) {
		if seen[d] {
			return
		}
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			seen[d] = true
			roots = append(roots, d)
		}
	}
	if d := os.Getenv(EnvCache); d != "" {
		add(d)
	}
	walk := func(start string) {
		for d := start; ; d = filepath.Dir(d) {
			add(filepath.Join(d, ".cache", "ort"))
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				return
			}
			if filepath.Dir(d) == d {
				return
			}
		}
	}
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		walk(filepath.Dir(exe))
	}
	if wd, err := os.Getwd(); err == nil {
		walk(wd)
	}
	return roots
}

// libsIn lists libraries in a cache root: <root>/<version>/libonnxruntime.so*
// (newest version first), then <root>/libonnxruntime.so*.
func libsIn(root string) []string {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	var vers []string
	for _, e := range ents {
		if e.IsDir() && parseVersion(e.Name()) != nil {
			vers = append(vers, e.Name())
		}
	}
	sort.Slice(vers, func(i, j int) bool { return compareVersions(vers[i], vers[j]) > 0 })
	var out []string
	for _, v := range vers {
		out = append(out, libsInDir(filepath.Join(root, v))...)
	}
	return append(out, libsInDir(root)...)
}

// libsInDir lists libonnxruntime.so, libonnxruntime.so.1 and
// libonnxruntime.so.X.Y.Z in dir, the highest versioned name first.
func libsInDir(dir string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, "libonnxruntime.so*"))
	var out []string
	for _, p := range m {
		base := filepath.Base(p)
		if base == "libonnxruntime.so" || strings.HasPrefix(base, "libonnxruntime.so.") && parseVersion(strings.TrimPrefix(base, "libonnxruntime.so.")) != nil {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return compareVersions(VersionFromName(out[i]), VersionFromName(out[j])) > 0
	})
	return out
}

// pythonLibs lists onnxruntime/capi/libonnxruntime.so* of installed Python
// onnxruntime packages, without running Python.
func pythonLibs() []string {
	var dirs []string
	home, _ := os.UserHomeDir()
	pats := []string{
		"/usr/lib/python3*/site-packages",
		"/usr/lib/python3*/dist-packages",
		"/usr/local/lib/python3*/site-packages",
		"/usr/local/lib/python3*/dist-packages",
		"/usr/lib64/python3*/site-packages",
		"/opt/conda/lib/python3*/site-packages",
	}
	if home != "" {
		pats = append(pats,
			filepath.Join(home, ".local/lib/python3*/site-packages"),
			filepath.Join(home, ".pyenv/versions/*/lib/python3*/site-packages"),
			filepath.Join(home, "miniconda3/lib/python3*/site-packages"),
			filepath.Join(home, "anaconda3/lib/python3*/site-packages"))
	}
	if r := os.Getenv("PYENV_ROOT"); r != "" {
		pats = append(pats, filepath.Join(r, "versions/*/lib/python3*/site-packages"))
	}
	if v := os.Getenv("VIRTUAL_ENV"); v != "" {
		pats = append(pats, filepath.Join(v, "lib/python3*/site-packages"))
	}
	if v := os.Getenv("CONDA_PREFIX"); v != "" {
		pats = append(pats, filepath.Join(v, "lib/python3*/site-packages"))
	}
	for _, p := range pats {
		m, _ := filepath.Glob(p)
		sort.Sort(sort.Reverse(sort.StringSlice(m)))
		dirs = append(dirs, m...)
	}
	var out []string
	for _, d := range dirs {
		for _, pkg := range []string{"onnxruntime", "onnxruntime_gpu"} {
			out = append(out, libsInDir(filepath.Join(d, pkg, "capi"))...)
		}
	}
	return out
}

var versionRE = regexp.MustCompile(`libonnxruntime\.so\.(\d+\.\d+\.\d+)`)

// VersionFromName reads the version out of a file name such as
// libonnxruntime.so.1.17.1, or returns "".
func VersionFromName(path string) string {
	if m := versionRE.FindStringSubmatch(filepath.Base(path)); m != nil {
		return m[1]
	}
	return ""
}

func parseVersion(s string) []int {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ".")
	out := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil
		}
		out[i] = n
	}
	return out
}

// compareVersions orders dotted versions; an unparsable one sorts lowest.
func compareVersions(a, b string) int {
	va, vb := parseVersion(a), parseVersion(b)
	for i := 0; i < len(va) || i < len(vb); i++ {
		x, y := -1, -1
		if i < len(va) {
			x = va[i]
		}
		if i < len(vb) {
			y = vb[i]
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// versionOK reports whether v is at least MinVersion (an unknown version
// is given the benefit of the doubt; loading decides).
func versionOK(v string) bool {
	return v == "" || compareVersions(v, MinVersion) >= 0
}

// FindLibrary returns the first candidate that exists, without loading it;
// for reports ("optictl backends"). Open does the real check.
func FindLibrary(explicit string) (Candidate, error) {
	cs := Candidates(explicit)
	if len(cs) == 0 {
		return Candidate{}, fmt.Errorf("ort: ONNX Runtime (libonnxruntime.so) not found; %s", installHint)
	}
	c := cs[0]
	if c.Explicit {
		if _, err := os.Stat(c.Path); err != nil {
			return c, fmt.Errorf("ort: ONNX Runtime library %s (from %s): %w", c.Path, c.Source, err)
		}
	}
	return c, nil
}
