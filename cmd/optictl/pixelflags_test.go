package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestPixelFlags(t *testing.T) {
	cases := []struct {
		args  []string
		scale float64
		mean  []float64
		std   []float64
		desc  string
		err   string
	}{
		{nil, 1, nil, nil, "", ""},
		{[]string{"--pixel-scale", "1/255"}, 1.0 / 255, nil, nil, "scale 0.00392156862745098", ""},
		{[]string{"--pixel-scale", "0.5", "--pixel-mean", "0.485, 0.456,0.406", "--pixel-std", "2"}, 0.5, []float64{0.485, 0.456, 0.406}, []float64{2}, "scale 0.5, mean [0.485 0.456 0.406], std [2]", ""},
		{[]string{"--pixel-scale", "1/0"}, 0, nil, nil, "", "fraction like 1/255"},
		{[]string{"--pixel-scale", "x"}, 0, nil, nil, "", "fraction like 1/255"},
		{[]string{"--pixel-scale", "0"}, 0, nil, nil, "", "non-zero"},
		{[]string{"--pixel-mean", "1,a"}, 0, nil, nil, "", "list of numbers"},
		{[]string{"--pixel-std", "1,0,1"}, 0, nil, nil, "", "non-zero"},
		{[]string{"--pixel-std", "1,2"}, 0, nil, nil, "", "1 value or 3"},
		{[]string{"--pixel-mean", "NaN"}, 0, nil, nil, "", "finite"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var p pixelFlags
			cmd := &cobra.Command{}
			addPixelFlags(cmd, &p, "--data")
			err := cmd.ParseFlags(c.args)
			var got struct {
				scale     float64
				mean, std []float64
			}
			if err == nil {
				o, oerr := p.options()
				err = oerr
				got.scale, got.mean, got.std = o.Scale, o.Mean, o.Std
			}
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.scale != c.scale || !slices.Equal(got.mean, c.mean) || !slices.Equal(got.std, c.std) || p.String() != c.desc {
				t.Fatalf("got %v %v %v %q", got.scale, got.mean, got.std, p.String())
			}
		})
	}
}
