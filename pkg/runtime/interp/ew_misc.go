package interp

import (
	"math"
	"regexp"
	"sort"
	"strings"
	"unicode"

	"github.com/optictl/optictl/pkg/graph"
	"github.com/optictl/optictl/pkg/runtime"
)

// Einsum, window functions (Hann, Hamming, Blackman) and the string ops
// (StringConcat, RegexFullMatch, StringNormalizer, StringSplit).

func init() {
	Register("", "Einsum", ewBuildEinsum)
	for name, f := range map[string]func(n, d float64) float64{
		"HannWindow":    func(n, d float64) float64 { return 0.5 - 0.5*math.Cos(2*math.Pi*n/d) },
		"HammingWindow": func(n, d float64) float64 { return 25.0/46 - (1-25.0/46)*math.Cos(2*math.Pi*n/d) },
		"BlackmanWindow": func(n, d float64) float64 {
			return 0.42 - 0.5*math.Cos(2*math.Pi*n/d) + 0.08*math.Cos(4*math.Pi*n/d)
		},
	} {
		f := f
		Register("", name, func(n *graph.Node, bc *BuildContext) (Kernel, error) { return ewBuildWindow(n, f) })
	}
	Register("", "StringConcat", ewBuildStringConcat)
	Register("", "RegexFullMatch", ewBuildRegexFullMatch)
	Register("", "StringNormalizer", ewBuildStringNormalizer)
	Register("", "StringSplit", ewBuildStringSplit)
}

func ewBuildWindow(n *graph.Node, f func(n, d float64) float64) (Kernel, error) {
	periodic := n.AttrInt("periodic", 1) != 0
	dt := graph.DType(n.AttrInt("output_datatype", int64(graph.Float)))
	return func(c *Call) error {
		if c.In[0] == nil {
			return ewErr(n, "missing size")
		}
		sz, err := ewInts(c.In[0])
		if err != nil || len(sz) != 1 || sz[0] < 0 || sz[0] > 1<<28 {
			return ewErr(n, "size must be a non-negative scalar")
		}
		N := sz[0]
		o, err := c.Out(0, dt, []int64{N})
		if err != nil {
			return err
		}
		d := float64(N)
		if !periodic {
			d = float64(N - 1)
		}
		v := make([]float64, N)
		for i := range v {
			v[i] = f(float64(i), d)
		}
		return ewSetF64(o, v)
	}, nil
}

// ewEinsumParse turns an equation into per-input and output label lists,
// ellipsis dims becoming labels 1..E (right-aligned).
func ewEinsumParse(eq string, ins []*runtime.Tensor) ([][]rune, []rune, bool) {
	eq = strings.ReplaceAll(eq, " ", "")
	lhs, rhs, explicit := strings.Cut(eq, "->")
	terms := strings.Split(lhs, ",")
	if len(terms) != len(ins) {
		return nil, nil, false
	}
	E := 0
	for i, t := range terms {
		if strings.Contains(t, "...") {
			E = max(E, len(ins[i].Shape)-(len(t)-3))
		}
	}
	ell := func(k int) []rune {
		r := make([]rune, k)
		for j := range r {
			r[j] = rune(1 + E - k + j)
		}
		return r
	}
	labels := make([][]rune, len(terms))
	for i, t := range terms {
		for _, part := range strings.SplitAfter(t, "...") {
			if strings.HasSuffix(part, "...") {
				labels[i] = append(labels[i], []rune(strings.TrimSuffix(part, "..."))...)
				labels[i] = append(labels[i], ell(len(ins[i].Shape)-(len(t)-3))...)
			} else {
				labels[i] = append(labels[i], []rune(part)...)
			}
		}
		if len(labels[i]) != len(ins[i].Shape) {
			return nil, nil, false
		}
	}
	var out []rune
	if explicit {
		for _, part := range strings.SplitAfter(rhs, "...") {
			if strings.HasSuffix(part, "...") {
				out = append(out, []rune(strings.TrimSuffix(part, "..."))...)
				out = append(out, ell(E)...)
			} else {
				out = append(out, []rune(part)...)
			}
		}
	} else {
		out = ell(E)
		cnt := map[rune]int{}
		for _, l := range labels {
			for _, r := range l {
				if r > 32 {
					cnt[r]++
				}
			}
		}
		var once []rune
		for r, k := range cnt {
			if k == 1 {
				once = append(once, r)
			}
		}
		sort.Slice(once, func(a, b int) bool { return once[a] < once[b] })
		out = append(out, once...)
	}
	return labels, out, true
}

