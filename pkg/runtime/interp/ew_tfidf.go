package interp

import (
	"strconv"

	"github.com/optictl/optictl/pkg/graph"
)

// TfIdfVectorizer: n-gram (with skips) counting against a pool of int64 or
// string n-grams, weighted TF, IDF or TFIDF, as onnx's reference does.

func init() { Register("", "TfIdfVectorizer", ewBuildTfIdf) }

type ewGram struct {
	id   int
	kids map[string]*ewGram
}

func ewBuildTfIdf(n *graph.Node, bc *BuildContext) (Kernel, error) {
	minG := int(n.AttrInt("min_gram_length", 1))
	maxG := int(n.AttrInt("max_gram_length", 1))
	maxSkip := int(n.AttrInt("max_skip_count", 0))
	mode := n.AttrString("mode", "TF")
	counts := n.AttrInts("ngram_counts")
	indexes := n.AttrInts("ngram_indexes")
	weights := n.AttrFloats("weights")
	var pool []string
	for _, v := range n.AttrInts("pool_int64s") {
		pool = append(pool, strconv.FormatInt(v, 10))
	}
	if a := n.Attr("pool_strings"); a != nil {
		for _, s := range a.Strings {
			pool = append(pool, string(s))
		}
	}
	if len(indexes) == 0 || minG < 1 || maxG < minG {
		return nil, ewErr(n, "needs ngram_indexes and 1 <= min_gram_length <= max_gram_length")
	}
	outSize := 0
	for _, i := range indexes {
		if i < 0 {
			return nil, ewErr(n, "negative ngram index")
		}
		outSize = max(outSize, int(i)+1)
	}
	root := &ewGram{kids: map[string]*ewGram{}}
	id := 1
	for i := range counts {
		size := i + 1
		start := int(counts[i])
		end := len(pool)
		if i+1 < len(counts) {
			end = int(counts[i+1])
		}
		if start < 0 || end > len(pool) || start > end {
			return nil, ewErr(n, "ngram_counts %v do not fit the pool of %d", counts, len(pool))
		}
		ngrams := (end - start) / size
		if size < minG || size > maxG {
			id += ngrams
			continue
		}
		p := start
		for g := 0; g < ngrams; g++ {
			m := root
			for k := 0; k < size; k++ {
				child := m.kids[pool[p]]
				if child == nil {
					child = &ewGram{}
					if m.kids == nil {
						m.kids = map[string]*ewGram{}
					}
					m.kids[pool[p]] = child
				}
				p++
				if k == size-1 {
					child.id = id
					id++
				} else if child.kids == nil {
					child.kids = map[string]*ewGram{}
				}
				m = child
			}
		}
	}
	if id-1 > len(indexes) {
		return nil, ewErr(n, "%d n-grams but %d ngram_indexes", id-1, len(indexes))
	}
	return func(c *Call) error {
		x := c.In[0]
		if x == nil || len(x.Shape) > 2 {
			return ewErr(n, "input must be [C] or [B, C]")
		}
		var toks []string
		if x.DType == graph.String {
			toks = x.Strings
		} else {
			iv, err := ewInts(x)
			if err != nil {
				return ewErr(n, "%v", err)
			}
			toks = make([]string, len(iv))
			for i, v := range iv {
				toks[i] = strconv.FormatInt(v, 10)
			}
		}
		rows, C := 1, len(toks)
		shape := []int64{int64(outSize)}
		if len(x.Shape) == 2 {
			rows, C = int(x.Shape[0]), int(x.Shape[1])
			shape = []int64{int64(rows), int64(outSize)}
		}
		freq := make([]float64, rows*outSize)
		for r := 0; r < rows && C > 0; r++ {
			row := toks[r*C : (r+1)*C]
			startSize := minG
			for skip := 1; skip <= maxSkip+1; skip++ {
				for s := 0; s < C; s++ {
					if s+skip*(startSize-1) >= C {
						break
					}
					m, size := root, 1
					for item := s; len(m.kids) > 0 && size <= maxG && item < C; item += skip {
						child := m.kids[row[item]]
						if child == nil {
							break
						}
						if size >= startSize && child.id != 0 {
							freq[r*outSize+int(indexes[child.id-1])]++
						}
						m = child
						size++
					}
				}
				if startSize == 1 {
					startSize++
					if startSize > maxG {
						break
					}
				}
			}
		}
		for i := range freq {
			w := 1.0
			if len(weights) > 0 {
				w = float64(weights[i%outSize])
			}
			switch mode {
			case "IDF":
				if freq[i] > 0 {
					freq[i] = w
				}
			case "TFIDF":
				freq[i] *= w
			}
		}
		o, err := c.Out(0, graph.Float, shape)
		if err != nil {
			return err
		}
		return ewSetF64(o, freq)
	}, nil
}
