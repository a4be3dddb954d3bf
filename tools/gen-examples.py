#!/usr/bin/python3
"""Generate hearth's example data set: a year of a home-furnishing studio.

    /usr/bin/python3 tools/gen-examples.py            # writes examples/
    /usr/bin/python3 tools/gen-examples.py --out DIR  # writes DIR/

Writes studio.jsonl (one PROTOCOL.md §2 event per line), studio.csv (the same events
as CSV for `hearthctl import`), expected.json (which default rules of
etc/hearth.yaml fire for whom at the end of the data, by this script's own
reference evaluation) and README.md (the counts below, so they stay true).

Standard library only, no network, deterministic: every customer is drawn
from random.Random(f"{SEED}/{customer}/{attempt}"), so the output is byte for
byte the same on every run and every machine.

About 300 customers of a studio in Hangzhou, one year of events ending (strictly
before) END = 2026-11-20T18:00:00+08:00. Customers follow the funnel of the
seed article 004: A lead -> B met a designer -> C needs known, quote given ->
D signed. Each customer is generated from an archetype (active, cooling,
below cadence, rhythmic buyer, slowed buyer, fresh first purchase, neglected
signed customer, wobbly new customer, ...) and re-drawn until the situation
planted for it holds at END with a safe margin from every rule threshold, so
that no timing subtlety (window edges, median of an even number of gaps)
decides whether a rule fires.
"""

import argparse
import csv
import io
import json
import os
import random
import re
import sys
from collections import Counter, OrderedDict
from datetime import datetime, timedelta, timezone

SEED = 20261120
TZ = timezone(timedelta(hours=8))
END = datetime(2026, 11, 20, 18, 0, 0, tzinfo=TZ)
START = END - timedelta(days=365)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)

TOUCH = ("contact", "call", "visit", "meeting", "message")   # events.sets.touch
OWNERS = ("zhang", "li", "wang", "chen", "zhao")

# ---------------------------------------------------------------- vocabulary

SURNAMES = [("王", "Wang"), ("李", "Li"), ("张", "Zhang"), ("刘", "Liu"), ("陈", "Chen"),
            ("杨", "Yang"), ("黄", "Huang"), ("赵", "Zhao"), ("吴", "Wu"), ("周", "Zhou"),
            ("徐", "Xu"), ("孙", "Sun"), ("马", "Ma"), ("朱", "Zhu"), ("胡", "Hu"),
            ("郭", "Guo"), ("何", "He"), ("林", "Lin"), ("罗", "Luo"), ("高", "Gao"),
            ("郑", "Zheng"), ("梁", "Liang"), ("谢", "Xie"), ("宋", "Song"), ("唐", "Tang"),
            ("韩", "Han"), ("冯", "Feng"), ("邓", "Deng"), ("曹", "Cao"), ("沈", "Shen")]
GIVEN = [("伟", "Wei"), ("芳", "Fang"), ("娜", "Na"), ("敏", "Min"), ("静", "Jing"),
         ("丽", "Li"), ("强", "Qiang"), ("磊", "Lei"), ("军", "Jun"), ("洋", "Yang"),
         ("勇", "Yong"), ("艳", "Yan"), ("杰", "Jie"), ("娟", "Juan"), ("涛", "Tao"),
         ("明", "Ming"), ("超", "Chao"), ("秀英", "Xiuying"), ("霞", "Xia"), ("平", "Ping"),
         ("刚", "Gang"), ("晓东", "Xiaodong"), ("海燕", "Haiyan"), ("子涵", "Zihan"),
         ("雨轩", "Yuxuan"), ("思远", "Siyuan"), ("欣怡", "Xinyi"), ("浩然", "Haoran"),
         ("佳琪", "Jiaqi"), ("建华", "Jianhua"), ("丽萍", "Liping"), ("文博", "Wenbo")]
BNB = ["悦居民宿", "西溪小筑", "湖畔公寓", "云栖客栈", "拾光民宿", "青庐公寓", "半山居"]
STUDIOS = ["木言设计", "栖梧设计", "一苇设计", "素舍设计", "简屋设计"]
CITIES = [("杭州", 70), ("绍兴", 8), ("湖州", 7), ("嘉兴", 8), ("宁波", 7)]
SOURCES = [("douyin", 25), ("xiaohongshu", 20), ("referral", 20), ("walk_in", 15),
           ("website", 10), ("home_expo", 10)]
NOTES = ["客户想先比较两家", "确认橱柜颜色", "预算有调整", "等交房", "关心环保板材",
         "需要老人房方案", "想看实景样板间", "对报价有疑问", "家里人意见不统一",
         "喜欢原木风", "要求工期在春节前", "问了分期付款"]
CONTRACTS = ["whole_house_custom", "kitchen_cabinets", "wardrobes", "full_package"]
ADDONS = [("sofa", 6000, 28000), ("curtains", 2000, 9000), ("lighting", 3000, 15000),
          ("mattress", 3000, 16000), ("dining_set", 4000, 20000), ("rug", 1200, 6000),
          ("smart_lock", 1500, 4000), ("bedding_set", 800, 3000)]
OFFERS = ["smart_lighting", "curtains", "sofa", "mattress", "balcony_cabinet",
          "maintenance_plan", "rug"]
D_TOPICS = ["delivery_delay", "installation", "damaged_panel", "color_mismatch",
            "missing_parts", "odor", "after_sales_slow"]
EARLY_TOPICS = ["quote_unclear", "designer_late", "measurement_error"]
RESOLUTIONS = {"delivery_delay": "rescheduled_delivery", "installation": "reinstalled",
               "damaged_panel": "replaced_panel", "color_mismatch": "replaced_panel",
               "missing_parts": "parts_delivered", "odor": "air_test_passed",
               "after_sales_slow": "apology_visit", "quote_unclear": "quote_explained",
               "designer_late": "apology_visit", "measurement_error": "remeasured"}
PROMISES = {"B": ["send_floor_plan", "send_design_draft", "book_showroom_visit"],
            "C": ["send_revised_quote", "deliver_samples", "site_remeasure",
                  "confirm_schedule"],
            "D": ["deliver_samples", "confirm_schedule", "send_care_guide",
                  "fix_hinge", "send_invoice"]}

# ---------------------------------------------------------------- archetypes
# name -> (count, rules that must fire at END, rules that may fire)
ARCHETYPES = OrderedDict([
    ("a_new",          (50, set(), set())),
    ("a_stale",        (50, set(), set())),
    ("b_active",       (38, set(), set())),
    ("b_cold",         (12, {"customer_cooling"}, set())),
    ("b_dropback",     (6,  set(), {"customer_cooling"})),
    ("c_cadence",      (22, set(), set())),
    ("c_below",        (8,  {"followup_below_cadence"}, set())),
    ("c_cold",         (7,  {"customer_cooling"}, set())),
    ("d_cared",        (56, set(), set())),
    ("d_rhythm",       (14, set(), set())),
    ("d_slowed",       (6,  {"cadence_slowing"}, set())),
    ("d_upsell",       (9,  {"upsell_window"}, set())),
    ("d_offered",      (5,  set(), set())),
    ("d_fresh",        (4,  set(), set())),
    ("d_neglected",    (7,  {"signed_needs_care"}, set())),
    ("new_wobble",     (6,  {"new_customer_wobble"}, {"upsell_window"})),
])

