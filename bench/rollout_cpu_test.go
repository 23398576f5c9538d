package bench

import (
	"fmt"
	"time"
)

// Where the rollout's CPU went, by process: the replicas are processes of
// their own, so a new replica's start, the old ones serving meanwhile and
// the control plane answering the new one's lists can be told apart.

// rolloutCPU is a CPU snapshot: the machine, this process (load
// generator, upstream), the control plane, and each replica process.
type rolloutCPU struct {
	cpuSample
	replicas []time.Duration // by replica index, those started so far
}

func sampleRolloutCPU(set *peeredSet) rolloutCPU {
	s := rolloutCPU{cpuSample: sampleCPU()}
	for _, r := range set.replicas {
		var used time.Duration
		if r.proc != nil {
			used = r.proc.cpu()
		}
		s.replicas = append(s.replicas, used)
	}
	return s
}

// rolloutCPUUse is the CPU used between two snapshots, in cores; other
// is what the machine used beyond this process, the control plane and
// the replicas.
type rolloutCPUUse struct {
	cpuUse
	replicas []float64 // by replica index
}

func rolloutCPUBetween(a, b rolloutCPU) rolloutCPUUse {
	u := rolloutCPUUse{cpuUse: cpuBetween(a.cpuSample, b.cpuSample)}
	wall := b.at.Sub(a.at).Seconds()
	for i, used := range b.replicas {
		var before time.Duration
		if i < len(a.replicas) {
			before = a.replicas[i]
		}
		cores := 0.0
		if wall > 0 {
			cores = (used - before).Seconds() / wall
		}
		u.replicas = append(u.replicas, cores)
	}
	u.other = max(0, u.machine-u.self-u.controlPlane-u.allReplicas())
	return u
}

func (u rolloutCPUUse) allReplicas() float64 {
	var sum float64
	for _, c := range u.replicas {
		sum += c
	}
	return sum
}

// replicasExcept is the CPU of every replica but the i-th.
func (u rolloutCPUUse) replicasExcept(i int) float64 {
	if i < len(u.replicas) {
		return u.allReplicas() - u.replicas[i]
	}
	return u.allReplicas()
}

// replacementCPU is the CPU table of the rollout: for each replacement,
// the new replica's start (until its /readyz passed) and the old one's
// stop (Pod deleted until its process exited).
type replacementCPU struct {
	tb *table
}

func newReplacementCPU() *replacementCPU {
	return &replacementCPU{tb: newTable("step", "seconds", "machine", "the replica starting or stopping", "the other replicas", "kube-apiserver+etcd", "this process (load, upstream)", "other processes")}
}

// add records the step in which replica (by index) started or stopped,
// between the snapshots from and to.
func (c *replacementCPU) add(step string, replica int, from, to rolloutCPU) {
	u := rolloutCPUBetween(from, to)
	c.tb.row(step, fmt.Sprintf("%.2f", to.at.Sub(from.at).Seconds()), cores(u.machine), cores(u.replicas[replica]),
		cores(u.replicasExcept(replica)), cores(u.controlPlane), cores(u.self), cores(u.other))
}

func cores(c float64) string { return fmt.Sprintf("%.2f", c) }
