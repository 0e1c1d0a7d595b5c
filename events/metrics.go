package events

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the events service. Registered only when Config.Registerer is set; the zero value
// (no registerer) still counts, it is just not exported.
type metrics struct {
	accepted        *prometheus.CounterVec
	refused         prometheus.Counter
	expandedSeconds prometheus.Histogram
}

func newMetrics(s *Service, reg prometheus.Registerer) *metrics {
	m := &metrics{
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_events_accepted_total", Help: "Notifications accepted (202), by type.",
		}, []string{"type"}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_events_refused_total", Help: "Notifications refused with 503 because the delivery backlog was full.",
		}),
		expandedSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_event_expansion_seconds",
			Help:    "Time from an event's acceptance to its last delivery enqueued.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
	}
	if reg != nil {
		awaiting := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "herald_events_awaiting_expansion", Help: "Events accepted whose deliveries are not all enqueued yet.",
		}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			n, err := s.rdb.ZCard(ctx, s.keys.expand()).Result()
			if err != nil {
				return -1
			}
			return float64(n)
		})
		reg.MustRegister(m.accepted, m.refused, m.expandedSeconds, awaiting)
	}
	return m
}
