package passes

import (
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	goruntime "runtime"
	"sort"
	"strings"
	"sync"

	"github.com/optictl/optictl/pkg/graph"
)

// Level is an optimization level.
type Level int

// Optimization levels.
const (
	O0 Level = iota // nothing
	O1              // safe cleanups
	O2              // + fusions and reordering (default)
	O3              // + target-specific rewrites
)

func (l Level) String() string { return fmt.Sprintf("O%d", int(l)) }

// ParseLevel accepts "O2", "o2", "2", "-O2".
func ParseLevel(s string) (Level, error) {
	t := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "-")
	t = strings.TrimPrefix(t, "O")
	switch t {
	case "0":
		return O0, nil
	case "1":
		return O1, nil
	case "2":
		return O2, nil
	case "3":
		return O3, nil
	}
	return 0, fmt.Errorf("passes: unknown level %q (valid: O0, O1, O2, O3)", s)
}

// Targets a model can be optimized for.
const (
	TargetGeneric = "generic"
	TargetORTCPU  = "ort-cpu"
)

// Pass is one declared rewrite.
type Pass struct {
	// Name is kebab-case and unique.
	Name string
	// Doc's first line is the one-line title `optictl passes` prints.
	Doc string
	// Level is the lowest level that runs the pass.
	Level Level
	// Requires names passes that must run before this one (in the pipeline
	// table and in an explicit --passes list, where they are added).
	Requires []string
	// Targets restricts the pass to these targets; empty means every target.
	Targets []string
	// Run rewrites c.Model and reports whether it changed anything.
	Run func(c *Context) (changed bool, err error)
	// File is the source file that defines the pass, relative to the
	// module root (e.g. "pkg/passes/fuse_conv.go"). Register fills it in,
	// when empty, from where Run is written; `optictl passes` prints it.
	// A built-in pass lives in a file named after it or its family (the
	// file's words, split at "_", appear in order in the pass name), which
	// a test checks.
	File string
}

// moduleRoot is the directory (or, under -trimpath, the module path) that
// source files are reported relative to.
var moduleRoot = func() string {
	_, f, _, ok := goruntime.Caller(0)
	if !ok {
		return ""
	}
	// f is <root>/pkg/passes/pass.go.
	return filepath.ToSlash(filepath.Dir(filepath.Dir(filepath.Dir(f)))) + "/"
}()

// sourceOf returns the module-relative file that defines fn, or "".
func sourceOf(fn any) string {
	v := reflect.ValueOf(fn)
	if v.Kind() != reflect.Func || v.IsNil() {
		return ""
	}
	f := goruntime.FuncForPC(v.Pointer())
	if f == nil {
		return ""
	}
	file, _ := f.FileLine(f.Entry())
	file = filepath.ToSlash(file)
	if moduleRoot != "/" && strings.HasPrefix(file, moduleRoot) {
		return strings.TrimPrefix(file, moduleRoot)
	}
	return file
}

// Title is the first line of Doc.
func (p *Pass) Title() string {
	t, _, _ := strings.Cut(p.Doc, "\n")
	return strings.TrimSpace(t)
}

func (p *Pass) forTarget(target string) bool {
	if len(p.Targets) == 0 {
		return true
	}
	for _, t := range p.Targets {
		if t == target {
			return true
		}
	}
	return false
}

// Context is what a pass sees.
type Context struct {
	Model   *graph.Model
	Options *Options
	// Shapes are the fixed input shapes (from Options.Shapes and the model).
	Shapes map[string][]int64
	pass   *Pass
	node   *graph.Node
	notes  []string
	// explain records why candidates did not match (Options.Explain).
	explain bool
	misses  []Miss
}

// Graph is the model's main graph.
func (c *Context) Graph() *graph.Graph { return c.Model.Graph }

// At records the node being rewritten, so a panic can name it.
func (c *Context) At(n *graph.Node) { c.node = n }

// Note records a line for the report (e.g. the scheduler's peak memory).
func (c *Context) Note(format string, args ...any) {
	c.notes = append(c.notes, fmt.Sprintf(format, args...))
}

// Target is the optimization target ("generic" when unset).
func (c *Context) Target() string {
	if c.Options == nil || c.Options.Target == "" {
		return TargetGeneric
	}
	return c.Options.Target
}

var (
	regMu    sync.RWMutex
	registry = map[string]*Pass{}
)

var kebab = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)

// Register adds a pass after checking it (name, doc, level, requirements
// known and acyclic). Built-in passes register at init; tests may register
// extra passes, which then run only when named in Options.Passes.
func Register(p *Pass) error {
	regMu.Lock()
	defer regMu.Unlock()
	if err := checkPass(p); err != nil {
		return err
	}
	if _, dup := registry[p.Name]; dup {
		return fmt.Errorf("passes: pass %q registered twice", p.Name)
	}
	if p.File == "" {
		p.File = sourceOf(p.Run)
	}
	registry[p.Name] = p
	if err := checkAcyclic(registry); err != nil {
		delete(registry, p.Name)
		return err
	}
	return nil
}

