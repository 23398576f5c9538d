package chaos

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"time"
)

// faults injects one fault at a time, 5 to 20 s apart, from begin until
// end, each drawn from the seed. A fault's record spans from the moment
// it began until the system was whole again (a killed process ready, a
// stopped one continued, the API server serving, the proxy open).
func (r *run) faults(rng *rand.Rand, begin, end time.Time) {
	time.Sleep(time.Until(begin))
	for time.Now().Before(end) {
		rep := r.c.replicas[rng.IntN(len(r.c.replicas))]
		var rec Record
		switch x := rng.IntN(100); {
		case x < 22:
			rec = r.killReplica(rep, time.Duration(500+rng.IntN(2500))*time.Millisecond)
		case x < 40:
			rec = r.stopReplica(rep, time.Duration(3+rng.IntN(8))*time.Second)
		case x < 52:
			rec = r.killManager(time.Duration(1+rng.IntN(5)) * time.Second)
		case x < 67:
			rec = r.stopAPIServer(time.Duration(5+rng.IntN(16)) * time.Second)
		case x < 80:
			rec = r.restartEtcd(time.Duration(1+rng.IntN(8)) * time.Second)
		default:
			rec = r.partition(rep, time.Duration(5+rng.IntN(16))*time.Second)
		}
		r.h.add(rec)
		fmt.Printf("chaos: %s %s %s..%s %s\n", rec.Fault, rec.Target, stamp(rec.Start), stamp(rec.End), rec.Detail)
		time.Sleep(time.Duration(5+rng.IntN(16)) * time.Second)
	}
}

func (r *run) killReplica(rep *replica, down time.Duration) Record {
	rec := Record{Type: TypeFault, Fault: FaultGatewayKill, Target: rep.name, Start: time.Now()}
	rep.proc.kill()
	time.Sleep(down)
	if err := r.c.startReplica(rep); err != nil {
		r.t.Errorf("restarting %s after SIGKILL: %v", rep.name, err)
	}
	rec.End = time.Now()
	return rec
}

func (r *run) stopReplica(rep *replica, stopped time.Duration) Record {
	rec := Record{Type: TypeFault, Fault: FaultGatewayStop, Target: rep.name, Start: time.Now()}
	if err := rep.proc.signal(syscall.SIGSTOP); err != nil {
		r.t.Error(err)
	}
	time.Sleep(stopped)
	if err := rep.proc.signal(syscall.SIGCONT); err != nil {
		r.t.Error(err)
	}
	rec.End = time.Now()
	return rec
}

func (r *run) killManager(down time.Duration) Record {
	rec := Record{Type: TypeFault, Fault: FaultManagerKill, Target: "manager", Start: time.Now()}
	r.c.manager.kill()
	time.Sleep(down)
	if err := r.c.manager.start(); err != nil {
		r.t.Error(err)
	}
	rec.End = time.Now()
	return rec
}

func (r *run) stopAPIServer(down time.Duration) Record {
	rec := Record{Type: TypeFault, Fault: FaultAPIServerStop, Target: "kube-apiserver", Start: time.Now()}
	restart, err := r.c.stopAPIServer()
	if err != nil {
		r.t.Errorf("stopping kube-apiserver: %v", err)
	}
	time.Sleep(time.Until(rec.Start.Add(down)))
	if err := restart(); err != nil {
		r.t.Error(err)
	}
	rec.End = time.Now()
	rec.Detail = fmt.Sprintf("(down %v)", down)
	return rec
}

// restartEtcd kills etcd with SIGKILL and starts it again on its data:
// the API server stays up but can neither read nor write meanwhile.
func (r *run) restartEtcd(down time.Duration) Record {
	rec := Record{Type: TypeFault, Fault: FaultEtcdRestart, Target: "etcd", Start: time.Now()}
	if err := r.c.restartEtcd(down); err != nil {
		r.t.Errorf("restarting etcd: %v", err)
	}
	rec.End = time.Now()
	rec.Detail = fmt.Sprintf("(down %v)", down)
	return rec
}

// partition stalls every byte between rep and the API server: its watches
// and its Lease go silent, its peers (and the load) still reach it.
func (r *run) partition(rep *replica, cut time.Duration) Record {
	rec := Record{Type: TypeFault, Fault: FaultPartition, Target: rep.name, Start: time.Now()}
	rep.proxy.Pause()
	time.Sleep(cut)
	rep.proxy.Resume()
	rec.End = time.Now()
	return rec
}