func ewBuildEinsum(n *graph.Node, bc *BuildContext) (Kernel, error) {
	eq := n.AttrString("equation", "")
	if eq == "" {
		return nil, ewErr(n, "missing equation")
	}
	return func(c *Call) error {
		for i, t := range c.In {
			if t == nil || !ewIsNumeric(t.DType) || t.DType != c.In[0].DType {
				return ewErr(n, "input %d must be numeric and of the first input's dtype", i)
			}
		}
		labels, out, ok := ewEinsumParse(eq, c.In)
		if !ok {
			return ewErr(n, "equation %q does not fit the inputs", eq)
		}
		size := map[rune]int64{}
		var all []rune
		for i, l := range labels {
			for k, r := range l {
				d := c.In[i].Shape[k]
				if s, seen := size[r]; !seen {
					size[r] = d
					all = append(all, r)
				} else if s != d {
					if s == 1 {
						size[r] = d
					} else if d != 1 {
						return ewErr(n, "label %q has sizes %d and %d", r, s, d)
					}
				}
			}
		}
		oshape := make([]int64, len(out))
		for i, r := range out {
			s, seen := size[r]
			if !seen {
				return ewErr(n, "output label %q is not an input label", r)
			}
			oshape[i] = s
		}
		// iterate over every label; output labels first
		order := append([]rune(nil), out...)
		for _, r := range all {
			if !strings.ContainsRune(string(out), r) {
				order = append(order, r)
			}
		}
		dims := make([]int64, len(order))
		pos := map[rune]int{}
		for i, r := range order {
			dims[i] = size[r]
			pos[r] = i
		}
		if err := ewCheckSize(dims); err != nil {
			return ewErr(n, "%v", err)
		}
		if ewNumel(dims) > 1<<26 {
			return ewErr(n, "equation %q needs %d multiply-adds: too many for this kernel", eq, ewNumel(dims))
		}
		vals := make([][]float64, len(c.In))
		strides := make([][]int, len(c.In))
		for i, t := range c.In {
			v, err := ewF64s(t)
			if err != nil {
				return ewErr(n, "%v", err)
			}
			vals[i] = v
			st := ewStrides(t.Shape)
			strides[i] = make([]int, len(order))
			for k, r := range labels[i] {
				if t.Shape[k] != 1 {
					strides[i][pos[r]] += st[k]
				}
			}
		}
		res := make([]float64, ewNumel(oshape))
		inner := ewNumel(dims[len(out):])
		ewForEach(dims, func(idx int, ix []int64) {
			p := 1.0
			for i := range vals {
				off := 0
				for d, v := range ix {
					off += int(v) * strides[i][d]
				}
				p *= vals[i][off]
			}
			res[idx/inner] += p
		})
		o, err := c.Out(0, c.In[0].DType, oshape)
		if err != nil {
			return err
		}
		return ewSetF64(o, res)
	}, nil
}

func ewBuildStringConcat(n *graph.Node, bc *BuildContext) (Kernel, error) {
	st := &ewBinState{}
	return func(c *Call) error {
		a, b := c.In[0], c.In[1]
		if a == nil || b == nil || a.DType != graph.String || b.DType != graph.String {
			return ewErr(n, "needs two string inputs")
		}
		var err error
		st.shape, err = ewBroadcast(st.shape, a.Shape, b.Shape)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		o, err := c.Out(0, graph.String, st.shape)
		if err != nil {
			return err
		}
		ewBinLoop(o.Strings, a.Strings, b.Strings, a.Shape, b.Shape, o.Shape, st, func(x, y string) string { return x + y })
		return nil
	}, nil
}

