package ingest

import (
	"maps"
	"slices"
	"time"

	"github.com/tidemark-dev/tidemark/source"
)

// maxReports bounds the progress reports kept per (source, producer): at one
// report a second, a minute of reports waiting for ingest to catch up.
const maxReports = 64

type tp struct {
	topic string
	part  int32
}

// partState is what ingest knows of one owned partition.
type partState struct {
	next     int64     // every offset below is stored or dead-lettered; -1 unknown
	hwm      int64     // last listed high watermark; -1 unknown
	caughtAt time.Time // when a listing that found next >= hwm was sent; zero if not caught up
}

type producerReports struct {
	heard time.Time         // when the last report arrived
	list  []source.Progress // oldest first
}

type advance struct {
	source string
	part   int32
	t      time.Time
}

// tracker computes watermarks (see the package doc for the rules). It is
// not safe for concurrent use: the ingester guards it with a mutex.
type tracker struct {
	reg             *source.Config
	producerTimeout time.Duration

	parts      map[tp]*partState
	maxTime    map[string]map[int32]time.Time // kafka sources: newest stored event time per partition
	reports    map[string]map[string]*producerReports
	cur        map[string]map[int32]time.Time // watermarks as stored
	topicParts map[string][]int32             // every partition of each topic, as last listed
	registered map[string]map[int32]bool      // source → partitions registered in the store
}

func newTracker(reg *source.Config, producerTimeout time.Duration) *tracker {
	return &tracker{
		reg: reg, producerTimeout: producerTimeout,
		parts:   map[tp]*partState{},
		maxTime: map[string]map[int32]time.Time{},
		reports: map[string]map[string]*producerReports{},
		cur:     map[string]map[int32]time.Time{},

		topicParts: map[string][]int32{},
		registered: map[string]map[int32]bool{},
	}
}

// partitions records the partitions of a topic, as listed.
func (t *tracker) partitions(topic string, parts []int32) { t.topicParts[topic] = parts }

// unregistered returns the partitions of src's topic that are not
// registered in the store yet; known is false while the topic's partitions
// have not been listed (src may not advance before they are registered).
func (t *tracker) unregistered(src string) (parts []int32, known bool) {
	s, err := t.reg.Lookup(src)
	if err != nil {
		return nil, false
	}
	all, known := t.topicParts[s.Topic]
	for _, p := range all {
		if !t.registered[src][p] {
			parts = append(parts, p)
		}
	}
	return parts, known
}

// register records partitions registered in the store; the source's
// watermarks are read again before it advances.
func (t *tracker) register(src string, parts []int32) {
	if t.registered[src] == nil {
		t.registered[src] = map[int32]bool{}
	}
	for _, p := range parts {
		t.registered[src][p] = true
	}
	t.forget(src)
}

// forget drops the stored watermarks of src: evaluate skips it until
// setCurrent.
func (t *tracker) forget(src string) { delete(t.cur, src) }

func (t *tracker) assigned(topic string, parts []int32) {
	for _, p := range parts {
		if t.parts[tp{topic, p}] == nil {
			t.parts[tp{topic, p}] = &partState{next: -1, hwm: -1}
		}
	}
}

func (t *tracker) revoked(topic string, parts []int32) {
	for _, p := range parts {
		delete(t.parts, tp{topic, p})
	}
}

// owned returns the owned partitions of topic, sorted.
func (t *tracker) owned(topic string) []int32 {
	var out []int32
	for k := range t.parts {
		if k.topic == topic {
			out = append(out, k.part)
		}
	}
	slices.Sort(out)
	return out
}

// stored records that every offset of the partition below next is stored,
// and, for kafka sources, the newest event time stored per source.
func (t *tracker) stored(topic string, part int32, next int64, newest map[string]time.Time) {
	ps := t.parts[tp{topic, part}]
	if ps == nil {
		return // revoked meanwhile
	}
	if next > ps.next {
		ps.next = next
	}
	if ps.hwm >= 0 && ps.next < ps.hwm {
		ps.caughtAt = time.Time{}
	}
	for src, tm := range newest {
		m := t.maxTime[src]
		if m == nil {
			m = map[int32]time.Time{}
			t.maxTime[src] = m
		}
		if tm.After(m[part]) {
			m[part] = tm
		}
	}
}

// committed raises next to the group's committed offsets.
func (t *tracker) committed(offsets map[string]map[int32]int64) {
	for topic, parts := range offsets {
		for p, o := range parts {
			if ps := t.parts[tp{topic, p}]; ps != nil && o > ps.next {
				ps.next = o
			}
		}
	}
}

// listed records a listing of the partition's offsets sent at sentAt.
func (t *tracker) listed(topic string, part int32, start, hwm int64, sentAt time.Time) {
	ps := t.parts[tp{topic, part}]
	if ps == nil {
		return
	}
	ps.hwm = hwm
	if ps.next < start && start == hwm {
		ps.next = hwm // nothing kept below hwm: nothing to wait for
	}
	switch {
	case ps.next < hwm:
		ps.caughtAt = time.Time{}
	case ps.caughtAt.IsZero() || sentAt.After(ps.caughtAt):
		ps.caughtAt = sentAt
	}
}

