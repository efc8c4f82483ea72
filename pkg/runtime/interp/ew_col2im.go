package interp

import (
	"github.com/optictl/optictl/pkg/graph"
)

// Col2Im: the scatter-add inverse of im2col, any number of spatial dims.

func init() { Register("", "Col2Im", ewBuildCol2Im) }

func ewBuildCol2Im(n *graph.Node, bc *BuildContext) (Kernel, error) {
	dilA, padA, strA := n.AttrInts("dilations"), n.AttrInts("pads"), n.AttrInts("strides")
	return func(c *Call) error {
		x := c.In[0]
		if x == nil || len(x.Shape) != 3 || len(c.In) < 3 || c.In[1] == nil || c.In[2] == nil {
			return ewErr(n, "needs input [N, C*prod(block), L], image_shape and block_shape")
		}
		img, err := ewInts(c.In[1])
		if err != nil {
			return ewErr(n, "%v", err)
		}
		blk, err := ewInts(c.In[2])
		if err != nil || len(blk) != len(img) || len(img) == 0 {
			return ewErr(n, "image_shape and block_shape must have one length")
		}
		nd := len(img)
		get := func(a []int64, i int, def int64) int64 {
			if len(a) > i {
				return a[i]
			}
			return def
		}
		dil := make([]int64, nd)
		str := make([]int64, nd)
		pb := make([]int64, nd)
		outBlocks := make([]int64, nd)
		for i := 0; i < nd; i++ {
			dil[i], str[i] = get(dilA, i, 1), get(strA, i, 1)
			pb[i] = get(padA, i, 0)
			pe := get(padA, i+nd, 0)
			if dil[i] < 1 || str[i] < 1 || blk[i] < 1 {
				return ewErr(n, "dilations, strides and block_shape must be positive")
			}
			outBlocks[i] = (img[i]+pb[i]+pe-dil[i]*(blk[i]-1)-1)/str[i] + 1
			if outBlocks[i] < 0 {
				outBlocks[i] = 0
			}
		}
		N := int(x.Shape[0])
		kp := ewNumel(blk)
		if kp == 0 || int(x.Shape[1])%kp != 0 || int(x.Shape[2]) != ewNumel(outBlocks) {
			return ewErr(n, "input %v does not match block %v and %d block positions", x.Shape, blk, ewNumel(outBlocks))
		}
		C := int(x.Shape[1]) / kp
		L := int(x.Shape[2])
		oshape := append([]int64{int64(N), int64(C)}, img...)
		if err := ewCheckSize(oshape); err != nil {
			return ewErr(n, "%v", err)
		}
		xv, err := ewF64s(x)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		isz := ewNumel(img)
		ist := ewStrides(img)
		res := make([]float64, N*C*isz)
		kix := make([][]int64, 0, kp)
		ewForEach(blk, func(_ int, ix []int64) { kix = append(kix, append([]int64(nil), ix...)) })
		lix := make([][]int64, 0, L)
		ewForEach(outBlocks, func(_ int, ix []int64) { lix = append(lix, append([]int64(nil), ix...)) })
		for b := 0; b < N; b++ {
			for ch := 0; ch < C; ch++ {
				for k, kk := range kix {
					row := xv[((b*C+ch)*kp+k)*L:][:L]
					for l, ll := range lix {
						off, ok := 0, true
						for d := 0; d < nd; d++ {
							p := ll[d]*str[d] - pb[d] + kk[d]*dil[d]
							if p < 0 || p >= img[d] {
								ok = false
								break
							}
							off += int(p) * ist[d]
						}
						if ok {
							res[(b*C+ch)*isz+off] += row[l]
						}
					}
				}
			}
		}
		o, err := c.Out(0, x.DType, oshape)
		if err != nil {
			return err
		}
		return ewSetF64(o, res)
	}, nil
}
