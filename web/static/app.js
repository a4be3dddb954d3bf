/*
 * hearth-web's page (docs/WEB.md). Plain JavaScript, no build step, no
 * dependency. One shell (index.html) serves every route; this file reads the
 * path, fetches the matching /api/ view and draws it.
 *
 * Safety: data from hearthd (names, summaries, attrs: anything a producer
 * sent) is only ever inserted as text: el() makes text nodes, attributes go
 * through setAttribute, links are built with encodeURIComponent. Nothing here
 * assigns innerHTML, and the server's Content-Security-Policy (default-src
 * 'self') forbids inline script anyway.
 */
"use strict";

(function () {
  // ---------------------------------------------------------------- i18n
  const T = {
    en: {
      "nav.today": "Today", "nav.alerts": "Alerts", "nav.rules": "Rules", "nav.status": "Status",
      "loading": "Loading…", "lang.other": "中文",
      "updated": "updated {n} ago", "updated.never": "not updated yet",
      "banner": "hearthd cannot be reached ({why}). The figures below are from {n} ago; retrying.",
      "banner.never": "hearthd cannot be reached ({why}); retrying.",
      "partial": "Partitions {p} did not answer (a shard is down or slow): customers of those partitions are missing below.",
      "today.title": "Today: who to call", "funnel.watched": "customers watched",
      "funnel.tracked": "tracked (an alert firing)", "funnel.act": "to act on today",
      "tier": "tier", "owner": "owner", "rule": "rule", "all": "all", "rows": "rows",
      "csv": "Download CSV", "col.rank": "#", "col.customer": "customer", "col.owner": "owner",
      "col.tier": "tier", "col.alert": "why now", "col.touch": "last touch / rhythm", "col.score": "score",
      "more": "+{n} more", "no.alert": "no alert firing", "no.rows": "Nobody to act on with these filters.",
      "touch.days": "{d} since last touch", "touch.never": "never touched", "rhythm": "usually every {d}",
      "rhythm.none": "no rhythm yet",
      "alerts.title": "Alerts", "tab.firing": "Firing", "tab.pending": "Pending", "tab.acked": "Acked",
      "tab.silenced": "Silenced", "tab.resolved": "Recently resolved",
      "since": "since {t}", "for": "for {d}", "acked.by": "acked by {who}", "acked": "acked",
      "resolved.at": "resolved {t}", "pending.since": "holding since {t}", "holds.since": "holds since {t}",
      "silence.until": "until {t}", "silence.by": "by {who}", "silence.why": "why: {c}",
      "silence.match": "matches", "silence.everything": "every alert",
      "none.firing": "Nothing is firing.", "none.pending": "Nothing is pending.",
      "none.acked": "No firing alert is acknowledged.", "none.silenced": "No silence is in force.",
      "none.resolved": "Nothing resolved recently.",
      "ack.time.unknown": "(hearthd does not record when)",
      "customer.profile": "Profile", "customer.cases": "Open complaints and promises",
      "customer.alerts": "Alerts", "customer.activity": "Activity", "customer.timeline": "Timeline",
      "no.cases": "Nothing open.", "no.alerts": "No alert.", "no.events": "No events.",
      "case.complaint": "complaint", "case.promise": "promise", "opened": "opened {t}", "open.for": "open for {d}",
      "due": "due {t}", "due.in": "due in {d}", "overdue.by": "overdue by {d}", "no.due": "no due date",
      "first.seen": "first seen", "last.seen": "last seen", "events": "events", "score": "score",
      "explain.when": "when", "explain.value": "holds now", "explain.terms": "terms",
      "newer": "‹ newer", "older": "older ›", "page": "page {n}",
      "col.time": "time", "col.type": "type", "col.ref": "ref", "col.attrs": "details",
      "activity.partial": "(the newest {n} events)",
      "rules.title": "Rules", "col.name": "rule", "col.severity": "severity", "col.when": "when",
      "col.for": "for", "col.repeat": "repeat", "col.firing": "firing", "col.pending": "pending",
      "col.error": "last error", "bt.run": "backtest", "bt.title": "{rule} over the last 90 days, as a backtest",
      "bt.totals": "would have fired {f} times, resolved {r}, repeated {p}; at most {k} firing at once",
      "bt.note": "replayed from the stored history by the live engine's rules; silences and acks are not replayed",
      "status.title": "Status", "st.version": "hearthd version", "st.web": "hearth-web version",
      "st.uptime": "uptime", "st.now": "daemon clock", "st.customers": "customers", "st.events": "events",
      "st.firing": "alerts firing", "st.pending": "alerts pending", "st.seq": "last notification seq",
      "st.tick": "last tick", "st.tick_ms": "tick took", "st.reeval": "re-evaluating",
      "st.store": "store", "st.used": "{u} of {m} used", "st.publish": "alert stream", "st.metrics": "Prometheus metrics",
      "yes": "yes", "no": "no", "never": "never",
      "ago": "{d} ago", "in": "in {d}", "now": "now",
      "u.d": "d", "u.h": "h", "u.m": "m", "u.s": "s", "u.ms": "ms",
      "not.found": "No such customer.", "error": "Error: {m}",
      "sev.critical": "critical", "sev.warning": "warning", "sev.info": "info",
      "state.firing": "firing", "state.pending": "pending", "state.resolved": "resolved",
      "w.login": "Log in", "w.as": "logged in as {who}", "w.ack": "Ack", "w.silence": "Silence",
      "w.new": "New silence…", "w.remove": "Remove", "w.confirm": "Confirm", "w.cancel": "Cancel",
      "w.comment": "comment", "w.comment.opt": "comment (optional)", "w.for": "for",
      "w.ack.title": "Acknowledge {rule} for {customer}",
      "w.ack.note": "Stops this alert's repeat notifications until it resolves; recorded as acked by {who}. hearthd does not keep the comment, hearth-web's log does.",
      "w.sil.title": "Silence alerts",
      "w.sil.note": "While it lasts, a silence mutes the notifications of every alert it matches. It matches an alert when each field given is equal: the rule's name, the customer's id, the customer's owner. Leave a field empty to match any.",
      "w.preview.need": "Give a rule, a customer or an owner.", "w.preview.wait": "Looking for the alerts it matches…",
      "w.preview": "{n} firing alert(s) match now:", "w.preview.none": "No firing alert matches now; it will still mute any that fire while it lasts.",
      "w.preview.more": "and {n} more", "w.rm.title": "Remove silence #{id}",
      "w.rm.note": "The alerts it matches notify again as usual.",
      "w.done.ack": "Acked {rule} for {customer}.", "w.done.sil": "Silence #{id} added.", "w.done.rm": "Silence #{id} removed.",
      "w.e.login": "Log in first: the browser asks for a name and password (the users of web.users).",
      "w.e.forbidden": "hearthd refused the change: hearth-web's user is not one of hearthd's admins (control.admin_groups). Ask the operator.",
      "w.e.origin": "Refused: the request did not come from this page.",
      "w.e.limited": "Too many failed logins from this address; try again in a few minutes.",
      "w.e.gone": "Not found: {m}", "w.e.comment": "Say why in the comment.", "w.you": "you",
    },
    zh: {
      "nav.today": "今日", "nav.alerts": "预警", "nav.rules": "规则", "nav.status": "状态",
      "loading": "加载中…", "lang.other": "English",
      "updated": "{n}前更新", "updated.never": "尚未更新",
      "banner": "无法连接 hearthd（{why}）。下面的数据是{n}前的；正在重试。",
      "banner.never": "无法连接 hearthd（{why}）；正在重试。",
      "partial": "分区 {p} 没有应答（有分片停机或过慢）：下面缺少这些分区的客户。",
      "today.title": "今日：该联系谁", "funnel.watched": "关注的客户",
      "funnel.tracked": "跟踪中（有预警）", "funnel.act": "今日待办",
      "tier": "级别", "owner": "负责人", "rule": "规则", "all": "全部", "rows": "行数",
      "csv": "下载 CSV", "col.rank": "#", "col.customer": "客户", "col.owner": "负责人",
      "col.tier": "级别", "col.alert": "原因", "col.touch": "上次联系 / 节奏", "col.score": "分数",
      "more": "另有 {n} 条", "no.alert": "无预警", "no.rows": "按这些条件没有待办客户。",
      "touch.days": "{d}未联系", "touch.never": "从未联系", "rhythm": "通常每 {d}一次",
      "rhythm.none": "尚无节奏",
      "alerts.title": "预警", "tab.firing": "触发中", "tab.pending": "待定", "tab.acked": "已确认",
      "tab.silenced": "已静默", "tab.resolved": "最近解除",
      "since": "触发于{t}", "for": "持续 {d}", "acked.by": "由 {who} 确认", "acked": "已确认",
      "resolved.at": "{t} 解除", "pending.since": "自 {t} 起成立", "holds.since": "条件成立于{t}",
      "silence.until": "直到 {t}", "silence.by": "设置人 {who}", "silence.why": "原因：{c}",
      "silence.match": "匹配", "silence.everything": "所有预警",
      "none.firing": "没有触发中的预警。", "none.pending": "没有待定的预警。",
      "none.acked": "没有已确认的预警。", "none.silenced": "没有生效的静默。",
      "none.resolved": "最近没有解除的预警。",
      "ack.time.unknown": "（hearthd 未记录确认时间）",
      "customer.profile": "资料", "customer.cases": "未结投诉与承诺",
      "customer.alerts": "预警", "customer.activity": "活动", "customer.timeline": "时间线",
      "no.cases": "没有未结事项。", "no.alerts": "没有预警。", "no.events": "没有事件。",
      "case.complaint": "投诉", "case.promise": "承诺", "opened": "{t} 提出", "open.for": "已持续 {d}",
      "due": "截止 {t}", "due.in": "{d}后到期", "overdue.by": "已逾期 {d}", "no.due": "无截止日期",
      "first.seen": "首次出现", "last.seen": "最近出现", "events": "事件数", "score": "分数",
      "explain.when": "条件", "explain.value": "当前成立", "explain.terms": "各项取值",
      "newer": "‹ 较新", "older": "较早 ›", "page": "第 {n} 页",
      "col.time": "时间", "col.type": "类型", "col.ref": "编号", "col.attrs": "详情",
      "activity.partial": "（最近 {n} 个事件）",
      "rules.title": "规则", "col.name": "规则", "col.severity": "级别", "col.when": "条件",
      "col.for": "持续", "col.repeat": "重复", "col.firing": "触发中", "col.pending": "待定",
      "col.error": "最近错误", "bt.run": "回测", "bt.title": "{rule} 近 90 天回测",
      "bt.totals": "本应触发 {f} 次、解除 {r} 次、重复提醒 {p} 次；同时最多 {k} 条",
      "bt.note": "用与线上相同的规则引擎重放已存的历史；静默和确认不参与重放",
      "status.title": "状态", "st.version": "hearthd 版本", "st.web": "hearth-web 版本",
      "st.uptime": "运行时间", "st.now": "守护进程时钟", "st.customers": "客户", "st.events": "事件",
      "st.firing": "触发中的预警", "st.pending": "待定的预警", "st.seq": "最新通知序号",
      "st.tick": "上次检查", "st.tick_ms": "检查耗时", "st.reeval": "重新评估中",
      "st.store": "存储", "st.used": "已用 {u} / 共 {m}", "st.publish": "预警流", "st.metrics": "Prometheus 指标",
      "yes": "是", "no": "否", "never": "从未",
      "ago": "{d}前", "in": "{d}后", "now": "现在",
      "u.d": "天", "u.h": "小时", "u.m": "分钟", "u.s": "秒", "u.ms": "毫秒",
      "not.found": "没有这个客户。", "error": "错误：{m}",
      "sev.critical": "严重", "sev.warning": "警告", "sev.info": "提示",
      "state.firing": "触发中", "state.pending": "待定", "state.resolved": "已解除",
      "p.stage": "阶段", "p.value": "预期价值", "p.city": "城市", "p.area": "面积", "p.budget": "预算",
      "p.quote": "报价", "p.contract": "合同", "p.segment": "客户类型", "p.source": "来源", "p.note": "备注",
      "p.name": "姓名",
      "w.login": "登录", "w.as": "已登录：{who}", "w.ack": "确认", "w.silence": "静默",
      "w.new": "新建静默…", "w.remove": "解除", "w.confirm": "确定", "w.cancel": "取消",
      "w.comment": "备注", "w.comment.opt": "备注（可选）", "w.for": "时长",
      "w.ack.title": "确认预警 {rule}（客户 {customer}）",
      "w.ack.note": "确认后，这条预警在解除前不再重复提醒；记录为由 {who} 确认。hearthd 不保存备注，hearth-web 的日志会记下。",
      "w.sil.title": "静默预警",
      "w.sil.note": "静默期间，它匹配的预警都不发通知。每个填写的字段都相等才算匹配：规则名、客户编号、客户的负责人；留空表示任意。",
      "w.preview.need": "请填写规则、客户或负责人中的至少一项。", "w.preview.wait": "正在查找匹配的预警…",
      "w.preview": "当前匹配 {n} 条触发中的预警：", "w.preview.none": "当前没有匹配的触发中预警；静默期间新触发的匹配预警同样不会通知。",
      "w.preview.more": "另有 {n} 条", "w.rm.title": "解除静默 #{id}",
      "w.rm.note": "解除后，它匹配的预警照常通知。",
      "w.done.ack": "已确认 {rule}（客户 {customer}）。", "w.done.sil": "已添加静默 #{id}。", "w.done.rm": "已解除静默 #{id}。",
      "w.e.login": "请先登录：浏览器会询问用户名和密码（web.users 中的用户）。",
      "w.e.forbidden": "hearthd 拒绝了这次修改：hearth-web 的运行用户不是 hearthd 的管理员（control.admin_groups）。请联系运维。",
      "w.e.origin": "已拒绝：请求不是从本页面发出的。",
      "w.e.limited": "此地址登录失败次数过多，请几分钟后再试。",
      "w.e.gone": "未找到：{m}", "w.e.comment": "请在备注中说明原因。", "w.you": "你",
    },
  };

  function pickLang() {
    const q = new URLSearchParams(location.search).get("lang");
    if (q === "zh" || q === "en") return q;
    try {
      const saved = localStorage.getItem("hearth.lang");
      if (saved === "zh" || saved === "en") return saved;
    } catch (e) { /* storage may be off */ }
    // Chinese when the browser asks for it before English
    for (const l of navigator.languages || [navigator.language || "en"]) {
      const s = String(l).toLowerCase();
      if (s.startsWith("zh")) return "zh";
      if (s.startsWith("en")) return "en";
    }
    return "en";
  }
  let lang = pickLang();

  function t(key, vars) {
    let s = (T[lang] && T[lang][key]) || T.en[key] || key;
    if (vars) for (const k of Object.keys(vars)) s = s.split("{" + k + "}").join(String(vars[k]));
    return s;
  }

  // ---------------------------------------------------------------- DOM, as text only
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const k of Object.keys(attrs)) {
        const v = attrs[k];
        if (v === null || v === undefined || v === false) continue;
        if (k === "class") e.className = v;
        else if (k === "on") for (const ev of Object.keys(v)) e.addEventListener(ev, v[ev]);
        else e.setAttribute(k, v === true ? "" : String(v));
      }
    }
    append(e, children);
    return e;
  }
  function append(e, children) {
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) append(e, c);
      else if (c instanceof Node) e.appendChild(c);
      else e.appendChild(document.createTextNode(String(c)));
    }
  }
  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG, tag);
    for (const k of Object.keys(attrs || {})) e.setAttribute(k, String(attrs[k]));
    append(e, children);
    return e;
  }
  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }
  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- formats
  function dur(ms) {
    if (ms === null || ms === undefined) return "–";
    const neg = ms < 0; ms = Math.abs(ms);
    const units = [["u.d", 86400000], ["u.h", 3600000], ["u.m", 60000], ["u.s", 1000]];
    if (ms < 1000) return (neg ? "-" : "") + Math.round(ms) + t("u.ms");
    const parts = [];
    for (const [u, size] of units) {
      if (ms >= size && parts.length < 2) { parts.push(Math.floor(ms / size) + t(u)); ms %= size; }
      else if (parts.length) break;
    }
    return (neg ? "-" : "") + parts.join(lang === "zh" ? "" : " ");
  }
  function days(ms) {
    if (ms === null || ms === undefined) return "–";
    const d = ms / 86400000;
    return (d >= 10 ? Math.round(d) : Math.round(d * 10) / 10) + (lang === "zh" ? " 天" : " d");
  }
  function ms(text) { return text ? Date.parse(text) : null; }
  function when(text) {
    if (!text) return t("never");
    const d = new Date(text);
    return d.toLocaleString(lang === "zh" ? "zh-CN" : "en-GB",
      { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
  }
  // An alert raised late (by a history load, a new rule) fired "now" but its condition
  // may have held for weeks: hearthd says since when (active_since), and the page too.
  function firingSince(a) {
    const fired = t("since", { t: rel(a.since) });
    if (!a.active_since || a.active_since === a.since) return fired;
    return [fired, " · ", t("holds.since", { t: rel(a.active_since) })];
  }

  // relative to the daemon's clock (a test clock may stand anywhere)
  function rel(text) {
    if (!text || !state.now) return when(text);
    const d = state.now - ms(text);
    if (Math.abs(d) < 60000) return t("now");
    return d >= 0 ? t("ago", { d: dur(d) }) : t("in", { d: dur(-d) });
  }
  function timeEl(text) {
    return el("time", { datetime: text || "", title: text ? when(text) : "" }, rel(text));
  }
  function bytes(n) {
    const u = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + u[i];
  }
  function num(x, digits) {
    if (x === null || x === undefined) return "–";
    return Number(x).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB",
      { maximumFractionDigits: digits === undefined ? 2 : digits });
  }
  // a term of a rule, as a person reads it: durations for the functions that give one
  function termValue(term, v) {
    if (v === null || v === undefined) return "null";
    if (typeof v === "number" && /^(since|age|oldest|gap|min|max|abs)\(/.test(term) &&
        !/^(min|max|abs)\(\s*[0-9]/.test(term) && Math.abs(v) >= 1000) return dur(v);
    return typeof v === "string" ? v : JSON.stringify(v);
  }
  const sevRank = { critical: 3, warning: 2, info: 1 };
  function badge(sev) { return el("span", { class: "badge " + sev }, t("sev." + sev) || sev); }
  function custLink(id, name) {
    return el("a", { class: "cust", href: "/c/" + encodeURIComponent(id) },
      name ? el("span", { class: "name" }, name) : null, el("span", { class: "id" }, id));
  }
  function alertHref(rule, customer) {
    return "/alerts#" + encodeURIComponent(rule) + "/" + encodeURIComponent(customer);
  }

  // ---------------------------------------------------------------- fetching, refresh, banner
  const state = { now: null, lastOk: null, failure: null, page: null, cfg: { refresh_ms: 30000, top: 16 },
                  timer: null, missing: new Set() };

  class Unreachable extends Error {}

  // A path on this origin. Not relative to the document: a page opened as
  // https://name:password@host/ would make every relative fetch a URL with
  // credentials, which fetch() refuses.
  function here(path) { return location.origin + path; }

  async function getJSON(url) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 15000);
    let res;
    try {
      res = await fetch(here(url), { signal: ctl.signal, headers: { Accept: "application/json" },
                               credentials: "same-origin", cache: "no-store" });
    } catch (e) {
      throw new Unreachable(String(e && e.message || e));
    } finally {
      clearTimeout(timer);
    }
    let body = null;
    try { body = await res.json(); } catch (e) { /* not JSON */ }
    if (res.status === 503 || (!body && res.status >= 500))
      throw new Unreachable((body && body.error && body.error.message) || ("HTTP " + res.status));
    if (!body) throw new Error("HTTP " + res.status);
    // in front of a cluster: an answer merged without some shards names their partitions
    if (Array.isArray(body.missing_partitions))
      for (const p of body.missing_partitions) state.missing.add(p);
    return { status: res.status, body };
  }

  function showBanner() {
    const b = $("banner");
    if (!state.failure) { b.hidden = true; clear(b); return; }
    const ago = state.lastOk ? dur(Date.now() - state.lastOk) : null;
    b.textContent = ago ? t("banner", { why: state.failure, n: ago }) : t("banner.never", { why: state.failure });
    b.hidden = false;
  }
  function showPartial() {
    const b = $("partial");
    if (!state.missing.size) { b.hidden = true; clear(b); return; }
    b.textContent = t("partial", { p: [...state.missing].sort((x, y) => x - y).join(", ") });
    b.hidden = false;
  }
  function showUpdated() {
    const u = $("updated");
    u.textContent = state.lastOk ? t("updated", { n: dur(Math.max(1000, Date.now() - state.lastOk)) })
                                 : t("updated.never");
  }

  // one refresh at a time; one asked for meanwhile (a filter changed) runs right after,
  // so what is drawn last is always what the URL says now
  let running = null, again = false;
  async function refresh() {
    if (running) { again = true; return running; }
    running = refreshOnce();
    try { await running; } finally { running = null; }
    if (again) { again = false; await refresh(); }
  }

  async function refreshOnce() {
    state.missing = new Set();
    try {
      await state.page.load();
      state.failure = null;
      state.lastOk = Date.now();
      // tests and scripts wait on this: set only when no newer refresh is waiting
      if (!again) document.body.dataset.loaded = String(state.lastOk);
    } catch (e) {
      if (e instanceof Unreachable) {
        state.failure = e.message;
      } else {
        state.failure = null;
        const main = $("main");
        clear(main);
        main.appendChild(el("p", { class: "error" }, t("error", { m: e.message })));
      }
    }
    showBanner();
    showPartial();
    showUpdated();
  }

  function nowFrom(status) { if (status && status.now) state.now = ms(status.now); }


  // ---------------------------------------------------------------- Writes (web.readonly: false)
  // Ack, add and remove silences, for people logged in with HTTP Basic authentication:
  // the browser asks for the name and password on the first 401 and sends them again
  // by itself. The server sets `by` from the login, checks that the request comes from
  // this page, and hearthd checks that hearth-web may change anything at all. The
  // forms live in one <dialog> outside <main>, so a refresh never redraws them away.
  function writable() { return !!(state.cfg && state.cfg.writes); }

  async function postJSON(url, data) {
    let res;
    try {
      res = await fetch(here(url), { method: "POST", body: JSON.stringify(data), credentials: "same-origin",
                               cache: "no-store",
                               headers: { "Content-Type": "application/json", Accept: "application/json" } });
    } catch (e) {
      return { status: 0, body: { ok: false, error: { code: "unreachable", message: String(e && e.message || e) } } };
    }
    let body = null;
    try { body = await res.json(); } catch (e) { /* not JSON */ }
    return { status: res.status, body: body || { ok: false, error: { code: "http", message: "HTTP " + res.status } } };
  }

  // what went wrong, in words that say what to do
  function writeError(status, body) {
    const e = (body && body.error) || {};
    if (status === 401) return t("w.e.login");
    if (status === 429) return t("w.e.limited");
    if (status === 403 && e.code === "forbidden") return t("w.e.forbidden");
    if (status === 403) return t("w.e.origin");
    if (status === 404) return t("w.e.gone", { m: e.message || "" });
    if (status === 0 || status === 503) return t("banner.never", { why: e.message || "" });
    return t("error", { m: e.message || ("HTTP " + status) });
  }

  function note(text, bad) {
    const n = $("note");
    n.textContent = text;
    n.className = "note" + (bad ? " bad" : "");
    n.hidden = false;
    clearTimeout(note.timer);
    note.timer = setTimeout(() => { n.hidden = true; }, 8000);
  }

  function showWho() {
    const w = $("who");
    clear(w);
    w.hidden = !writable();
    if (!writable()) return;
    if (state.cfg.user) w.appendChild(el("span", { id: "who-name" }, t("w.as", { who: state.cfg.user })));
    else w.appendChild(el("button", { type: "button", class: "lang", id: "login", on: { click: login } }, t("w.login")));
  }

  async function login() {
    try {
      const { status, body } = await getJSON("/api/login");
      if (status === 200 && body.ok) { state.cfg.user = body.user; showWho(); refresh(); return; }
      note(writeError(status, body), true);
    } catch (e) {
      note(String(e.message || e), true);
    }
  }

  function loggedIn(user) {
    if (user && user !== state.cfg.user) { state.cfg.user = user; showWho(); }
  }

  function dialog(title, content, onSubmit) {
    let d = $("write");
    if (!d) {
      d = el("dialog", { id: "write", class: "write" });
      document.body.appendChild(d);
    }
    if (d.open) d.close();
    clear(d);
    const err = el("p", { class: "error", id: "w-error", hidden: true });
    const confirm = el("button", { type: "submit", class: "btn primary", id: "w-confirm" }, t("w.confirm"));
    const form = el("form", { id: "w-form" }, el("h2", null, title), content, err,
      el("div", { class: "actions" },
        el("button", { type: "button", class: "btn", id: "w-cancel", on: { click: () => d.close() } }, t("w.cancel")),
        confirm));
    const fail = (text) => { err.textContent = text; err.hidden = false; };
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      if (confirm.disabled) return;
      err.hidden = true;
      confirm.disabled = true;
      try { await onSubmit(fail, () => d.close()); } finally { confirm.disabled = d.holdConfirm ? true : false; }
    });
    d.holdConfirm = false;
    d.appendChild(form);
    d.showModal();
    d.confirm = confirm;
    return d;
  }

  // the answer of a write: close and say so, or keep the form open with the reason
  function finish(r, fail, close, done) {
    if (r.status === 200 && r.body.ok) {
      loggedIn(r.body.by);
      close();
      note(done);
      refresh();
      return;
    }
    fail(writeError(r.status, r.body));
  }

  function ackDialog(a) {
    const comment = el("input", { id: "w-comment", name: "comment", maxlength: 255, autocomplete: "off" });
    dialog(t("w.ack.title", { rule: a.rule, customer: a.customer }), [
      el("p", { class: "muted" }, t("w.ack.note", { who: state.cfg.user || t("w.you") })),
      a.summary ? el("p", { class: "summary" }, a.summary) : null,
      el("label", null, t("w.comment.opt"), comment)],
    async (fail, close) => {
      const body = { rule: a.rule, customer: a.customer };
      if (comment.value.trim()) body.comment = comment.value.trim();
      finish(await postJSON("/api/ack", body), fail, close, t("w.done.ack", { rule: a.rule, customer: a.customer }));
    });
    comment.focus();
  }

  const SILENCE_FOR = [["1h", 3600000], ["4h", 14400000], ["1d", 86400000], ["3d", 259200000],
                       ["7d", 604800000], ["14d", 1209600000], ["30d", 2592000000]];

  // A silence: what it matches, for how long, why; the firing alerts it would match are
  // shown before Confirm, and Confirm adds only what was shown.
  function silenceDialog(pre) {
    const input = (k, v, extra) => el("input", Object.assign({ id: "w-" + k, name: k, value: v || "", autocomplete: "off" }, extra || {}));
    const rule = input("rule", pre.rule, { list: "w-rules" }), customer = input("customer", pre.customer);
    const owner = input("owner", pre.owner), comment = input("comment", "", { maxlength: 255 });
    const rules = el("datalist", { id: "w-rules" }, (state.rules || []).map((r) => el("option", { value: r })));
    const forSel = el("select", { id: "w-for", name: "for" },
      SILENCE_FOR.map(([k, v]) => el("option", { value: k, selected: k === "1d" }, dur(v))));
    const preview = el("div", { id: "w-preview", class: "preview" });
    let shown = null, timer = null, seq = 0;
    const fields = () => [rule.value.trim(), customer.value.trim(), owner.value.trim()];
    const key = () => JSON.stringify(fields());
    const d = dialog(t("w.sil.title"), [
      el("p", { class: "muted" }, t("w.sil.note")),
      el("div", { class: "fields" },
        el("label", null, t("rule"), rule, rules), el("label", null, t("col.customer"), customer),
        el("label", null, t("owner"), owner), el("label", null, t("w.for"), forSel)),
      el("label", { class: "wide" }, t("w.comment"), comment),
      preview],
    async (fail, close) => {
      if (shown !== key()) { await update(); return; }
      if (!comment.value.trim()) { fail(t("w.e.comment")); return; }
      const [r, c, o] = fields(), body = { for: forSel.value, comment: comment.value.trim() };
      if (r) body.rule = r;
      if (c) body.customer = c;
      if (o) body.owner = o;
      const res = await postJSON("/api/silence", body);
      finish(res, fail, close, t("w.done.sil", { id: res.body.id }));
    });
    const hold = (on) => { d.holdConfirm = on; d.confirm.disabled = on; };
    async function update() {
      const k = key(), [r, c, o] = fields(), my = ++seq;
      shown = null;
      hold(true);
      clear(preview);
      if (!r && !c && !o) { preview.appendChild(el("p", { class: "muted" }, t("w.preview.need"))); return; }
      preview.appendChild(el("p", { class: "muted" }, t("w.preview.wait")));
      const q = new URLSearchParams();
      if (r) q.set("rule", r);
      if (c) q.set("customer", c);
      if (o) q.set("owner", o);
      let res;
      try {
        res = await getJSON("/api/silence/preview?" + q);
      } catch (e) {
        res = { status: 503, body: { ok: false, error: { message: String(e.message || e) } } };
      }
      if (my !== seq || k !== key()) return;      // the fields changed meanwhile: a newer look is coming
      clear(preview);
      const b = res.body;
      if (!b.ok) { preview.appendChild(el("p", { class: "error" }, writeError(res.status, b))); return; }
      preview.appendChild(el("p", { id: "w-count", "data-count": b.count },
        b.count ? t("w.preview", { n: b.count }) : t("w.preview.none")));
      const ul = el("ul", { class: "preview-list" });
      for (const a of b.alerts.slice(0, 50))
        ul.appendChild(el("li", { "data-rule": a.rule, "data-customer": a.customer }, badge(a.severity),
          a.rule, " · ", a.customer, " ", el("span", { class: "muted" }, a.summary || "")));
      if (b.count > 50) ul.appendChild(el("li", { class: "muted" }, t("w.preview.more", { n: b.count - 50 })));
      preview.appendChild(ul);
      shown = k;
      hold(false);
    }
    const changed = () => { shown = null; hold(true); clearTimeout(timer); timer = setTimeout(update, 250); };
    for (const i of [rule, customer, owner]) i.addEventListener("input", changed);
    update();
    if (!state.rules)
      getJSON("/api/rules").then(({ body }) => {
        if (!body.ok) return;
        state.rules = body.rules.map((x) => x.name);
        for (const n of state.rules) rules.appendChild(el("option", { value: n }));
      }).catch(() => { /* the list is a convenience */ });
  }

  function removeDialog(s, match) {
    const comment = el("input", { id: "w-comment", name: "comment", maxlength: 255, autocomplete: "off" });
    dialog(t("w.rm.title", { id: s.id }), [
      el("p", null, match), s.comment ? el("p", { class: "muted" }, t("silence.why", { c: s.comment })) : null,
      el("p", { class: "muted" }, t("w.rm.note")), el("label", null, t("w.comment.opt"), comment)],
    async (fail, close) => {
      const body = comment.value.trim() ? { comment: comment.value.trim() } : {};
      finish(await postJSON("/api/silence/" + encodeURIComponent(s.id) + "/remove", body), fail, close,
             t("w.done.rm", { id: s.id }));
    });
  }

  // Ack and Silence for one firing alert
  function writeButtons(a) {
    if (!writable() || a.state !== "firing") return null;
    return el("span", { class: "wbtns" },
      a.acked ? null : el("button", { type: "button", class: "btn small ack", "data-rule": a.rule,
                                      "data-customer": a.customer, on: { click: () => ackDialog(a) } }, t("w.ack")),
      el("button", { type: "button", class: "btn small silence", "data-rule": a.rule, "data-customer": a.customer,
                     on: { click: () => silenceDialog({ rule: a.rule, customer: a.customer }) } }, t("w.silence")));
  }

  // ---------------------------------------------------------------- Today
  function params() { return new URLSearchParams(location.search); }

  const today = {
    name: "today",
    async load() {
      const p = params();
      const q = new URLSearchParams();
      for (const k of ["owner", "tier", "rule", "n"]) if (p.get(k)) q.set(k, p.get(k));
      const { status, body } = await getJSON("/api/view/today" + (q.toString() ? "?" + q : ""));
      if (!body.ok) throw new Error(body.error ? body.error.message : "HTTP " + status);
      nowFrom(body.status);
      this.draw(body, q);
    },
    draw(v, q) {
      const main = $("main");
      const f = v.funnel;
      const tierChips = (stage) => Object.keys(f.tiers).sort().filter((k) => f.tiers[k][stage] > 0)
        .map((k) => el("span", { class: "tier-chip" }, k + " " + f.tiers[k][stage]));
      const funnel = el("section", { class: "funnel", id: "funnel" },
        el("div", { class: "card watched" }, el("div", { class: "num", id: "n-watched" }, num(f.watched, 0)),
           el("div", { class: "lbl" }, t("funnel.watched")), el("div", { class: "tiers" }, tierChips("watched"))),
        el("div", { class: "card tracked" }, el("div", { class: "num", id: "n-tracked" }, num(f.tracked, 0)),
           el("div", { class: "lbl" }, t("funnel.tracked")), el("div", { class: "tiers" }, tierChips("tracked"))),
        el("div", { class: "card act" }, el("div", { class: "num", id: "n-act" }, num(f.act, 0)),
           el("div", { class: "lbl" }, t("funnel.act")), el("div", { class: "tiers" }, tierChips("act"))));

      const filters = el("form", { class: "filters", id: "filters", on: { submit: (e) => e.preventDefault() } });
      const sel = (key, label, options) => {
        const s = el("select", { id: "f-" + key, name: key, on: { change: () => this.setFilter(key, s.value) } },
          el("option", { value: "" }, t("all")),
          options.map((o) => el("option", { value: o.value, selected: o.value === (v.filters[key] || "") },
                                o.label)));
        // a bookmarked value hearthd no longer knows still shows as chosen
        if (v.filters[key] && !options.some((o) => o.value === v.filters[key]))
          s.appendChild(el("option", { value: v.filters[key], selected: true }, v.filters[key]));
        filters.appendChild(el("label", null, label, s));
      };
      sel("owner", t("owner"), v.owners.map((o) => ({ value: o, label: o })));
      sel("tier", t("tier"), v.tiers.map((o) => ({ value: o, label: o })));
      sel("rule", t("rule"), (v.rules || []).map((r) => ({ value: r.name, label: r.name + " (" + r.firing + ")" })));
      const csv = el("a", { class: "btn", id: "csv", href: "/api/view/today.csv" + (q.toString() ? "?" + q : ""),
                            download: "" }, t("csv"));
      filters.appendChild(csv);

      const table = el("table", { class: "list", id: "today" },
        el("thead", null, el("tr", null,
          el("th", { class: "num" }, t("col.rank")), el("th", null, t("col.customer")),
          el("th", null, t("col.owner")), el("th", null, t("col.tier")), el("th", null, t("col.alert")),
          el("th", null, t("col.touch")), el("th", { class: "num" }, t("col.score")))));
      const tbody = el("tbody");
      v.rows.forEach((r, i) => tbody.appendChild(this.row(r, i)));
      table.appendChild(tbody);

      clear(main);
      main.appendChild(el("h1", null, t("today.title")));
      main.appendChild(funnel);
      main.appendChild(filters);
      main.appendChild(v.rows.length ? table : el("p", { class: "empty", id: "no-rows" }, t("no.rows")));
    },
    row(r, i) {
      const a = r.alert;
      const since = r.since_touch, gap = r.gap_touch;
      const ratio = since !== null && gap ? since / gap : null;
      const fill = el("div", { class: "fill" + (ratio === null ? "" : ratio > 3 ? " very-late" : ratio > 1.5 ? " late" : "") });
      fill.style.width = Math.min(100, ratio === null ? 0 : (ratio / 4) * 100) + "%";
      const touch = el("td", { class: "rhythm", "data-label": t("col.touch") },
        el("div", null, since === null ? t("touch.never") : t("touch.days", { d: days(since) })),
        el("div", { class: "muted" }, gap ? t("rhythm", { d: days(gap) }) : t("rhythm.none")),
        el("div", { class: "track" }, fill));
      return el("tr", { class: a ? "sev-" + a.severity : "", "data-id": r.id },
        el("td", { class: "num", "data-label": t("col.rank") }, i + 1),
        el("td", { "data-label": t("col.customer") }, custLink(r.id, r.name)),
        el("td", { "data-label": t("col.owner") }, r.owner || "–"),
        el("td", { "data-label": t("col.tier") }, r.tier || "–"),
        el("td", { class: "summary", "data-label": t("col.alert") },
          a ? [badge(a.severity), el("a", { href: alertHref(a.rule, r.id) }, a.summary || a.rule)]
            : el("span", { class: "muted" }, t("no.alert")),
          r.alerts > 1 ? el("div", { class: "more" }, t("more", { n: r.alerts - 1 })) : null),
        touch,
        el("td", { class: "num score", "data-label": t("col.score") }, num(r.score, 1)));
    },
    setFilter(key, value) {
      const p = params();
      if (value) p.set(key, value); else p.delete(key);
      // kept in the URL: a manager bookmarks a rep's view
      history.replaceState(null, "", location.pathname + (p.toString() ? "?" + p : ""));
      refresh();
    },
  };

  // ---------------------------------------------------------------- Alerts
  const alertsPage = {
    name: "alerts",
    tabs: ["firing", "pending", "acked", "silenced", "resolved"],
    async load() {
      const { status, body } = await getJSON("/api/view/alerts");
      if (!body.ok) throw new Error(body.error ? body.error.message : "HTTP " + status);
      nowFrom(body.status);
      this.data = body;
      state.rules = (body.rules || []).map((r) => r.name);
      this.draw();
    },
    tab() {
      const want = params().get("tab");
      if (this.tabs.includes(want)) return want;
      // a deep link /alerts#rule/customer opens the tab that holds the alert
      const target = this.target();
      if (target && this.data) {
        for (const s of ["firing", "pending", "resolved"])
          if (this.data[s].some((a) => a.rule === target[0] && a.customer === target[1])) return s;
      }
      return "firing";
    },
    target() {
      const h = decodeURIComponent(location.hash.replace(/^#/, ""));
      const i = h.indexOf("/");
      return i > 0 ? [h.slice(0, i), h.slice(i + 1)] : (h ? [h, null] : null);
    },
    draw() {
      const v = this.data, tab = this.tab(), main = $("main");
      const acked = v.firing.filter((a) => a.acked);
      const counts = { firing: v.firing.length, pending: v.pending.length, acked: acked.length,
                       silenced: (v.silences || []).length, resolved: v.resolved.length };
      const tabs = el("nav", { class: "tabs", id: "tabs" }, this.tabs.map((name) =>
        el("a", { href: "/alerts?tab=" + name, class: name === tab ? "on" : "", "data-tab": name },
           t("tab." + name) + " ", el("span", { class: "count" }, counts[name]))));
      const body = el("section", { id: "tab-" + tab });
      if (tab === "firing") this.firing(body, v.firing, v.rules);
      else if (tab === "pending") this.list(body, v.pending, "pending");
      else if (tab === "acked") this.list(body, acked, "acked");
      else if (tab === "silenced") this.silences(body, v.silences || []);
      else this.list(body, v.resolved, "resolved");
      clear(main);
      main.appendChild(el("h1", null, t("alerts.title"), writable()
        ? el("button", { type: "button", class: "btn small", id: "new-silence",
                         on: { click: () => silenceDialog({}) } }, t("w.new")) : null));
      main.appendChild(tabs);
      main.appendChild(body);
      this.focus();
    },
    focus() {
      const target = this.target();
      if (!target) return;
      const id = target[1] === null ? "rule-" + target[0] : target[0] + "/" + target[1];
      const e = document.getElementById(id);
      if (e) { e.classList.add("target"); if (!this.scrolled) { e.scrollIntoView({ block: "center" }); this.scrolled = true; } }
    },
    firing(body, list, rules) {
      if (!list.length) { body.appendChild(el("p", { class: "empty" }, t("none.firing"))); return; }
      const sev = {};
      for (const r of rules || []) sev[r.name] = r.severity;
      const groups = {};
      for (const a of list) (groups[a.rule] = groups[a.rule] || []).push(a);
      const names = Object.keys(groups).sort((x, y) =>
        (sevRank[sev[y] || groups[y][0].severity] || 0) - (sevRank[sev[x] || groups[x][0].severity] || 0) ||
        groups[y].length - groups[x].length || (x < y ? -1 : 1));
      for (const name of names) {
        const g = groups[name].sort((x, y) => (x.since < y.since ? -1 : 1));
        body.appendChild(el("section", { class: "group", id: "rule-" + name },
          el("h2", null, badge(g[0].severity), name, el("span", { class: "count" }, "· " + g.length)),
          this.table(g, "firing")));
      }
    },
    list(body, list, kind) {
      if (!list.length) { body.appendChild(el("p", { class: "empty" }, t("none." + kind))); return; }
      body.appendChild(this.table(list, kind));
    },
    table(list, kind) {
      const tbody = el("tbody");
      const writes = writable() && (kind === "firing" || kind === "acked");
      for (const a of list) {
        let info;
        if (kind === "resolved") info = t("resolved.at", { t: rel(a.resolved_at) });
        else if (kind === "pending") info = t("pending.since", { t: rel(a.since) });
        else if (kind === "acked") info = [t("acked.by", { who: a.acked_by || "?" }), " · ",
          a.acked_at ? rel(a.acked_at) : t("ack.time.unknown"), " · ", t("since", { t: rel(a.since) })];
        else info = [firingSince(a), a.acked ? [" · ", el("span", { class: "badge acked" },
          a.acked_by ? t("acked.by", { who: a.acked_by }) : t("acked"))] : null];
        tbody.appendChild(el("tr", { id: a.rule + "/" + a.customer, class: "sev-" + a.severity },
          el("td", { "data-label": t("col.customer") }, custLink(a.customer, null)),
          kind === "firing" ? null : el("td", { "data-label": t("rule") }, badge(a.severity), a.rule),
          el("td", { class: "summary", "data-label": t("col.alert") }, a.summary || "–"),
          el("td", { "data-label": "" }, info),
          writes ? el("td", { class: "write" }, writeButtons(a)) : null));
      }
      return el("table", { class: "list" }, el("thead", null, el("tr", null, el("th", null, t("col.customer")),
        kind === "firing" ? null : el("th", null, t("rule")), el("th", null, t("col.alert")), el("th", null, ""),
        writes ? el("th", null, "") : null)), tbody);
    },
    silences(body, list) {
      if (!list.length) { body.appendChild(el("p", { class: "empty" }, t("none.silenced"))); return; }
      const tbody = el("tbody");
      for (const s of list) {
        const match = ["rule", "customer", "owner"].filter((k) => s[k]).map((k) => k + "=" + s[k]).join(", ");
        tbody.appendChild(el("tr", { id: "silence-" + s.id, "data-id": s.id },
          el("td", { "data-label": t("silence.match") }, match || t("silence.everything")),
          el("td", { "data-label": "" }, t("silence.until", { t: when(s.until) })),
          el("td", { "data-label": "" }, s.by ? t("silence.by", { who: s.by }) : "–"),
          el("td", { "data-label": "" }, s.comment ? t("silence.why", { c: s.comment }) : "–"),
          writable() ? el("td", { class: "write" }, el("button", { type: "button", class: "btn small unsilence",
            "data-id": s.id, on: { click: () => removeDialog(s, match || t("silence.everything")) } }, t("w.remove")))
            : null));
      }
      body.appendChild(el("table", { class: "list" }, el("thead", null, el("tr", null,
        el("th", null, t("silence.match")), el("th", null, ""), el("th", null, ""), el("th", null, ""),
        writable() ? el("th", null, "") : null)), tbody));
    },
  };

  // ---------------------------------------------------------------- Customer
  const TYPE_COLOURS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948",
                        "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac", "#86bcb6", "#d37295"];

  const customerPage = {
    name: "customer",
    id() { return decodeURIComponent(location.pathname.slice(3)); },
    async load() {
      const { status, body } = await getJSON("/api/view/customer/" + encodeURIComponent(this.id()));
      if (status === 404) {
        const main = $("main");
        clear(main);
        main.appendChild(el("p", { class: "error", id: "not-found" }, t("not.found"), " ", this.id()));
        return;
      }
      if (!body.ok) throw new Error(body.error ? body.error.message : "HTTP " + status);
      nowFrom(body.status);
      // a refresh keeps the timeline page being read
      if (!this.pages || this.pages.id !== this.id()) this.pages = { id: this.id(), stack: [], events: body.events, cursor: body.cursor };
      else if (!this.pages.stack.length) { this.pages.events = body.events; this.pages.cursor = body.cursor; }
      this.draw(body);
    },
    draw(v) {
      const c = v.customer, p = c.profile || {}, main = $("main");
      clear(main);
      document.title = (p.name ? p.name + " · " : "") + c.id + " · hearth";
      main.appendChild(el("h1", { id: "customer-name" }, p.name || c.id, " ", el("span", { class: "muted mono" }, c.id)));

      const prof = el("div", { class: "card profile", id: "profile" });
      const kv = (k, val, label) => prof.appendChild(el("div", { "data-key": k },
        el("div", { class: "k" }, label || k), el("div", null, val)));
      kv("score", num(c.score, 1), t("score"));
      // profile keys are the producer's; the common ones have a label in Chinese
      const label = (k) => (T[lang]["p." + k] || (k === "owner" || k === "tier" ? t(k) : k));
      for (const k of ["owner", "tier", "stage", "value"]) if (p[k] !== undefined) kv(k, typeof p[k] === "number" ? num(p[k]) : String(p[k]), label(k));
      for (const k of Object.keys(p).sort()) if (!["name", "owner", "tier", "stage", "value"].includes(k))
        kv(k, typeof p[k] === "number" ? num(p[k]) : String(p[k]), label(k));
      kv("first_seen", timeEl(c.first_seen), t("first.seen"));
      kv("last_seen", timeEl(c.last_seen), t("last.seen"));
      kv("events", num(c.events, 0), t("events"));
      main.appendChild(el("h2", null, t("customer.profile")));
      main.appendChild(prof);

      main.appendChild(el("h2", null, t("customer.cases")));
      main.appendChild(this.cases(c.open || {}));

      main.appendChild(el("h2", null, t("customer.alerts")));
      main.appendChild(this.alerts(c.alerts || [], v.explain || {}));

      main.appendChild(el("h2", null, t("customer.activity"), " ",
        v.activity_complete ? null : el("span", { class: "muted" }, t("activity.partial", { n: 10000 }))));
      main.appendChild(this.chart(v.activity || {}));

      main.appendChild(el("h2", null, t("customer.timeline")));
      this.timelineBox = el("div", { id: "timeline-box" });
      main.appendChild(this.timelineBox);
      this.timeline();
    },
    cases(open) {
      const box = el("div", { class: "cases", id: "cases" });
      const now = state.now || Date.now();
      for (const name of Object.keys(open).sort()) {
        for (const k of open[name]) {
          let colour = "", line;
          if (k.due) {
            const left = ms(k.due) - now;
            colour = left < 0 ? "red" : left < 86400000 ? "yellow" : "green";
            line = left < 0 ? t("overdue.by", { d: dur(-left) }) : t("due.in", { d: dur(left) });
          } else {
            // no due date: an open case ages, red past the two days a complaint may wait
            const age = now - ms(k.opened);
            colour = age > 2 * 86400000 ? "red" : age > 86400000 ? "yellow" : "green";
            line = t("open.for", { d: dur(age) });
          }
          box.appendChild(el("div", { class: "card case " + colour, "data-case": name, "data-ref": k.ref || "" },
            el("div", null, el("strong", null, t("case." + name) === "case." + name ? name : t("case." + name)), " ",
               el("span", { class: "mono" }, k.ref || "")),
            el("div", null, line),
            el("div", { class: "muted" }, t("opened", { t: when(k.opened) }),
               k.due ? [" · ", t("due", { t: when(k.due) })] : [" · ", t("no.due")])));
        }
      }
      if (!box.childNodes.length) box.appendChild(el("p", { class: "empty" }, t("no.cases")));
      return box;
    },
    alerts(list, explain) {
      const box = el("div", { id: "alerts" });
      const order = { firing: 0, pending: 1, resolved: 2 };
      list = list.slice().sort((a, b) => (order[a.state] - order[b.state]) || ((sevRank[b.severity] || 0) - (sevRank[a.severity] || 0)));
      for (const a of list) {
        const x = explain[a.rule];
        const terms = el("table", { class: "terms" });
        if (x && x.ok && x.terms)
          for (const k of Object.keys(x.terms))
            terms.appendChild(el("tr", { "data-term": k }, el("td", { class: "mono" }, k),
              el("td", { title: JSON.stringify(x.terms[k]) }, termValue(k, x.terms[k]))));
        box.appendChild(el("div", { class: "card alert-card", id: "alert-" + a.rule, "data-rule": a.rule },
          el("div", null, badge(a.severity), el("span", { class: "badge " + a.state }, t("state." + a.state)), " ",
             el("a", { href: alertHref(a.rule, a.customer) }, el("strong", null, a.rule)), " · ",
             a.state === "resolved" ? t("resolved.at", { t: rel(a.resolved_at) }) : firingSince(a),
             a.acked ? [" · ", t("acked.by", { who: a.acked_by || "?" })] : null, " ", writeButtons(a)),
          el("div", { class: "summary" }, a.summary || ""),
          x && x.ok ? [el("code", { class: "when" }, t("explain.when") + ": " + x.when),
                       el("div", { class: "muted" }, t("explain.value") + ": " + JSON.stringify(x.value)),
                       terms] : null));
      }
      if (!list.length) box.appendChild(el("p", { class: "empty" }, t("no.alerts")));
      return box;
    },
    chart(activity) {
      const types = Object.keys(activity).sort();
      const all = [].concat(...types.map((k) => activity[k]));
      const box = el("div", { class: "card chart", id: "activity" });
      if (!all.length) { box.appendChild(el("p", { class: "empty" }, t("no.events"))); return box; }
      const lo = Math.min(...all), hi = Math.max(...all, state.now || 0);
      // months for a long history, weeks for a short one
      const weekly = hi - lo < 120 * 86400000;
      const bucketOf = (x) => {
        const d = new Date(x);
        if (!weekly) return d.getFullYear() * 12 + d.getMonth();
        return Math.floor((x - 4 * 86400000) / (7 * 86400000));   // weeks from a Monday
      };
      const b0 = bucketOf(lo), b1 = bucketOf(hi), n = b1 - b0 + 1;
      const counts = types.map(() => new Array(n).fill(0));
      types.forEach((k, i) => activity[k].forEach((x) => counts[i][bucketOf(x) - b0]++));
      const totals = new Array(n).fill(0).map((_, j) => counts.reduce((s, c) => s + c[j], 0));
      const max = Math.max(1, ...totals);
      const W = 720, H = 180, pad = 22, bw = (W - pad) / n;
      const g = svg("svg", { viewBox: "0 0 " + W + " " + (H + 18), role: "img", "aria-label": t("customer.activity") });
      g.appendChild(svg("text", { x: 0, y: 10, class: "axis" }, String(max)));
      for (let j = 0; j < n; j++) {
        let y = H;
        types.forEach((k, i) => {
          if (!counts[i][j]) return;
          const h = (counts[i][j] / max) * (H - 14);
          y -= h;
          g.appendChild(svg("rect", { x: pad + j * bw + 1, y: y, width: Math.max(1, bw - 2), height: h,
                                      fill: TYPE_COLOURS[i % TYPE_COLOURS.length] },
                            svg("title", {}, k + ": " + counts[i][j])));
        });
        // month numbers, or the date of every fourth week
        let label = null;
        if (!weekly) label = (b0 + j) % 12 + 1;
        else if (j % 4 === 0) { const d = new Date((b0 + j) * 7 * 86400000 + 4 * 86400000); label = (d.getMonth() + 1) + "/" + d.getDate(); }
        if (label !== null && (weekly || n < 18 || j % 2 === 0))
          g.appendChild(svg("text", { x: pad + j * bw + bw / 2 - 4, y: H + 14, class: "axis" }, String(label)));
      }
      box.appendChild(g);
      box.appendChild(el("div", { class: "legend" }, types.map((k, i) => {
        const s = el("span", { "data-type": k }, k + " " + activity[k].length);
        s.style.setProperty("--sw", TYPE_COLOURS[i % TYPE_COLOURS.length]);
        return s;
      })));
      return box;
    },
    timeline() {
      const pg = this.pages, box = this.timelineBox;
      clear(box);
      const tbody = el("tbody");
      for (const e of pg.events || []) {
        const attrs = e.attrs ? Object.keys(e.attrs).map((k) => k + ": " + (typeof e.attrs[k] === "string" ? e.attrs[k] : JSON.stringify(e.attrs[k]))).join(" · ") : "";
        tbody.appendChild(el("tr", { "data-seq": e.seq },
          el("td", { "data-label": t("col.time") }, el("time", { datetime: e.ts }, when(e.ts))),
          el("td", { "data-label": t("col.type") }, e.type),
          el("td", { class: "mono", "data-label": t("col.ref") }, e.ref || ""),
          el("td", { class: "attrs", "data-label": t("col.attrs") }, attrs)));
      }
      const pager = el("div", { class: "pager" },
        el("button", { class: "btn", id: "newer", type: "button", disabled: !pg.stack.length,
                       on: { click: () => this.page(-1) } }, t("newer")),
        el("span", { class: "muted", id: "page-no" }, t("page", { n: pg.stack.length + 1 })),
        el("button", { class: "btn", id: "older", type: "button", disabled: !pg.cursor,
                       on: { click: () => this.page(1) } }, t("older")));
      box.appendChild(pg.events && pg.events.length
        ? el("table", { class: "list", id: "timeline" }, el("thead", null, el("tr", null,
            el("th", null, t("col.time")), el("th", null, t("col.type")), el("th", null, t("col.ref")),
            el("th", null, t("col.attrs")))), tbody)
        : el("p", { class: "empty" }, t("no.events")));
      box.appendChild(pager);
    },
    async page(dir) {
      const pg = this.pages;
      if (dir < 0) {
        const prev = pg.stack.pop();
        if (prev) Object.assign(pg, prev);
        this.timeline();
        return;
      }
      try {
        const q = new URLSearchParams({ desc: "true", limit: "50", cursor: pg.cursor });
        const { body } = await getJSON("/api/timeline/" + encodeURIComponent(pg.id) + "?" + q);
        if (!body.ok) throw new Error(body.error ? body.error.message : "timeline");
        pg.stack.push({ events: pg.events, cursor: pg.cursor });
        pg.events = body.events;
        pg.cursor = body.cursor || null;
        this.timeline();
      } catch (e) {
        state.failure = e.message;
        showBanner();
      }
    },
  };

  // ---------------------------------------------------------------- Rules, Status
  const rulesPage = {
    name: "rules",
    async load() {
      const [st, r] = await Promise.all([getJSON("/api/status"), getJSON("/api/rules")]);
      if (!r.body.ok) throw new Error(r.body.error ? r.body.error.message : "rules");
      nowFrom(st.body);
      const tbody = el("tbody");
      for (const x of r.body.rules) {
        tbody.appendChild(el("tr", { class: x.firing ? "sev-" + x.severity : "", "data-rule": x.name },
          el("td", { "data-label": t("col.name") }, el("a", { href: "/alerts#" + encodeURIComponent(x.name) }, x.name)),
          el("td", { "data-label": t("col.severity") }, badge(x.severity)),
          el("td", { "data-label": t("col.when") }, el("code", null, x.when)),
          el("td", { "data-label": t("col.for") }, x.for ? dur(x.for) : "0"),
          el("td", { "data-label": t("col.repeat") }, x.repeat ? dur(x.repeat) : "–"),
          el("td", { class: "num", "data-label": t("col.firing") },
             el("a", { href: "/?rule=" + encodeURIComponent(x.name) }, String(x.firing))),
          el("td", { class: "num", "data-label": t("col.pending") }, x.pending),
          el("td", { class: x.last_error ? "error" : "muted", "data-label": t("col.error") }, x.last_error || "–"),
          el("td", null, el("button", { type: "button", class: "bt", "data-rule": x.name,
                                         on: { click: () => backtestChart(x.name) } }, t("bt.run")))));
      }
      const main = $("main");
      clear(main);
      main.appendChild(el("h1", null, t("rules.title")));
      main.appendChild(el("table", { class: "list", id: "rules" }, el("thead", null, el("tr", null,
        ["col.name", "col.severity", "col.when", "col.for", "col.repeat", "col.firing", "col.pending", "col.error"]
          .map((k) => el("th", { class: k === "col.firing" || k === "col.pending" ? "num" : "" }, t(k))), el("th"))), tbody));
      main.appendChild(el("div", { id: "backtest" }));
    },
  };

  // What a rule would have done per day over the last 90 days (hearthd's backtest), as bars.
  async function backtestChart(rule) {
    const box = $("backtest");
    const { body: b } = await getJSON("/api/backtest/" + encodeURIComponent(rule));
    clear(box);
    if (!b.ok) { box.appendChild(el("p", { class: "error" }, b.error ? b.error.message : "backtest")); return; }
    const days = b.per_day || [], max = Math.max(1, ...days.map((d) => d.fired));
    const W = 720, H = 140, pad = 22, bw = (W - pad) / Math.max(1, days.length);
    const g = svg("svg", { viewBox: "0 0 " + W + " " + (H + 18), role: "img", "aria-label": t("bt.title", { rule }) });
    g.appendChild(svg("text", { x: 0, y: 10, class: "axis" }, String(max)));
    days.forEach((d, j) => {
      if (d.fired) {
        const h = (d.fired / max) * (H - 14);
        g.appendChild(svg("rect", { x: pad + j * bw, y: H - h, width: Math.max(1, bw - 1), height: h, fill: TYPE_COLOURS[0] },
                          svg("title", {}, d.day + ": " + d.fired)));
      }
      if (d.day.endsWith("-01"))
        g.appendChild(svg("text", { x: pad + j * bw, y: H + 14, class: "axis" }, d.day.slice(0, 7)));
    });
    box.appendChild(el("section", { class: "card", "data-rule": rule },
      el("h2", null, t("bt.title", { rule })),
      el("p", null, t("bt.totals", { f: b.fired, r: b.resolved, p: b.repeats, k: b.peak_firing })), g,
      el("p", { class: "muted" }, t("bt.note"))));
  }

  const statusPage = {
    name: "status",
    async load() {
      const { body: s } = await getJSON("/api/status");
      if (!s.ok) throw new Error(s.error ? s.error.message : "status");
      nowFrom(s);
      const store = s.store || {};
      const usage = el("div", { class: "usage" }, el("div"));
      usage.firstChild.style.width = Math.min(100, store.map_size ? (100 * store.used) / store.map_size : 0) + "%";
      const rows = [
        ["st.version", s.version], ["st.web", state.cfg.version || "–"], ["st.uptime", dur(s.uptime_ms)],
        ["st.now", when(s.now)], ["st.customers", num(s.customers, 0)], ["st.events", num(s.events, 0)],
        ["st.firing", num(s.firing, 0)], ["st.pending", num(s.pending, 0)], ["st.seq", s.seq],
        ["st.tick", s.last_tick ? [when(s.last_tick), " (", rel(s.last_tick), ")"] : t("never")],
        ["st.tick_ms", s.tick_ms + " " + t("u.ms")], ["st.reeval", s.reevaluating ? t("yes") : t("no")],
        ["st.store", [el("span", { class: "mono" }, store.path || ""), " · ",
                      t("st.used", { u: bytes(store.used || 0), m: bytes(store.map_size || 0) }), usage]],
        ["st.publish", (s.publish || []).join(", ")],
        ["st.metrics", el("a", { href: "/metrics", id: "metrics-link" }, "/metrics")],
      ];
      const dl = el("dl", { class: "kv card", id: "status" });
      for (const [k, v] of rows) { dl.appendChild(el("dt", null, t(k))); dl.appendChild(el("dd", { "data-key": k }, v)); }
      const main = $("main");
      clear(main);
      main.appendChild(el("h1", null, t("status.title")));
      main.appendChild(dl);
    },
  };

  // ---------------------------------------------------------------- start
  function route() {
    const path = location.pathname;
    if (path === "/") return today;
    if (path === "/alerts") return alertsPage;
    if (path === "/rules") return rulesPage;
    if (path === "/status") return statusPage;
    if (path.startsWith("/c/")) return customerPage;
    return today;
  }

  function translateStatic() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    for (const e of document.querySelectorAll("[data-t]")) e.textContent = t(e.getAttribute("data-t"));
    $("lang").textContent = t("lang.other");
  }

  async function start() {
    state.page = route();
    translateStatic();
    for (const a of document.querySelectorAll("#nav a"))
      a.classList.toggle("on", a.getAttribute("data-page") === state.page.name);
    $("lang").addEventListener("click", () => {
      lang = lang === "zh" ? "en" : "zh";
      try { localStorage.setItem("hearth.lang", lang); } catch (e) { /* storage may be off */ }
      translateStatic();
      showWho();
      refresh();
    });
    window.addEventListener("hashchange", () => { alertsPage.scrolled = false; if (state.page === alertsPage && alertsPage.data) alertsPage.draw(); });
    try {
      const { body } = await getJSON("/api/");
      if (body && body.ok) state.cfg = body;
    } catch (e) { /* the first refresh reports it */ }
    showWho();
    await refresh();
    // 30 to 60 s (web.refresh); "updated N s ago" ticks every second
    setInterval(refresh, Math.max(1000, state.cfg.refresh_ms || 30000));
    setInterval(() => { showUpdated(); if (state.failure) showBanner(); }, 1000);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