// Unregister removes a pass (for tests that register their own).
func Unregister(name string) {
	regMu.Lock()
	defer regMu.Unlock()
	delete(registry, name)
}

func checkPass(p *Pass) error {
	if p == nil {
		return fmt.Errorf("passes: nil pass")
	}
	if !kebab.MatchString(p.Name) {
		return fmt.Errorf("passes: pass name %q is not kebab-case", p.Name)
	}
	if p.Title() == "" {
		return fmt.Errorf("passes: pass %q has no doc", p.Name)
	}
	if p.Level < O1 || p.Level > O3 {
		return fmt.Errorf("passes: pass %q has level %s (want O1..O3)", p.Name, p.Level)
	}
	if p.Run == nil {
		return fmt.Errorf("passes: pass %q has no Run", p.Name)
	}
	for _, t := range p.Targets {
		if t != TargetGeneric && t != TargetORTCPU {
			return fmt.Errorf("passes: pass %q names unknown target %q", p.Name, t)
		}
	}
	return nil
}

func checkAcyclic(reg map[string]*Pass) error {
	state := map[string]int{} // 0 new, 1 on stack, 2 done
	var visit func(name string, path []string) error
	visit = func(name string, path []string) error {
		p, ok := reg[name]
		if !ok {
			return fmt.Errorf("passes: pass %q requires unknown pass %q", path[len(path)-1], name)
		}
		switch state[name] {
		case 1:
			return fmt.Errorf("passes: requirement cycle: %s -> %s", strings.Join(path, " -> "), name)
		case 2:
			return nil
		}
		state[name] = 1
		for _, r := range p.Requires {
			if err := visit(r, append(path, name)); err != nil {
				return err
			}
		}
		state[name] = 2
		return nil
	}
	names := make([]string, 0, len(reg))
	for n := range reg {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := visit(n, []string{n}); err != nil {
			return err
		}
	}
	return nil
}

// Lookup returns a registered pass.
func Lookup(name string) (*Pass, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	p, ok := registry[name]
	return p, ok
}

// All lists every registered pass, in pipeline order first, then by name.
func All() []*Pass {
	regMu.RLock()
	defer regMu.RUnlock()
	var out []*Pass
	seen := map[string]bool{}
	for _, e := range pipeline {
		if p, ok := registry[e.Pass]; ok && !seen[e.Pass] {
			out = append(out, p)
			seen[e.Pass] = true
		}
	}
	var rest []string
	for n := range registry {
		if !seen[n] {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	for _, n := range rest {
		out = append(out, registry[n])
	}
	return out
}

// Names lists the registered pass names, sorted.
func Names() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	out := make([]string, 0, len(registry))
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// UnknownPassError is returned for a pass name nobody registered.
type UnknownPassError struct {
	Name  string
	Valid []string
}

func (e *UnknownPassError) Error() string {
	return fmt.Sprintf("passes: unknown pass %q (valid passes: %s)", e.Name, strings.Join(e.Valid, ", "))
}

// Validate checks the registry and the pipeline table: every pass well
// formed, requirements acyclic, every pipeline entry registered, every
// requirement placed before its user, and every ordering constraint kept.
func Validate() error {
	regMu.RLock()
	defer regMu.RUnlock()
	for _, p := range registry {
		if err := checkPass(p); err != nil {
			return err
		}
	}
	if err := checkAcyclic(registry); err != nil {
		return err
	}
	pos := map[string]int{}
	for i, e := range pipeline {
		p, ok := registry[e.Pass]
		if !ok {
			return fmt.Errorf("passes: pipeline entry %d names unregistered pass %q", i, e.Pass)
		}
		if _, dup := pos[e.Pass]; dup {
			return fmt.Errorf("passes: pass %q is listed twice in the pipeline", e.Pass)
		}
		if e.Reason == "" {
			return fmt.Errorf("passes: pipeline entry %q has no reason", e.Pass)
		}
		pos[e.Pass] = i
		for _, r := range p.Requires {
			rp, ok := pos[r]
			if !ok {
				return fmt.Errorf("passes: pipeline: %q requires %q, which is not listed before it", e.Pass, r)
			}
			if registry[r].Level > p.Level {
				return fmt.Errorf("passes: pipeline: %q (%s) requires %q of a higher level (%s)", e.Pass, p.Level, r, registry[r].Level)
			}
			_ = rp
		}
	}
	for _, c := range orderConstraints {
		a, okA := pos[c.Before]
		b, okB := pos[c.After]
		if !okA || !okB {
			return fmt.Errorf("passes: ordering constraint %s < %s names a pass not in the pipeline", c.Before, c.After)
		}
		if a >= b {
			return fmt.Errorf("passes: ordering constraint broken: %s must run before %s (%s)", c.Before, c.After, c.Reason)
		}
	}
	return nil
}