# Planted cases, by (archetype, index within the archetype).
FLAGS = {
    "open_old":  [("d_cared", 0), ("d_cared", 1), ("d_cared", 2), ("c_cadence", 0),
                  ("d_rhythm", 0), ("b_active", 0), ("new_wobble", 0)],
    "open_young": [("d_cared", 3), ("new_wobble", 1), ("c_cadence", 1)],
    "overdue":   [("c_cadence", 2), ("c_cadence", 3), ("b_active", 1), ("d_cared", 4),
                  ("d_cared", 5), ("c_below", 0)],
    "pending":   [("c_cadence", 4), ("c_cadence", 5), ("b_active", 2), ("d_cared", 6),
                  ("d_upsell", 0)],
}
FLAG_RULES = {"open_old": {"complaint_unresolved"}, "overdue": {"promise_overdue"}}

RULES = ["customer_cooling", "followup_below_cadence", "cadence_slowing",
         "complaint_unresolved", "promise_overdue", "upsell_window",
         "signed_needs_care", "new_customer_wobble"]


class Retry(Exception):
    """The draw cannot satisfy the archetype; draw this customer again."""


def pick(rng, weighted):
    total = sum(w for _, w in weighted)
    x = rng.uniform(0, total)
    for v, w in weighted:
        x -= w
        if x <= 0:
            return v
    return weighted[-1][0]


def rfc3339(t):
    return t.astimezone(TZ).isoformat(timespec="seconds")


