package serve

import (
	"strconv"
	"time"
)

// route picks the variant for a request: the client's choice when it names
// one and that variant is not overloaded; otherwise the router's active one.
func (s *Server) route(sm *servedModel, requested string) (*variant, string) {
	active := sm.variants[sm.active.Load()]
	if requested == "" {
		return active, ""
	}
	for _, v := range sm.variants {
		if v.name == requested {
			if v.depth.Load() >= int64(s.cfg.QueueSize*8/10) {
				return active, "requested variant " + requested + " is overloaded"
			}
			return v, ""
		}
	}
	return active, "unknown variant " + requested
}

func (s *Server) setActive(sm *servedModel, idx int, why string) {
	old := int(sm.active.Load())
	sm.active.Store(int32(idx))
	for i, v := range sm.variants {
		val := 0.0
		if i == idx {
			val = 1
		}
		s.metrics.activeVar.WithLabelValues(sm.name, sm.version, v.name).Set(val)
	}
	if old != idx {
		s.metrics.switches.WithLabelValues(sm.name, sm.version, sm.variants[old].name, sm.variants[idx].name).Inc()
		s.cfg.Log.Info("variant switch", "model", sm.name, "from", sm.variants[old].name, "to", sm.variants[idx].name, "reason", why)
	}
}

// Router tuning: the decision interval, the minimum time between two
// switches, and how long load must stay low before switching back.
const (
	routerTick   = 50 * time.Millisecond
	minDwell     = 500 * time.Millisecond
	calmToReturn = 1 * time.Second
)

func (s *Server) startRouter() {
	if s.cfg.SLOP99 <= 0 {
		return
	}
	s.routerWG.Add(1)
	go func() {
		defer s.routerWG.Done()
		t := time.NewTicker(routerTick)
		defer t.Stop()
		last := map[*servedModel]time.Time{}
		for {
			select {
			case <-s.stopRouter:
				return
			case now := <-t.C:
				for _, sm := range s.models {
					if len(sm.variants) < 2 {
						continue
					}
					s.decide(sm, now, last)
				}
			}
		}
	}()
}

// decide moves one step towards faster variants when the SLO is at risk
// (rolling p99 above it, or the queue filling), and one step back after
// load has stayed low for calmToReturn (hysteresis).
func (s *Server) decide(sm *servedModel, now time.Time, last map[*servedModel]time.Time) {
	a := int(sm.active.Load())
	v := sm.variants[a]
	p99, n := v.lat.p99()
	depth := v.depth.Load()
	slo := s.cfg.SLOP99
	atRisk := (n >= 10 && p99 > slo) || depth > int64(s.cfg.QueueSize/4)
	calm := (n == 0 || p99 < slo/2) && depth == 0
	if !calm {
		sm.calmSince = time.Time{}
	} else if sm.calmSince.IsZero() {
		sm.calmSince = now
	}
	if now.Sub(last[sm]) < minDwell {
		return
	}
	switch {
	case atRisk && a+1 < len(sm.variants):
		s.setActive(sm, a+1, "p99 "+p99.String()+" / queue "+strconv.FormatInt(depth, 10)+" over SLO "+slo.String())
		last[sm] = now
		sm.calmSince = time.Time{}
	case a > 0 && !sm.calmSince.IsZero() && now.Sub(sm.calmSince) >= calmToReturn:
		s.setActive(sm, a-1, "load fell: p99 "+p99.String())
		last[sm] = now
		sm.calmSince = time.Time{}
	}
}
