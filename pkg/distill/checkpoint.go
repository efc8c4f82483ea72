package distill

import (
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/optictl/optictl/pkg/graph"
)

// CheckpointFile is the JSON file in a checkpoint folder that names the
// last complete checkpoint; it is written last (atomically), so a folder
// whose run was interrupted at any point still describes a usable epoch.
const CheckpointFile = "checkpoint.json"

// Checkpoint describes the last finished epoch of a run.
type Checkpoint struct {
	Epoch int     `json:"epoch"`
	Loss  float64 `json:"loss"`
	// ValTop1 is nil without a validation set.
	ValTop1 *float64 `json:"val_top1,omitempty"`
	Seed    int64    `json:"seed"`
	// Student is the student ONNX with this epoch's weights, Optimizer the
	// Adam state (gob), both relative to the folder.
	Student   string         `json:"student"`
	Optimizer string         `json:"optimizer"`
	Options   CheckpointOpts `json:"options"`
	// Meta is what the caller recorded (Options.Meta), e.g. the teacher.
	Meta map[string]string `json:"meta,omitempty"`
	// History holds every epoch so far (a resumed run reports them all).
	History   []Epoch  `json:"history"`
	ValBefore *float64 `json:"val_top1_before,omitempty"`
}

// CheckpointOpts are the options a resumed run must share with the run it
// continues (Epochs may grow).
type CheckpointOpts struct {
	Epochs      int     `json:"epochs"`
	Batch       int     `json:"batch"`
	LR          float64 `json:"lr"`
	Temperature float64 `json:"temperature"`
	Alpha       float64 `json:"alpha"`
	Seed        int64   `json:"seed"`
	Samples     int     `json:"samples"`
	Labels      bool    `json:"labels"`
	Workers     int     `json:"workers"`
	Standardize bool    `json:"standardize,omitempty"`
	Schedule    string  `json:"schedule"`
	// Loss is Options.Loss as sorted NAME=KIND pairs ("" for the default).
	Loss string `json:"loss,omitempty"`
}

func (o Options) ckptOpts(samples int, labels bool) CheckpointOpts {
	var loss []string
	for k, v := range o.Loss {
		loss = append(loss, k+"="+v)
	}
	slices.Sort(loss)
	return CheckpointOpts{Epochs: o.Epochs, Batch: o.Batch, LR: o.LR, Temperature: o.Temperature, Alpha: o.Alpha, Seed: o.Seed, Samples: samples, Labels: labels,
		Workers: o.Workers, Standardize: o.Standardize, Schedule: o.Schedule, Loss: strings.Join(loss, ",")}
}

// ReadCheckpoint reads dir's checkpoint.json.
func ReadCheckpoint(dir string) (*Checkpoint, error) {
	b, err := os.ReadFile(filepath.Join(dir, CheckpointFile))
	if err != nil {
		return nil, fmt.Errorf("distill: checkpoint: %w", err)
	}
	var c Checkpoint
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("distill: checkpoint %s: %w", filepath.Join(dir, CheckpointFile), err)
	}
	if c.Epoch < 1 || !filepath.IsLocal(c.Student) || !filepath.IsLocal(c.Optimizer) {
		return nil, fmt.Errorf("distill: checkpoint %s: bad epoch %d or file names %q, %q", filepath.Join(dir, CheckpointFile), c.Epoch, c.Student, c.Optimizer)
	}
	return &c, nil
}

// loadCheckpoint reads the student model and the optimizer state of c.
func loadCheckpoint(dir string, c *Checkpoint) (*graph.Model, *adamState, error) {
	m, err := graph.Load(filepath.Join(dir, c.Student))
	if err != nil {
		return nil, nil, fmt.Errorf("distill: checkpoint student: %w", err)
	}
	f, err := os.Open(filepath.Join(dir, c.Optimizer))
	if err != nil {
		return nil, nil, fmt.Errorf("distill: checkpoint optimizer: %w", err)
	}
	defer f.Close()
	var st adamState
	if err := gob.NewDecoder(f).Decode(&st); err != nil {
		return nil, nil, fmt.Errorf("distill: checkpoint optimizer %s: %w", f.Name(), err)
	}
	return m, &st, nil
}

// writeCheckpoint writes epoch c.Epoch: the student and the optimizer
// state under per-epoch names, then checkpoint.json (atomically) naming
// them, then removes the previous epoch's files.
func writeCheckpoint(dir string, c *Checkpoint, m *graph.Model, st *adamState, prev *Checkpoint) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("distill: checkpoint: %w", err)
	}
	c.Student = fmt.Sprintf("epoch-%d.onnx", c.Epoch)
	c.Optimizer = fmt.Sprintf("epoch-%d.adam", c.Epoch)
	if err := m.Save(filepath.Join(dir, c.Student)); err != nil {
		return fmt.Errorf("distill: checkpoint: %w", err)
	}
	if err := writeAtomic(dir, c.Optimizer, func(f *os.File) error { return gob.NewEncoder(f).Encode(st) }); err != nil {
		return err
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("distill: checkpoint: %w", err)
	}
	if err := writeAtomic(dir, CheckpointFile, func(f *os.File) error { _, err := f.Write(append(b, '\n')); return err }); err != nil {
		return err
	}
	if prev != nil && prev.Epoch != c.Epoch {
		os.Remove(filepath.Join(dir, prev.Student))
		os.Remove(filepath.Join(dir, prev.Optimizer))
	}
	return nil
}

func writeAtomic(dir, name string, write func(*os.File) error) (err error) {
	f, err := os.CreateTemp(dir, "."+name+"-*.tmp")
	if err != nil {
		return fmt.Errorf("distill: checkpoint: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = write(f); err != nil {
		return fmt.Errorf("distill: checkpoint %s: %w", name, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("distill: checkpoint %s: %w", name, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("distill: checkpoint %s: %w", name, err)
	}
	if err = os.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("distill: checkpoint %s: %w", name, err)
	}
	return nil
}

// ErrNoCheckpoint is returned by a resume from a folder without one.
var ErrNoCheckpoint = errors.New("distill: no checkpoint to resume from")