def on_day(rng, t, lo_h=9, hi_h=20):
    """A working-hours time on t's local date (minute resolution)."""
    t = t.astimezone(TZ)
    m = rng.randrange(lo_h * 60, hi_h * 60)
    r = t.replace(hour=m // 60, minute=m % 60, second=0, microsecond=0)
    if r >= END:
        r = END - rng.randrange(30, 240) * MINUTE
    return r


def days_before_end(rng, lo, hi):
    return on_day(rng, END - rng.uniform(lo, hi) * DAY)


# ---------------------------------------------------------------- one customer

class Customer:
    def __init__(self, cid, arch, flags, rng):
        self.cid, self.arch, self.flags, self.rng = cid, arch, flags, rng
        self.events = []        # dicts: ts, type, attrs, case (kind, n) or None
        self.ncase = 0

    def add(self, ts, typ, attrs, case=None):
        if not (START <= ts < END):
            raise Retry("ts out of range")
        self.events.append({"ts": ts, "type": typ, "attrs": attrs, "case": case})

    def new_case(self, kind):
        self.ncase += 1
        return (kind, self.cid, self.ncase)


def name_for(rng, segment, used):
    for _ in range(1000):
        s = rng.choice(SURNAMES)
        g = rng.choice(GIVEN)
        if rng.random() < 0.6:
            n = s[0] + g[0]
        else:
            n = s[1] + " " + g[1]
        if segment == "landlord":
            n += "（" + rng.choice(BNB) + "）"
        elif segment == "designer_partner":
            n += "（" + rng.choice(STUDIOS) + "）"
        if n not in used:
            used.add(n)
            return n
    raise RuntimeError("names exhausted")


def touch_attrs(rng, tier, typ):
    if typ == "call":
        a = {"channel": "phone", "minutes": rng.randint(2, 25)}
    elif typ == "message":
        a = {"channel": "wechat"}
    elif typ == "meeting":
        a = {"channel": "showroom", "minutes": rng.choice([30, 45, 60, 90, 120])}
    elif typ == "visit":
        a = {"channel": "site", "minutes": rng.choice([30, 45, 60, 90])}
    else:  # contact
        a = {"channel": rng.choice(["phone", "wechat"]), "minutes": rng.randint(1, 10)}
    if rng.random() < 0.12:
        a["note"] = rng.choice(NOTES)
    return a


TOUCH_MIX = {"A": [("contact", 30), ("call", 35), ("message", 35)],
             "B": [("call", 30), ("message", 35), ("meeting", 20), ("visit", 15)],
             "C": [("call", 30), ("message", 30), ("meeting", 20), ("visit", 20)],
             "D": [("message", 45), ("call", 30), ("visit", 25)]}
TOUCH_GAP = {"A": (4, 20), "B": (7, 20), "C": (10, 17), "D": (15, 45)}


def gen_customer(cid, arch, flags, rng, used_names):
    c = Customer(cid, arch, flags, rng)
    segment = "homeowner"
    if arch in ("d_rhythm", "d_slowed"):
        segment = rng.choice(["landlord", "designer_partner"])
    owner = rng.choice(OWNERS)
    city = pick(rng, CITIES)
    source = "walk_in" if arch == "new_wobble" and flags.get("walkin") else pick(rng, SOURCES)
    area = rng.randrange(60, 220, 5)
    # `value` is the expected (probability-weighted) value of the open deal:
    # the budget times the chance the tier gives it; after signing, the
    # expected follow-on value. `budget`, `quote` and `contract` keep the sums.
    budget = int(round(area * rng.uniform(900, 2200), -3))
    if segment == "landlord":
        budget = int(round(rng.uniform(250000, 800000), -3))
    elif segment == "designer_partner":
        budget = int(round(rng.uniform(150000, 600000), -3))
    value = int(round(budget * rng.uniform(0.1, 0.2), -3))
    quote = budget

    # --- plan: first event, tier path, the tail of touches -------------------
    tiers = []          # (time, tier, stage)
    tail = []           # explicit touch times near END
    fill_to = END - DAY  # forward-fill touches until here (exclusive of tail)
    final = {"a_new": "A", "a_stale": "A", "b_active": "B", "b_cold": "B",
             "b_dropback": "B", "c_cadence": "C", "c_below": "C", "c_cold": "C",
             "new_wobble": "D" if flags.get("walkin") else "B"}.get(arch, "D")
    t_d = None          # when signed (D)
    if arch == "a_new":
        t0 = days_before_end(rng, 2, 90)
    elif arch == "a_stale":
        t0 = days_before_end(rng, 100, 362)
    elif arch in ("b_active", "b_cold", "b_dropback"):
        t0 = days_before_end(rng, 60, 340)
    elif arch in ("c_cadence", "c_below", "c_cold"):
        t0 = days_before_end(rng, 80, 340)
    elif arch in ("d_cared", "d_neglected"):
        t0 = days_before_end(rng, 160, 362)
    elif arch == "d_rhythm":
        t0 = days_before_end(rng, 300, 362)
    elif arch == "d_slowed":
        t0 = None       # worked out backwards from the purchases below
    elif arch in ("d_upsell", "d_offered", "d_fresh"):
        t0 = days_before_end(rng, 45, 250)
    elif arch == "new_wobble":
        t0 = days_before_end(rng, 14, 55)
    else:
        raise ValueError(arch)

    # tails: explicit recent touches that decide the planted situation
    if arch in ("b_active",):
        tail = [days_before_end(rng, 1, 22)]
    elif arch == "b_cold":
        tail = [days_before_end(rng, 36, 150)]
    elif arch == "b_dropback":
        tail = [days_before_end(rng, 1, 20)] if flags["idx"] < 4 else \
               [days_before_end(rng, 40, 100)]
    elif arch == "c_cadence":
        a = rng.uniform(1, 12)
        g1, g2 = rng.uniform(10, 15), rng.uniform(10, 15)
        tail = [days_before_end(rng, a + g1 + g2, a + g1 + g2),
                days_before_end(rng, a + g1, a + g1), days_before_end(rng, a, a)]
    elif arch == "c_below":
        tail = [days_before_end(rng, 36, 50), days_before_end(rng, 5, 20)]
    elif arch == "c_cold":
        tail = [days_before_end(rng, 36, 100)]
    elif arch == "d_cared":
        tail = [days_before_end(rng, 1, 75)]
    elif arch == "d_neglected":
        tail = [days_before_end(rng, 100, 200)]
    elif arch == "d_rhythm":
        tail = [days_before_end(rng, 1, 20)]
    tail.sort()
    if tail:
        fill_to = tail[0] - 8 * DAY

    # purchases planned for D archetypes
    purchases = []      # (time, item, amount)
    if arch == "d_slowed":
        g = rng.uniform(20, 35)
        n = rng.randint(4, 7)
        s = rng.uniform(2.7, 4.5) * g
        last = days_before_end(rng, s, s)
        times = [last]
        for _ in range(n - 1):
            times.append(on_day(rng, times[-1] - rng.uniform(0.85, 1.15) * g * DAY))
        times.reverse()
        while times[0] < START + 40 * DAY:
            times.pop(0)
        if len(times) < 4:
            raise Retry("slowed: not enough purchases")
        t_d = times[0]
        t0 = on_day(rng, t_d - rng.uniform(15, 35) * DAY)
        if t0 < START:
            raise Retry("slowed: t0")
        purchases = [(t, None, None) for t in times]
        tail = [days_before_end(rng, 3, 40)] if rng.random() < 0.6 else []
        if tail:
            fill_to = tail[0] - 8 * DAY
    elif arch == "d_upsell" or arch == "d_offered":
        t_d = days_before_end(rng, 8.5, 27.5)
    elif arch == "d_fresh":
        t_d = END - rng.uniform(0.6, 5) * DAY
        t_d = on_day(rng, t_d)
        if t_d > END - 6 * HOUR:
            raise Retry("fresh too fresh")
    elif arch == "new_wobble" and flags.get("walkin"):
        t_d = t0 + rng.randint(60, 150) * MINUTE

    # tier path A -> B -> C (-> D)
    path = {"A": [], "B": ["B"], "C": ["B", "C"], "D": ["B", "C", "D"]}[final]
    if arch == "b_dropback":
        path = ["B", "C", "B"]
    if arch == "new_wobble" and flags.get("walkin"):
        path = ["D"]
    if path:
        # the last transition must happen before `limit`
        if t_d is not None:
            limit = t_d
        elif tail:
            limit = tail[0] - 2 * DAY
        else:
            limit = END - 2 * DAY
        if arch == "d_cared":
            limit = min(limit, END - 45 * DAY)
        if arch == "d_neglected":
            limit = min(limit, tail[0] - 10 * DAY)
        if arch == "d_rhythm":
            limit = min(limit, t0 + rng.uniform(20, 45) * DAY)
        if arch == "new_wobble" and not flags.get("walkin"):
            limit = min(limit, END - 16 * DAY)
        span = (limit - t0) / DAY
        if span < 1.5 and path != ["D"]:
            raise Retry("no room for the tier path")
        durs = [{"B": rng.uniform(2, 30), "C": rng.uniform(10, 50),
                 "D": rng.uniform(14, 60)}[x] for x in path]
        if arch == "b_dropback":
            durs = [rng.uniform(2, 20), rng.uniform(10, 30), rng.uniform(15, 40)]
        if t_d is not None:
            # the last step lands exactly on t_d
            scale = span / sum(durs)
        else:
            scale = min(1.0, span / sum(durs))
        t = t0
        for i, (x, d) in enumerate(zip(path, durs)):
            t = on_day(rng, t + d * scale * DAY) if not (t_d is not None and i == len(path) - 1) else t_d
            if t <= t0 + 10 * MINUTE:
                t = t0 + rng.randint(20, 90) * MINUTE
            tiers.append((t, x))
        if t_d is None and final == "D":
            t_d = tiers[-1][0]
        for i in range(1, len(tiers)):
            if tiers[i][0] <= tiers[i - 1][0] + HOUR:
                raise Retry("tier steps too close")
        if tiers[-1][0] > limit + MINUTE:
            raise Retry("tier path too late")

    # --- events ----------------------------------------------------------------
    name = name_for(rng, segment, used_names)
    c.add(t0, "profile", OrderedDict([
        ("name", name), ("owner", owner), ("tier", "A"), ("stage", "lead"),
        ("value", value), ("city", city), ("source", source), ("segment", segment),
        ("area", area), ("budget", budget)]))
    first = t0 + rng.randint(3, 90) * MINUTE
    touch_times = {first: "contact"}

    def tier_at(t):
        cur = "A"
        for tt, x in tiers:
            if tt <= t:
                cur = x
        return cur

    # transitions: a touch that causes it, then the profile change
    stage_of = {"B": "designer", "C": "quote", "D": "signed"}
    contract = None
    for i, (tt, x) in enumerate(tiers):
        if x == "B" and i > 0:
            touch_times[tt - rng.randint(20, 60) * MINUTE] = "call"       # dropped back
        else:
            touch_times[tt - rng.randint(15, 50) * MINUTE] = \
                {"B": "meeting", "C": "visit", "D": "meeting"}[x]
        attrs = OrderedDict([("tier", x), ("stage", stage_of[x])])
        if x == "B" and i > 0:
            attrs["note"] = "客户在比较其他公司,回到B类"
            value = int(round(quote * rng.uniform(0.25, 0.35), -3))
            attrs["value"] = value
        elif x == "B":
            budget = int(round(budget * rng.uniform(0.9, 1.3), -3))
            value = int(round(budget * rng.uniform(0.35, 0.45), -3))
            attrs["budget"] = budget
            attrs["value"] = value
        elif x == "C":
            quote = int(round(budget * rng.uniform(0.9, 1.15), -3))
            value = int(round(quote * rng.uniform(0.6, 0.8), -3))
            attrs["quote"] = quote
            attrs["value"] = value
        elif x == "D":
            if arch == "new_wobble":
                attrs["stage"] = "purchased"
                item, lo, hi = rng.choice(ADDONS[:5])
                contract = (item, int(round(rng.uniform(lo, hi), -2)))
                value = int(round(contract[1] * rng.uniform(0.5, 1.5), -3))
            else:
                contract = (rng.choice(CONTRACTS), int(round(quote * rng.uniform(0.85, 1.05), -2)))
                value = int(round(contract[1] * rng.uniform(0.1, 0.25), -3))
            attrs["contract"] = contract[1]
            attrs["value"] = value     # from now on: expected follow-on value
        c.add(tt, "profile", attrs)

    # forward fill touches between the first touch and fill_to
    t = first
    stop_after = None
    if arch == "a_stale":
        stop_after = rng.randint(1, 5)
    if arch == "a_new" and rng.random() < 0.3:
        stop_after = rng.randint(0, 3)
    count = 0
    while True:
        lo, hi = TOUCH_GAP[tier_at(t)]
        t = on_day(rng, t + rng.uniform(lo, hi) * DAY)
        if t >= fill_to or t >= END - 6 * HOUR:
            break
        if stop_after is not None and count >= stop_after:
            break
        touch_times[t] = pick(rng, TOUCH_MIX[tier_at(t)])
        count += 1
    for t in tail:
        touch_times[t] = pick(rng, TOUCH_MIX[tier_at(t)])
    if arch == "d_neglected":
        # nothing after the tail: drop any fill beyond it
        touch_times = {k: v for k, v in touch_times.items() if k <= tail[-1]}
    if arch in ("b_cold", "c_cold") or (arch == "b_dropback" and flags["idx"] >= 4):
        touch_times = {k: v for k, v in touch_times.items() if k <= tail[-1]}
        if max(touch_times) < tiers[-1][0]:
            raise Retry("cold before tier")
    if arch == "c_below":
        # exactly one touch in the last 30 days
        touch_times = {k: v for k, v in touch_times.items()
                       if k <= tail[0] or k == tail[-1]}
    for tt in sorted(touch_times):
        c.add(tt, touch_times[tt], touch_attrs(rng, tier_at(tt), touch_times[tt]))

    # lost leads
    if arch == "a_stale" and rng.random() < 0.7:
        tl = on_day(rng, max(touch_times) + rng.uniform(10, 40) * DAY)
        if tl < END - DAY:
            c.add(tl, "profile", OrderedDict([("stage", "lost"), ("value", 0)]))

    # owner handed over once in a while
    if rng.random() < 0.04 and END - t0 > 60 * DAY:
        th = on_day(rng, t0 + rng.uniform(20, (END - t0) / DAY - 10) * DAY)
        c.add(th, "profile", {"owner": rng.choice([o for o in OWNERS if o != owner])})

    # --- purchases and offers (D) ------------------------------------------------
    offers = []
    if final == "D" or arch == "new_wobble" and flags.get("walkin"):
        if arch == "d_slowed":
            purchases = [(purchases[0][0], contract[0], contract[1])] + [
                (p[0], "unit_package" if segment == "landlord" else rng.choice(ADDONS)[0],
                 int(round(rng.uniform(15000, 60000), -2))) for p in purchases[1:]]
        else:
            purchases = [(t_d + rng.randint(5, 25) * MINUTE, contract[0], contract[1])]
        if arch == "d_rhythm":
            g = rng.uniform(21, 45)
            t = purchases[0][0]
            while True:
                t = on_day(rng, t + rng.uniform(0.8, 1.2) * g * DAY)
                if t >= END - 12 * HOUR:
                    break
                item = "unit_package" if segment == "landlord" else rng.choice(ADDONS)[0]
                purchases.append((t, item, int(round(rng.uniform(15000, 60000), -2))))
            if len(purchases) < 4:
                raise Retry("rhythm too short")
            for p in purchases[1:]:
                if rng.random() < 0.25:
                    offers.append(on_day(rng, p[0] - rng.uniform(3, 7) * DAY))
        if arch in ("d_cared", "d_neglected"):
            offers.append(on_day(rng, purchases[0][0] + rng.uniform(5, 14) * DAY))
            horizon = END - 35 * DAY if arch == "d_cared" else max(touch_times)
            if rng.random() < 0.5:
                tp = on_day(rng, purchases[0][0] + rng.uniform(15, 120) * DAY)
                if tp < horizon:
                    item, lo, hi = rng.choice(ADDONS)
                    purchases.append((tp, item, int(round(rng.uniform(lo, hi), -2))))
        if arch == "d_offered":
            to = purchases[0][0] + rng.uniform(2, 6) * DAY
            offers.append(on_day(rng, to) if on_day(rng, to) > purchases[0][0] + HOUR
                          else purchases[0][0] + 2 * HOUR)
        if arch == "d_slowed":
            for p in purchases[1:]:
                if rng.random() < 0.3:
                    offers.append(on_day(rng, p[0] - rng.uniform(3, 7) * DAY))
        for tp, item, amount in purchases:
            c.add(tp, "purchase", OrderedDict([("amount", amount), ("item", item),
                                               ("channel", "showroom")]))
        for to in offers:
            if to < END - HOUR:
                c.add(to, "offer", OrderedDict([("item", rng.choice(OFFERS)),
                                                ("channel", rng.choice(["wechat", "phone"]))]))
        # stage updates after signing
        if arch in ("d_cared", "d_neglected", "d_rhythm", "d_slowed"):
            ti = on_day(rng, t_d + rng.uniform(5, 15) * DAY)
            tc = on_day(rng, t_d + rng.uniform(30, 70) * DAY)
            if ti < END - DAY:
                c.add(ti, "profile", {"stage": "installing"})
            if tc < END - DAY:
                c.add(tc, "profile", {"stage": "completed"})

    # --- complaints -----------------------------------------------------------
    def complaint(topic, t_open, t_close):
        case = c.new_case("complaint")
        c.add(t_open, "complaint", OrderedDict([
            ("channel", rng.choice(["phone", "wechat", "showroom"])), ("topic", topic)]), case)
        if t_close is not None:
            c.add(t_close, "complaint_resolved", OrderedDict([
                ("resolution", RESOLUTIONS[topic]), ("channel", rng.choice(["phone", "site"]))]),
                case)

    d_topics = D_TOPICS if final == "D" else EARLY_TOPICS
    # history: resolved complaints
    p_hist = {"D": 0.25, "C": 0.12, "B": 0.08}.get(final, 0)
    if arch not in ("new_wobble", "d_fresh", "d_upsell", "d_offered") and rng.random() < p_hist:
        lo = t_d if t_d else (tiers[0][0] if tiers else t0)
        if END - 25 * DAY - lo > 5 * DAY:
            to = on_day(rng, lo + rng.uniform(2, (END - 25 * DAY - lo) / DAY) * DAY, 8, 22)
            complaint(rng.choice(d_topics), to,
                      to + timedelta(hours=rng.uniform(1, 24 * 7)))
    if flags.get("open_old"):
        if arch == "new_wobble":
            lo_ = max(purchases[0][0] + DAY if purchases else t0 + DAY, END - 12 * DAY)
            if lo_ > END - 3 * DAY:
                raise Retry("wobble complaint window")
            to = on_day(rng, lo_ + rng.uniform(0, (END - 3 * DAY - lo_) / DAY) * DAY, 8, 22)
            if to > END - 3 * DAY or to <= purchases[0][0]:
                raise Retry("wobble complaint")
        else:
            to = days_before_end(rng, 3.5, 25)
        complaint(rng.choice(d_topics), to, None)
    elif flags.get("open_young"):
        to = END - timedelta(hours=rng.uniform(4, 40))
        to = to.replace(second=0, microsecond=0)
        complaint(rng.choice(d_topics), to, None)
    elif arch == "new_wobble":
        lo_ = max(purchases[0][0] + DAY if purchases else t0 + DAY, END - 12 * DAY)
        to = on_day(rng, lo_ + rng.uniform(0, max(0.1, (END - 2 * DAY - lo_) / DAY)) * DAY, 8, 22)
        if to >= END - 30 * HOUR:
            raise Retry("wobble complaint too late to be resolved")
        complaint(rng.choice(d_topics if flags.get("walkin") else ["designer_late",
                                                                   "quote_unclear"]),
                  to, to + timedelta(hours=rng.uniform(3, 26)))

    # --- promises -------------------------------------------------------------
    def promise(t_made, due, kept, tier):
        case = c.new_case("promise")
        c.add(t_made, "promise", OrderedDict([("topic", rng.choice(PROMISES[tier])),
                                              ("due", rfc3339(due))]), case)
        if kept is not None:
            c.add(kept, "promise_kept", OrderedDict([("channel", rng.choice(["wechat", "phone",
                                                                              "site"]))]), case)

    tts = sorted(touch_times)
    for tt in tts:
        tier = tier_at(tt)
        if tier == "A" or rng.random() > 0.1 or tt > END - 20 * DAY:
            continue
        due = on_day(rng, tt + rng.uniform(1, 7) * DAY, 17, 21)
        if rng.random() < 0.85:
            kept = tt + timedelta(hours=rng.uniform(2, max(3, (due - tt) / HOUR)))
        else:
            kept = due + timedelta(hours=rng.uniform(6, 72))
        kept = kept.replace(second=0, microsecond=0)
        if kept >= END - 6 * HOUR or due >= END - DAY:
            continue
        promise(tt + rng.randint(2, 10) * MINUTE, due, kept, tier)
    if flags.get("overdue"):
        cand = [tt for tt in tts if END - 25 * DAY <= tt <= END - 3 * DAY and tier_at(tt) != "A"]
        if not cand:
            raise Retry("no touch for an overdue promise")
        tt = rng.choice(cand)
        room = (END - DAY - tt) / DAY
        due = on_day(rng, tt + rng.uniform(1, min(5, room)) * DAY, 10, 18)
        if due > END - 12 * HOUR:
            raise Retry("overdue too close")
        promise(tt + rng.randint(2, 10) * MINUTE, due, None, tier_at(tt))
    if flags.get("pending"):
        cand = [tt for tt in tts if END - 20 * DAY <= tt <= END - 2 * HOUR and tier_at(tt) != "A"]
        if not cand:
            raise Retry("no touch for a pending promise")
        tt = max(cand)
        due = (END + rng.uniform(1, 8) * DAY).replace(hour=rng.randint(10, 18), minute=0,
                                                      second=0, microsecond=0)
        promise(tt + rng.randint(2, 10) * MINUTE, due, None, tier_at(tt))

    # timestamps strictly increasing within a customer
    c.events.sort(key=lambda e: e["ts"])
    for a, b in zip(c.events, c.events[1:]):
        if b["ts"] <= a["ts"]:
            b["ts"] = a["ts"] + MINUTE
    if c.events[-1]["ts"] >= END:
        raise Retry("pushed past END")
    if c.events[0]["type"] != "profile" or c.events[1]["ts"] <= t0:
        raise Retry("first event is not the profile")
    return c


# ---------------------------------------------------------------- reference evaluation

def terms(events, now=END):
    """The values the default rules read, per PROTOCOL.md §7.4, for one customer at `now`."""
    ev = [e for e in events if e["ts"] <= now]
    prof = {}
    for e in ev:
        if e["type"] == "profile":
            for k, v in e["attrs"].items():
                if v is None:
                    prof.pop(k, None)
                else:
                    prof[k] = v

    def times(types):
        return sorted(e["ts"] for e in ev if e["type"] in types)

    def since(types):
        t = times(types)
        return (now - t[-1]) if t else None

    def count(types, w):
        return sum(1 for t in times(types) if t > now - w)

    def cases(kind, close):
        opened = OrderedDict()
        for e in ev:
            if e["type"] == kind:
                opened[e["ref"]] = e
            elif e["type"] == close:
                opened.pop(e["ref"], None)
        return list(opened.values())

    pt = times(("purchase",))
    gaps = [b - a for a, b in zip(pt, pt[1:])][-12:]
    gs = sorted(gaps)
    if len(gs) < 1:
        gap_variants = None
    elif len(gs) % 2:
        gap_variants = [gs[len(gs) // 2]]
    else:
        lo_, hi_ = gs[len(gs) // 2 - 1], gs[len(gs) // 2]
        gap_variants = [lo_, hi_, (lo_ + hi_) / 2]
    oc = cases("complaint", "complaint_resolved")
    op = cases("promise", "promise_kept")
    overdue = sum(1 for e in op if datetime.fromisoformat(e["attrs"]["due"]) < now)
    first = min(e["ts"] for e in ev)
    return {
        "prof": prof, "age": now - first,
        "since_touch": since(TOUCH), "count_touch_30d": count(TOUCH, 30 * DAY),
        "since_purchase": since(("purchase",)), "count_purchase_365d": count(("purchase",), 365 * DAY),
        "count_purchase_3650d": count(("purchase",), 3650 * DAY),
        "since_offer": since(("offer",)), "gaps": gap_variants,
        "open_complaint": len(oc),
        "oldest_complaint": (now - min(e["ts"] for e in oc)) if oc else None,
        "count_complaint_14d": count(("complaint",), 14 * DAY),
        "open_promise": len(op), "overdue_promise": overdue,
        "touch_times": times(TOUCH), "purchase_times": pt,
        "complaint_times": times(("complaint",)),
        "dues": [datetime.fromisoformat(e["attrs"]["due"]) for e in op],
    }


def gt(a, b):
    """PROTOCOL.md §7.5: a comparison with null is false."""
    return a is not None and b is not None and a > b


def fire(t, gap=None):
    """The eight default rules of etc/hearth.yaml, transcribed. Keep in step."""
    tier = t["prof"].get("tier")
    st, age = t["since_touch"], t["age"]
    sp, so = t["since_purchase"], t["since_offer"]
    if gap is None and t["gaps"]:
        gap = t["gaps"][0]
    r = set()
    if tier in ("B", "C") and (gt(st, 30 * DAY) or (st is None and age > 30 * DAY)):
        r.add("customer_cooling")
    if tier == "C" and t["count_touch_30d"] < 2 and st is not None and st <= 30 * DAY:
        r.add("followup_below_cadence")
    if t["count_purchase_365d"] >= 3 and gap is not None and gt(sp, 2 * gap):
        r.add("cadence_slowing")
    if gt(t["oldest_complaint"], 48 * HOUR):
        r.add("complaint_unresolved")
    if t["overdue_promise"] > 0:
        r.add("promise_overdue")
    if (t["count_purchase_3650d"] == 1 and sp is not None and 7 * DAY <= sp <= 30 * DAY
            and (so is None or so > sp) and t["open_complaint"] == 0):
        r.add("upsell_window")
    if tier == "D" and (gt(st, 90 * DAY) or (st is None and age > 90 * DAY)):
        r.add("signed_needs_care")
    if age < 60 * DAY and t["count_complaint_14d"] > 0:
        r.add("new_customer_wobble")
    return r


def priority(t):
    """etc/hearth.yaml `priority`, transcribed; None where PROTOCOL.md §7.5 gives null."""
    v, st = t["prof"].get("value"), t["since_touch"]
    if v is None or st is None:
        return None
    return v / 10000 * min(st / (30 * DAY), 3) + 20 * t["open_complaint"] + 30 * t["overdue_promise"]


def borderline(t):
    """Why this customer's outcome could hinge on the exact edge of a threshold or window (PROTOCOL.md §7.4), or None."""
    m = 6 * HOUR

    def near(d, thr, margin=m):
        return d is not None and abs(d - thr) < margin

    for thr in (30 * DAY, 90 * DAY):
        if near(t["since_touch"], thr):
            return "since(touch) near %s" % thr
    for thr in (30 * DAY, 60 * DAY, 90 * DAY):
        if near(t["age"], thr):
            return "age near %s" % thr
    for x in t["touch_times"]:
        if near(END - x, 30 * DAY):
            return "touch at the 30d window edge"
    for x in t["purchase_times"]:
        if near(END - x, 365 * DAY):
            return "purchase at the 365d window edge"
    for x in t["complaint_times"]:
        if near(END - x, 14 * DAY):
            return "complaint at the 14d window edge"
    for thr in (7 * DAY, 30 * DAY):
        if near(t["since_purchase"], thr):
            return "since(purchase) near %s" % thr
    if t["since_offer"] is not None and t["since_purchase"] is not None and \
            near(t["since_offer"], t["since_purchase"], HOUR):
        return "offer next to purchase"
    if near(t["oldest_complaint"], 48 * HOUR, 2 * HOUR):
        return "oldest complaint near 48h"
    for d in t["dues"]:
        if abs(d - END) < m:
            return "promise due near END"
    if t["gaps"] and t["count_purchase_365d"] >= 3:
        outs = {("cadence_slowing" in fire(t, g)) for g in t["gaps"]}
        if len(outs) > 1:
            return "gap median definition decides"
        for g in t["gaps"]:
            if near(t["since_purchase"], 2 * g, DAY):
                return "since(purchase) near 2*gap"
    return None


def assign_ids(customers):
    allev = []
    for c in customers:
        for e in c.events:
            e["customer"] = c.cid
            allev.append(e)
    allev.sort(key=lambda e: (e["ts"], e["customer"], e["type"]))
    refs, n = {}, Counter()
    for i, e in enumerate(allev, 1):
        e["id"] = "ex-%06d" % i
        if e["case"] is not None:
            kind = e["case"][0]
            if e["case"] not in refs:
                n[kind] += 1
                refs[e["case"]] = ("T-%04d" if kind == "complaint" else "P-%04d") % n[kind]
            e["ref"] = refs[e["case"]]
        else:
            e["ref"] = None
    return allev


NUMLIKE = re.compile(r"^\s*(-?\d+(\.\d*)?([eE][-+]?\d+)?|true|false|null)\s*$", re.I)


def check_event(e):
    assert re.match(r"^[a-z][a-z0-9_]{0,31}$", e["type"]), e
    assert 0 < len(e["attrs"]) <= 32, e
    for k, v in e["attrs"].items():
        assert re.match(r"^[a-z][a-z0-9_]{0,31}$", k), k
        assert isinstance(v, (str, int, float)) and not isinstance(v, bool), (k, v)
        # keep CSV and JSON lines equivalent: no string that reads as a number
        # or a keyword, no empty string (an empty CSV cell means "absent")
        if isinstance(v, str):
            assert v and not NUMLIKE.match(v), (k, v)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "examples"))
    args = ap.parse_args()
    out = os.path.normpath(args.out)

    plan = []
    for arch, (n, _, _) in ARCHETYPES.items():
        for i in range(n):
            flags = {"idx": i}
            for f, where in FLAGS.items():
                if (arch, i) in where:
                    flags[f] = True
            if arch == "new_wobble":
                flags["walkin"] = i < 4
            plan.append((arch, flags))
    # interleave archetypes so customer ids say nothing about the situation
    random.Random(SEED).shuffle(plan)

    used_names = set()
    customers, retries = [], Counter()
    for k, (arch, flags) in enumerate(plan):
        cid = "C%d" % (1001 + k)
        for attempt in range(200):
            rng = random.Random("%d/%s/%d" % (SEED, cid, attempt))
            names = set(used_names)
            try:
                c = gen_customer(cid, arch, flags, rng, names)
            except Retry as r:
                retries[str(r)] += 1
                continue
            # provisional refs to evaluate this customer alone
            for e in c.events:
                e["ref"] = ("%s-%d" % (e["case"][0], e["case"][2])) if e["case"] else None
            t = terms(c.events)
            why = borderline(t)
            got = fire(t)
            _, must, may = ARCHETYPES[arch]
            must = set(must)
            for f, rules in FLAG_RULES.items():
                if flags.get(f):
                    must |= rules
            if why:
                retries["borderline: " + why] += 1
                continue
            if not (must <= got <= must | may):
                retries["outcome %s != %s" % (sorted(got), sorted(must))] += 1
                continue
            if flags.get("open_young") and not (t["open_complaint"] and
                                                "complaint_unresolved" not in got):
                retries["open_young"] += 1
                continue
            if flags.get("pending") and t["open_promise"] - t["overdue_promise"] < 1:
                retries["pending"] += 1
                continue
            used_names = names
            customers.append(c)
            break
        else:
            sys.exit("gen-examples: cannot draw %s (%s): %s" % (cid, arch, retries.most_common(3)))

    allev = assign_ids(customers)
    for e in allev:
        check_event(e)
    assert len({e["id"] for e in allev}) == len(allev)

    # ------------------------------------------------------------ write
    os.makedirs(out, exist_ok=True)
    lines = []
    for e in allev:
        o = OrderedDict([("id", e["id"]), ("customer", e["customer"]),
                         ("ts", rfc3339(e["ts"])), ("type", e["type"])])
        if e["ref"]:
            o["ref"] = e["ref"]
        o["attrs"] = e["attrs"]
        lines.append(json.dumps(o, ensure_ascii=False, separators=(", ", ": ")))
    with open(os.path.join(out, "studio.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")

    lead = ["name", "owner", "tier", "stage", "value", "city",
            "channel", "minutes", "amount", "item", "topic", "due",
            "source", "segment", "area", "budget", "quote", "contract", "note", "resolution"]
    keys = set(k for e in allev for k in e["attrs"])
    cols = [k for k in lead if k in keys] + sorted(keys - set(lead))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["customer", "ts", "type", "id", "ref"] + cols)
    for e in allev:
        row = [e["customer"], rfc3339(e["ts"]), e["type"], e["id"], e["ref"] or ""]
        for k in cols:
            v = e["attrs"].get(k)
            row.append("" if v is None else (v if isinstance(v, str) else json.dumps(v)))
        w.writerow(row)
    with open(os.path.join(out, "studio.csv"), "w", encoding="utf-8", newline="") as f:
        f.write(buf.getvalue())

    # ------------------------------------------------------------ counts
    types = Counter(e["type"] for e in allev)
    per = {c.cid: terms(c.events) for c in customers}
    tiers = Counter(per[c.cid]["prof"]["tier"] for c in customers)
    stages = Counter(per[c.cid]["prof"]["stage"] for c in customers)
    firing = {r: sorted(cid for cid, t in per.items() if r in fire(t)) for r in RULES}
    open_c = sum(t["open_complaint"] for t in per.values())
    open_c_old = sum(1 for t in per.values() for x in [t["oldest_complaint"]]
                     if x is not None and x > 48 * HOUR)
    open_c_young = sum(1 for c in customers for e in c.events
                       if e["type"] == "complaint" and END - e["ts"] <= 48 * HOUR
                       and not any(x["type"] == "complaint_resolved" and x["ref"] == e["ref"]
                                   for x in c.events))
    tier_changed = sum(1 for c in customers
                       if sum(1 for e in c.events if e["type"] == "profile" and "tier" in e["attrs"]) > 1)
    open_p = sum(t["open_promise"] for t in per.values())
    overdue_p = sum(t["overdue_promise"] for t in per.values())
    history_tier = sum(1 for c in customers
                       if sum(1 for e in c.events if e["type"] == "profile" and "tier" in e["attrs"]) > 2)
    dropped = sum(1 for c in customers if c.arch == "b_dropback")
    scored = sorted(((priority(t), cid) for cid, t in per.items() if priority(t) is not None),
                    key=lambda x: (-x[0], x[1]))
    top = [{"customer": cid, "name": per[cid]["prof"]["name"], "tier": per[cid]["prof"]["tier"],
            "score": round(s, 3)} for s, cid in scored[:16]]
    expected = OrderedDict([
        ("at", rfc3339(END)),
        ("note", "Computed by tools/gen-examples.py from its transcription of the default "
                 "rules and priority of etc/hearth.yaml; every planted situation is at least "
                 "6 hours away from each threshold at this instant."),
        ("events", len(allev)), ("customers", len(customers)),
        ("firing", OrderedDict((r, firing[r]) for r in RULES)),
        ("open", {"complaint": open_c, "promise": open_p}),
        ("overdue", {"promise": overdue_p}),
        ("top", top),
    ])
    with open(os.path.join(out, "expected.json"), "w", encoding="utf-8") as f:
        # one line per rule and per ranked customer: easy to read and to diff
        def dump(v):
            return json.dumps(v, ensure_ascii=False)
        f.write("{\n")
        for i, (k, v) in enumerate(expected.items()):
            sep = "," if i < len(expected) - 1 else ""
            if k == "firing":
                f.write(' "firing": {\n' + ",\n".join(
                    "  %s: %s" % (dump(r), dump(c)) for r, c in v.items()) + "\n }" + sep + "\n")
            elif k == "top":
                f.write(' "top": [\n' + ",\n".join("  " + dump(x) for x in v) + "\n ]" + sep + "\n")
            else:
                f.write(" %s: %s%s\n" % (dump(k), dump(v), sep))
        f.write("}\n")

    size_j = os.path.getsize(os.path.join(out, "studio.jsonl"))
    size_c = os.path.getsize(os.path.join(out, "studio.csv"))
    first_ts = min(e["ts"] for e in allev)
    last_ts = max(e["ts"] for e in allev)

    print("customers %d, events %d (%s .. %s)" % (len(customers), len(allev),
                                                  rfc3339(first_ts), rfc3339(last_ts)))
    print("studio.jsonl %d bytes, studio.csv %d bytes, csv columns: %s"
          % (size_j, size_c, ",".join(["customer", "ts", "type", "id", "ref"] + cols)))
    print("events per type:")
    for k, v in sorted(types.items(), key=lambda x: (-x[1], x[0])):
        print("  %-20s %5d" % (k, v))
    print("customers per tier at the end:", dict(sorted(tiers.items())))
    print("customers per stage at the end:", dict(sorted(stages.items())))
    print("customers with a tier change: %d; with two or more: %d; fell back C->B: %d"
          % (tier_changed, history_tier, dropped))
    print("open complaints %d (customers with one older than 48h: %d; open ones younger than 48h: %d);"
          " open promises %d, overdue %d" % (open_c, open_c_old, open_c_young, open_p, overdue_p))
    print("rules firing at %s:" % rfc3339(END))
    for r in RULES:
        print("  %-24s %3d  %s" % (r, len(firing[r]), " ".join(firing[r])))
    print("top 16 by priority:")
    for x in top:
        print("  %-6s %-4s %8.2f  %s" % (x["customer"], x["tier"], x["score"], x["name"]))
    if retries:
        print("redraws: %d" % sum(retries.values()))

    # ------------------------------------------------------------ README
    def typeline(k):
        return "| `%s` | %d |" % (k, types.get(k, 0))
    order = ["profile", "contact", "call", "message", "meeting", "visit", "purchase", "offer",
             "complaint", "complaint_resolved", "promise", "promise_kept"]
    readme = README.format(
        n_customers=len(customers), n_events=len(allev), last_id=1000 + len(customers),
        first=rfc3339(first_ts), last=rfc3339(last_ts), end=rfc3339(END),
        size_j=size_j // 1024, size_c=size_c // 1024,
        types="\n".join(typeline(k) for k in order + sorted(set(types) - set(order))),
        tiers=", ".join("%s %d" % (k, tiers[k]) for k in "ABCD"),
        stages=", ".join("%s %d" % (k, v) for k, v in sorted(stages.items(), key=lambda x: -x[1])),
        history_tier=history_tier, dropped=dropped, tier_changed=tier_changed,
        open_c_young=open_c_young, not_due=open_p - overdue_p,
        n_touch=sum(types[k] for k in TOUCH),
        open_c=open_c, open_c_old=open_c_old, open_p=open_p, overdue_p=overdue_p,
        rules="\n".join("| `%s` | %d | %s |" % (r, len(firing[r]), RULE_WHAT[r]) for r in RULES),
        top=", ".join("%s (%s)" % (x["customer"], x["tier"]) for x in top),
        cols=",".join(["customer", "ts", "type", "id", "ref"] + cols),
    )
    with open(os.path.join(out, "README.md"), "w", encoding="utf-8") as f:
        f.write(readme)


RULE_WHAT = {
    "customer_cooling": "tier B/C customers nobody has touched for over 30 days",
    "followup_below_cadence": "tier C customers touched only once in the last 30 days",
    "cadence_slowing": "repeat buyers (landlords, partner designers) whose last purchase "
                       "is more than twice their usual gap ago",
    "complaint_unresolved": "customers with a complaint open for more than 48 hours",
    "promise_overdue": "customers with a promise past its `due` and not kept",
    "upsell_window": "first-time buyers 7 to 30 days after the purchase with no offer yet",
    "signed_needs_care": "signed (tier D) customers not touched for 90 days",
    "new_customer_wobble": "customers younger than 60 days with a complaint in the last 14 days",
}

README = """\
# Example data: a home-furnishing studio

A year of customer timelines of a made-up home-furnishing and custom-cabinetry studio in
Hangzhou, for trying hearth out and for end-to-end tests. Generated (deterministically,
standard library only) by

    /usr/bin/python3 tools/gen-examples.py

run from the repository root; it rewrites every file in this directory and prints the
counts quoted here. Do not edit the files by hand.

| file | what |
|---|---|
| `studio.jsonl` | {n_events} events, one JSON event per line (docs/PROTOCOL.md §2), in time order ({size_j} KiB) |
| `studio.csv` | the same events as CSV for `hearthctl import` ({size_c} KiB) |
| `expected.json` | which default rules fire for whom, and the top 16 by `priority`, at the end of the data |

## The data

- {n_customers} customers, `C1001`..`C{last_id}`, with Chinese or pinyin names; owners are the
  sales reps `zhang`, `li`, `wang`, `chen` and `zhao`. Landlords (民宿 / rental apartments)
  and partner designers buy repeatedly; homeowners mostly sign once.
- Events from {first} to {last},
  all strictly before **{end}**, the instant at which the planted
  situations below hold. Timestamps carry `+08:00`.
- Every customer begins with a `profile` event: `name`, `owner`, `tier`, `stage`, `value`,
  `city`, plus `source`, `segment`, `area` (m²) and `budget`. Tiers follow the funnel of
  the decoration company that hearth's rules come from: **A** lead, **B** met a designer,
  **C** needs known and quote given, **D** signed (cared for, to bring referrals).
  Later `profile` events move the tier (with a `note` when a customer falls back), change
  the stage (`lead`, `designer`, `quote`, `signed`/`purchased`, `installing`,
  `completed`, `lost`) and update `value`, `budget`, `quote` and `contract`.
- `value` is the expected deal value in CNY, weighted by the chance the tier gives it
  (about 15% of the budget for a lead, 40% after meeting a designer, 70% of the quote at
  tier C); once a customer signs it becomes the expected follow-on (upsell and referral)
  value, and the signed sum is kept in `contract`. Lost leads get `stage: lost, value: 0`.
  This is what `priority` weighs.
- Touches (`events.sets.touch`) carry `channel` (`phone`, `wechat`, `showroom`, `site`)
  and `minutes`, sometimes a Chinese `note`. Complaints carry a `ref` `T-nnnn`, `channel`
  and `topic`; promises a `ref` `P-nnnn`, `topic` and `due` (RFC 3339).
- Every event has a unique `id` (`ex-000001`…). The CSV holds the same ids, so importing
  both files stores every event once: the second import reports them all as duplicates.

Events per type:

| type | events |
|---|---|
{types}

Touches in all: {n_touch}.

Customers per tier at the end: {tiers}.
By stage: {stages}.
Tier history: {tier_changed} customers changed tier, {history_tier} of them two times or
more; {dropped} fell back from C to B.

## What is planted at the end

At {end}, with the default rules of `etc/hearth.yaml`
(numbers are customers):

| rule | firing | who |
|---|---|---|
{rules}

Besides: {open_c} complaints are open ({open_c_old} customers have one older than 48 hours;
{open_c_young} are younger and fire `complaint_unresolved` once they pass 48 hours), and
{open_p} promises are open, {overdue_p} of them overdue ({not_due} fall due in the days after
the end of the data). Tier C customers who are followed up about twice a month,
buyers who keep their rhythm, fresh first purchases (under 7 days) and first purchases
that already got an offer are there too, and fire nothing.

Top 16 by `priority` at the end, most urgent first:
{top}.

No customer is within 6 hours of any rule threshold at that instant (window edges, `48h`,
`30d`, twice the median gap — whichever way the median of an even number of gaps is
taken), so the outcome does not hinge on how an implementation rounds;
`expected.json` lists the customers by rule.

## Loading it

Time moves every alert, so load it with the daemon's clock at the end of the data:
start `hearthd --test-clock -c etc/hearth.yaml`, set the clock with the control command

    {{"cmd": "clock.set", "at": "{end}"}}

then run `hearthctl import examples/studio.jsonl` (or `examples/studio.csv`). With a real
clock everything is shifted by the time elapsed since the end of the data: cooling
customers have been cold for longer, upsell windows have moved on. A daemon whose clock
is more than `ingest.max_future` before {end} rejects the last
events with `ts_in_future`.

The CSV header is

    {cols}

An empty cell means the attribute is absent. Numeric attributes (`value`, `minutes`,
`amount`, `area`, `budget`, `quote`, `contract`) are written as plain numbers; no string
attribute looks like a number, `true`, `false` or `null`, and none is empty, so a CSV
import that reads number-looking cells as numbers yields exactly the events of the JSON
lines file. The data uses no `null` and no booleans, which CSV cannot tell from text.
"""


if __name__ == "__main__":
    main()