func ewBuildRegexFullMatch(n *graph.Node, bc *BuildContext) (Kernel, error) {
	re, err := regexp.Compile(`^(?:` + n.AttrString("pattern", "") + `)$`)
	if err != nil {
		return nil, ewErr(n, "bad pattern: %v", err)
	}
	return func(c *Call) error {
		x := c.In[0]
		if x == nil || x.DType != graph.String {
			return ewErr(n, "needs a string input")
		}
		o, err := c.Out(0, graph.Bool, x.Shape)
		if err != nil {
			return err
		}
		for i, s := range x.Strings {
			o.Raw[i] = 0
			if re.MatchString(s) {
				o.Raw[i] = 1
			}
		}
		return nil
	}, nil
}

func ewBuildStringNormalizer(n *graph.Node, bc *BuildContext) (Kernel, error) {
	action := n.AttrString("case_change_action", "NONE")
	sensitive := n.AttrInt("is_case_sensitive", 0) != 0
	stop := map[string]bool{}
	if a := n.Attr("stopwords"); a != nil {
		for _, w := range a.Strings {
			if sensitive {
				stop[string(w)] = true
			} else {
				stop[strings.ToLower(string(w))] = true
			}
		}
	}
	return func(c *Call) error {
		x := c.In[0]
		if x == nil || x.DType != graph.String || len(x.Shape) < 1 || len(x.Shape) > 2 || (len(x.Shape) == 2 && x.Shape[0] != 1) {
			return ewErr(n, "needs a string tensor of shape [C] or [1, C]")
		}
		var keep []string
		for _, s := range x.Strings {
			k := s
			if !sensitive {
				k = strings.ToLower(s)
			}
			if stop[k] {
				continue
			}
			switch action {
			case "LOWER":
				s = strings.ToLower(s)
			case "UPPER":
				s = strings.ToUpper(s)
			}
			keep = append(keep, s)
		}
		if len(keep) == 0 {
			keep = []string{""}
		}
		shape := []int64{int64(len(keep))}
		if len(x.Shape) == 2 {
			shape = []int64{1, int64(len(keep))}
		}
		o, err := c.Out(0, graph.String, shape)
		if err != nil {
			return err
		}
		copy(o.Strings, keep)
		return nil
	}, nil
}

func ewBuildStringSplit(n *graph.Node, bc *BuildContext) (Kernel, error) {
	delim := n.AttrString("delimiter", "")
	maxsplit := int(n.AttrInt("maxsplit", -1))
	return func(c *Call) error {
		x := c.In[0]
		if x == nil || x.DType != graph.String {
			return ewErr(n, "needs a string input")
		}
		parts := make([][]string, len(x.Strings))
		longest := 0
		for i, s := range x.Strings {
			var p []string
			if delim == "" {
				p = ewFieldsN(s, maxsplit)
			} else if maxsplit >= 0 {
				p = strings.SplitN(s, delim, maxsplit+1)
			} else {
				p = strings.Split(s, delim)
			}
			parts[i] = p
			longest = max(longest, len(p))
		}
		y, err := c.Out(0, graph.String, append(append([]int64(nil), x.Shape...), int64(longest)))
		if err != nil {
			return err
		}
		clear(y.Strings)
		for i, p := range parts {
			copy(y.Strings[i*longest:], p)
		}
		if c.NumOutputs() > 1 && c.HasOutput(1) {
			z, err := c.Out(1, graph.Int64, x.Shape)
			if err != nil {
				return err
			}
			zv := ewView[int64](z)
			for i, p := range parts {
				zv[i] = int64(len(p))
			}
		}
		return nil
	}, nil
}

// ewFieldsN splits on runs of whitespace like Python's str.split(None, n).
func ewFieldsN(s string, maxsplit int) []string {
	if maxsplit < 0 {
		return strings.Fields(s)
	}
	var out []string
	s = strings.TrimLeftFunc(s, unicode.IsSpace)
	for s != "" {
		if len(out) == maxsplit {
			out = append(out, strings.TrimRightFunc(s, unicode.IsSpace))
			break
		}
		i := strings.IndexFunc(s, unicode.IsSpace)
		if i < 0 {
			out = append(out, s)
			break
		}
		out = append(out, s[:i])
		s = strings.TrimLeftFunc(s[i:], unicode.IsSpace)
	}
	return out
}
