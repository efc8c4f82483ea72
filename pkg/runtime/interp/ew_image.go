package interp

import (
	"bufio"
	"bytes"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // decoders registered for ImageDecoder
	_ "image/png"
	"io"

	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/tiff"
	_ "golang.org/x/image/webp"

	"github.com/optictl/optictl/pkg/graph"
)

// ImageDecoder: encoded bytes (uint8 [n]) to an HWC uint8 image in RGB,
// BGR or Grayscale. PNG, JPEG, BMP, TIFF, WebP and binary PNM (P5/P6).
// JPEG goes through Go's decoder, whose IDCT and chroma upsampling differ
// slightly from libjpeg's, so JPEG pixels may not match other runtimes
// bit for bit.

func init() { Register("", "ImageDecoder", ewBuildImageDecoder) }

func ewBuildImageDecoder(n *graph.Node, bc *BuildContext) (Kernel, error) {
	format := n.AttrString("pixel_format", "RGB")
	switch format {
	case "RGB", "BGR", "Grayscale":
	default:
		return nil, ewErr(n, "unknown pixel_format %q", format)
	}
	return func(c *Call) error {
		x := c.In[0]
		if x == nil || x.DType != graph.Uint8 {
			return ewErr(n, "needs uint8 encoded bytes")
		}
		img, err := ewDecodeImage(x.Raw)
		if err != nil {
			return ewErr(n, "%v", err)
		}
		bnd := img.Bounds()
		H, W := bnd.Dy(), bnd.Dx()
		ch := 3
		if format == "Grayscale" {
			ch = 1
		}
		if int64(H)*int64(W) > 1<<28 {
			return ewErr(n, "image of %dx%d is too large", W, H)
		}
		o, err := c.Out(0, graph.Uint8, []int64{int64(H), int64(W), int64(ch)})
		if err != nil {
			return err
		}
		p := 0
		for y := bnd.Min.Y; y < bnd.Max.Y; y++ {
			for xx := bnd.Min.X; xx < bnd.Max.X; xx++ {
				r16, g16, b16, _ := img.At(xx, y).RGBA()
				r, g, b := uint32(r16>>8), uint32(g16>>8), uint32(b16>>8)
				if gray, ok := img.At(xx, y).(color.Gray); ok {
					r, g, b = uint32(gray.Y), uint32(gray.Y), uint32(gray.Y)
				}
				switch format {
				case "RGB":
					o.Raw[p], o.Raw[p+1], o.Raw[p+2] = byte(r), byte(g), byte(b)
				case "BGR":
					o.Raw[p], o.Raw[p+1], o.Raw[p+2] = byte(b), byte(g), byte(r)
				default: // ITU-R 601-2 luma, as PIL's convert("L")
					o.Raw[p] = byte((r*19595 + g*38470 + b*7471 + 0x8000) >> 16)
				}
				p += ch
			}
		}
		return nil
	}, nil
}

func ewDecodeImage(b []byte) (image.Image, error) {
	if len(b) > 2 && b[0] == 'P' && (b[1] == '5' || b[1] == '6') {
		return ewDecodePNM(b)
	}
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("cannot decode the image: %w", err)
	}
	return img, nil
}

// ewDecodePNM reads binary 8-bit PGM (P5) and PPM (P6).
func ewDecodePNM(b []byte) (image.Image, error) {
	r := bufio.NewReader(bytes.NewReader(b))
	var magic string
	var w, h, maxv int
	readTok := func() (string, error) {
		var tok []byte
		for {
			c, err := r.ReadByte()
			if err != nil {
				return "", err
			}
			if c == '#' {
				if _, err := r.ReadString('\n'); err != nil {
					return "", err
				}
				continue
			}
			if c == ' ' || c == '\n' || c == '\r' || c == '\t' {
				if len(tok) > 0 {
					return string(tok), nil
				}
				continue
			}
			tok = append(tok, c)
		}
	}
	var err error
	if magic, err = readTok(); err != nil {
		return nil, err
	}
	var vals [3]int
	for i := range vals {
		t, err := readTok()
		if err != nil {
			return nil, err
		}
		if _, err := fmt.Sscan(t, &vals[i]); err != nil {
			return nil, fmt.Errorf("bad PNM header: %w", err)
		}
	}
	w, h, maxv = vals[0], vals[1], vals[2]
	if w <= 0 || h <= 0 || maxv <= 0 || maxv > 255 || int64(w)*int64(h) > 1<<28 {
		return nil, fmt.Errorf("unsupported PNM %dx%d max %d", w, h, maxv)
	}
	ch := 3
	if magic == "P5" {
		ch = 1
	}
	pix := make([]byte, w*h*ch)
	if _, err := io.ReadFull(r, pix); err != nil {
		return nil, fmt.Errorf("short PNM data: %w", err)
	}
	if ch == 1 {
		return &image.Gray{Pix: pix, Stride: w, Rect: image.Rect(0, 0, w, h)}, nil
	}
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < w*h; i++ {
		copy(img.Pix[4*i:], pix[3*i:3*i+3])
		img.Pix[4*i+3] = 255
	}
	return img, nil
}