// lag returns the records between what is stored and the high watermark of
// each owned partition whose both ends are known.
func (t *tracker) lag() map[tp]int64 {
	out := map[tp]int64{}
	for k, ps := range t.parts {
		if ps.hwm >= 0 && ps.next >= 0 {
			out[k] = max(ps.hwm-ps.next, 0)
		}
	}
	return out
}

func (t *tracker) progress(p source.Progress, received time.Time) {
	byProducer := t.reports[p.Source]
	if byProducer == nil {
		byProducer = map[string]*producerReports{}
		t.reports[p.Source] = byProducer
	}
	pr := byProducer[p.Producer]
	if pr == nil {
		pr = &producerReports{}
		byProducer[p.Producer] = pr
	}
	pr.heard = received
	if n := len(pr.list); n > 0 && !p.Time.After(pr.list[n-1].Time) {
		// Not newer: it can only repeat or weaken the last claim. Keep
		// the newer ends (more is covered) with the older time.
		return
	}
	pr.list = append(pr.list, p)
	if len(pr.list) > maxReports {
		pr.list = slices.Delete(pr.list, 0, len(pr.list)-maxReports)
	}
}

// setCurrent records the stored watermarks of a source.
func (t *tracker) setCurrent(src string, marks map[int32]time.Time) {
	t.cur[src] = maps.Clone(marks)
	if t.cur[src] == nil {
		t.cur[src] = map[int32]time.Time{}
	}
}

func (t *tracker) hasCurrent(src string) bool { _, ok := t.cur[src]; return ok }

// applied records a watermark written to the store.
func (t *tracker) applied(a advance) {
	if t.cur[a.source] == nil {
		t.cur[a.source] = map[int32]time.Time{}
	}
	t.cur[a.source][a.part] = a.t
}

// sources returns the sources whose partitions ingest registers: every
// source of the registry with a concrete name, and every source a report
// was heard for. evaluate advances some of them.
func (t *tracker) sources() []string {
	var out []string
	for _, s := range t.reg.Sources {
		if !s.IsPattern() {
			out = append(out, s.Name)
		}
	}
	for src := range t.reports {
		out = append(out, src)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// evaluate returns the watermark advances the rules allow at now, for
// sources whose current watermarks are known (setCurrent, which ingest
// calls only once every partition of the source's topic is registered).
func (t *tracker) evaluate(now time.Time) []advance {
	var out []advance
	add := func(src string, part int32, cand time.Time) {
		if cand.IsZero() {
			return
		}
		cur, ok := t.cur[src]
		if !ok {
			return
		}
		if c, ok := cur[part]; ok && !cand.After(c) {
			return
		}
		out = append(out, advance{src, part, cand})
	}
	for _, s := range t.reg.ByKind(source.KindKafka) {
		late := time.Duration(s.Kafka.Lateness)
		for _, p := range t.owned(s.Topic) {
			ps := t.parts[tp{s.Topic, p}]
			var cand time.Time
			if mt, ok := t.maxTime[s.Name][p]; ok {
				cand = mt.Add(-late)
			}
			if !ps.caughtAt.IsZero() && ps.caughtAt.Add(-late).After(cand) {
				cand = ps.caughtAt.Add(-late)
			}
			add(s.Name, p, cand)
		}
	}
	for src, byProducer := range t.reports {
		s, err := t.reg.Lookup(src)
		if err != nil || s.Kind == source.KindKafka {
			continue // reports for kafka sources are not ours to trust
		}
		var live []*producerReports
		for name, pr := range byProducer {
			switch {
			case now.Sub(pr.heard) <= t.producerTimeout:
				live = append(live, pr)
			case now.Sub(pr.heard) > 10*t.producerTimeout:
				delete(byProducer, name)
			}
		}
		if len(live) == 0 {
			continue
		}
		topic := live[0].list[len(live[0].list)-1].Topic
		if topic != s.Topic {
			continue // only the registry's topic has its partitions registered
		}
		for _, p := range t.owned(topic) {
			ps := t.parts[tp{topic, p}]
			if ps.next < 0 {
				continue
			}
			var cand time.Time
			for i, pr := range live {
				best := satisfied(pr.list, topic, p, ps.next)
				if best.IsZero() {
					cand = time.Time{}
					break
				}
				if i == 0 || best.Before(cand) {
					cand = best
				}
			}
			add(src, p, cand)
		}
	}
	return out
}

// satisfied returns the time of the newest report whose end offset of the
// partition is covered by next (zero if none).
func satisfied(list []source.Progress, topic string, part int32, next int64) time.Time {
	for i := len(list) - 1; i >= 0; i-- {
		r := &list[i]
		if r.Topic != topic {
			continue
		}
		if r.Ends[part] <= next { // a partition missing from Ends: the producer wrote nothing there
			return r.Time
		}
	}
	return time.Time{}
}
