/*
 * app.js: the whole hearth web UI (plain JS, no framework, no network beyond
 * the server that serves it).
 *
 * Owns: the view state (service, profile type, selector, range, view, zoom,
 * search, sandwich function, diff sides, span) and its mirror in the URL; the
 * calls to the server's public Connect query API; the timeline, the canvas
 * flame graph, the function table, the sandwich and diff views, and exports.
 *
 * Invariants:
 * - `state` is the only source of truth; the URL is rewritten from it after
 *   every change (writeURL) and read into it on load (readURL), so a pasted
 *   link restores the same view.
 * - A tree (from the server's levels encoding or built here for the sandwich)
 *   is an array of nodes {name, depth, x, total, self, parent, children}; x is
 *   the node's start in ticks, children lie inside [x, x + total) of their
 *   parent. Diff trees also carry l/r totals and selves; their width is l + r.
 * - Every query carries a sequence number; a reply to an older query is
 *   dropped, so a slow answer never overwrites a newer view.
 *
 * Algorithm of the flame graph: the server sends levels[d] as
 * [x_delta, total, self, name] per node (delta from the end of the previous
 * node of that depth). Decoding walks each level once, finding parents with a
 * pointer into the previous level (both are sorted by x). Drawing maps the
 * zoomed range [zx, zx + zt) to the canvas width and skips nodes narrower than
 * a third of a pixel, so 10,000 nodes draw in a few milliseconds; hit testing
 * is a binary search in the drawn rectangles of one row. Colours hash the
 * frame's package (Go import path, C++/Rust namespace, Java class, file or
 * binary) to a hue, so a package keeps its colour between renders.
 *
 * Test hook: window.__hearth = {renderSeq, lastRender: {root, total, frames:
 * [{name, x, y, w, depth}]}, lastCallers, state, errors}.
 */
(function () {
  'use strict';

  const ROW = 18;            // flame graph row height in CSS pixels
  const MAX_NODES = 16384;   // max nodes asked of the server per flame graph
  const MAX_TABLE_ROWS = 2000;

  const $ = (id) => document.getElementById(id);
  const hook = (window.__hearth = { renderSeq: 0, lastRender: null, lastCallers: null, errors: [], state: null });

  /* ---------------------------------------------------------------- state */

  const state = {
    service: '', type: '', query: '{}', from: 'now-1h', until: 'now',
    view: 'both', zoom: '', search: '', fn: '', span: '',
    lquery: '', rquery: '', lfrom: '', luntil: '', rfrom: '', runtil: '',
    sort: 'self', desc: true, filter: '',
  };
  hook.state = state;
  const URL_KEYS = ['service', 'type', 'query', 'from', 'until', 'view', 'zoom', 'search', 'fn', 'span',
    'lquery', 'rquery', 'lfrom', 'luntil', 'rfrom', 'runtil', 'sort', 'filter'];

  const DEFAULTS = Object.assign({}, state);
  function readURL() {
    Object.assign(state, DEFAULTS);
    const q = new URLSearchParams(location.search);
    for (const k of URL_KEYS) if (q.has(k)) state[k] = q.get(k);
    if (q.has('desc')) state.desc = q.get('desc') !== '0';
    if (!['both', 'flame', 'table', 'sandwich', 'diff'].includes(state.view)) state.view = 'both';
  }
  // push: a new history entry (zoom, view, range), so Back returns to the previous view.
  function writeURL(push) {
    const q = new URLSearchParams();
    for (const k of URL_KEYS) if (state[k] !== '' && state[k] != null) q.set(k, state[k]);
    if (!state.desc) q.set('desc', '0');
    const url = location.pathname + '?' + q.toString();
    if (url === location.pathname + location.search) return;
    if (push) history.pushState(null, '', url); else history.replaceState(null, '', url);
  }

  /* ------------------------------------------------------------- time */

  const UNIT_MS = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 604800e3 };
  // "now", "now-15m", unix time in s/ms/µs/ns (by magnitude), or a date string.
  function parseTime(s, now) {
    s = String(s || '').trim();
    if (s === '' || s === 'now') return now;
    let m = /^now\s*-\s*(\d+(?:\.\d+)?)\s*([smhdw])$/.exec(s);
    if (m) return now - parseFloat(m[1]) * UNIT_MS[m[2]];
    if (/^\d+$/.test(s)) {
      const v = Number(s);
      if (v < 1e11) return v * 1e3;
      if (v < 1e14) return v;
      if (v < 1e17) return Math.floor(v / 1e3);
      return Math.floor(v / 1e6);
    }
    const t = Date.parse(s);
    if (!isNaN(t)) return t;
    throw new Error('cannot read the time "' + s + '": use now, now-1h, a unix time or 2026-01-02T15:04');
  }
  function range(fromS, untilS) {
    const now = Date.now();
    const start = Math.floor(parseTime(fromS, now)), end = Math.ceil(parseTime(untilS, now));
    if (!(end > start)) throw new Error('the time range is empty: "' + fromS + '" is not before "' + untilS + '"');
    return { start, end };
  }
  // A time for an input field: unix milliseconds (kept so in the URL) shown as
  // a local date that parseTime reads back; relative times as they are.
  function showTime(s) {
    return /^\d{13}$/.test(String(s)) ? fmtDate(Number(s)).replace(' ', 'T') : s;
  }
  function fmtDate(ms) {
    const d = new Date(ms), p = (n) => String(n).padStart(2, '0');
    return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' + p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds());
  }

  /* ------------------------------------------------------------- units */

  function typeInfo(id) {
    const parts = String(id || '').split(':');
    return { name: parts[0] || '', sampleType: parts[1] || '', unit: parts[2] || '', periodType: parts[3] || '', periodUnit: parts[4] || '' };
  }
  function typeLabel(id) {
    const t = typeInfo(id);
    const known = {
      'process_cpu:cpu': 'CPU time', 'process_cpu:samples': 'CPU samples',
      'memory:alloc_space': 'Memory allocated (bytes)', 'memory:alloc_objects': 'Memory allocated (objects)',
      'memory:inuse_space': 'Memory in use (bytes)', 'memory:inuse_objects': 'Memory in use (objects)',
      'wall:wall': 'Wall time', 'goroutine:goroutine': 'Goroutines', 'goroutines:goroutine': 'Goroutines',
      'mutex:contentions': 'Mutex contentions', 'mutex:delay': 'Mutex delay',
      'block:contentions': 'Block contentions', 'block:delay': 'Block delay',
    };
    const k = known[t.name + ':' + t.sampleType];
    return (k ? k + ' — ' : '') + t.name + ':' + t.sampleType + ' (' + t.unit + ')';
  }
  function num(v, digits) {
    const a = Math.abs(v);
    return a >= 100 || Number.isInteger(v) ? String(Math.round(v)) : v.toFixed(digits == null ? 2 : digits);
  }
  // short: counts without their word (the table header names it).
  function fmtValue(v, unit, sampleType, short) {
    if (!isFinite(v)) return String(v);
    const a = Math.abs(v);
    switch (unit) {
      case 'nanoseconds': case 'microseconds': case 'milliseconds': case 'seconds': {
        const ns = v * ({ nanoseconds: 1, microseconds: 1e3, milliseconds: 1e6, seconds: 1e9 }[unit]);
        const an = Math.abs(ns);
        if (an >= 3600e9) return num(ns / 3600e9) + ' h';
        if (an >= 60e9) return num(ns / 60e9) + ' min';
        if (an >= 1e9) return num(ns / 1e9) + ' s';
        if (an >= 1e6) return num(ns / 1e6) + ' ms';
        if (an >= 1e3) return num(ns / 1e3) + ' µs';
        return num(ns) + ' ns';
      }
      case 'bytes': {
        const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
        let i = 0, x = a;
        while (x >= 1024 && i < u.length - 1) { x /= 1024; i++; }
        return (v < 0 ? '-' : '') + num(x) + ' ' + u[i];
      }
      default: {
        const word = short ? '' : countWord(unit, sampleType, v);
        if (a >= 1e9) return num(v / 1e9) + ' G' + word;
        if (a >= 1e6) return num(v / 1e6) + ' M' + word;
        if (a >= 1e4) return num(v / 1e3) + ' k' + word;
        return num(v) + word;
      }
    }
  }
  function countWord(unit, sampleType, v) {
    const w = /object/.test(sampleType) ? 'objects' : /goroutine/.test(sampleType) ? 'goroutines' : unit === 'count' || !unit ? 'samples' : unit;
    return ' ' + (v === 1 ? w.replace(/s$/, '') : w);
  }
  const isCount = () => !/^(nanoseconds|microseconds|milliseconds|seconds|bytes)$/.test(typeInfo(state.type).unit);
  const fvShort = (v) => fmtValue(v, curUnit(), typeInfo(state.type).sampleType, true);
  const curUnit = () => typeInfo(state.type).unit;
  const fv = (v) => fmtValue(v, curUnit(), typeInfo(state.type).sampleType);
  const pct = (v, t) => (t > 0 ? (100 * v / t).toFixed(v / t < 0.001 && v ? 3 : 2) : '0.00') + '%';

  /* ------------------------------------------------------------- API */

  class QueryError extends Error {
    constructor(msg, code) { super(msg); this.code = code || ''; }
  }
  // One Connect unary JSON call. Errors carry the server's message.
  async function call(method, body) {
    let res;
    try {
      res = await fetch('querier.v1.QuerierService/' + method, {
        method: 'POST', headers: { 'Content-Type': 'application/json', 'Connect-Protocol-Version': '1' },
        body: JSON.stringify(body || {}),
      });
    } catch (e) {
      throw new QueryError('Cannot reach the hearth server at ' + location.origin + ' (' + e.message + '). Is `hearth server` running?', 'unreachable');
    }
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : {}; } catch (e) { /* not JSON */ }
    if (!res.ok) {
      const msg = data && data.message ? data.message : (text || res.statusText).slice(0, 500);
      throw new QueryError(method + ' failed (' + (data && data.code ? data.code : 'HTTP ' + res.status) + '): ' + msg, (data && data.code) || String(res.status));
    }
    if (data === null) throw new QueryError(method + ' returned a reply that is not JSON: ' + text.slice(0, 200), 'bad_reply');
    return data;
  }

  function fullSelector(extra) {
    // Merges service_name into the user's selector text.
    let s = String(extra || '').trim();
    if (s === '') s = '{}';
    if (!/^\{[\s\S]*\}$/.test(s)) throw new Error('the label selector must look like {name="value", ...}; got ' + s);
    const inner = s.slice(1, -1).trim();
    if (!state.service || /(^|[,{\s])service_name\s*(=|!=|=~|!~)/.test(inner)) return s;
    return '{service_name="' + state.service.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"' + (inner ? ', ' + inner : '') + '}';
  }

  /* ------------------------------------------------------------- trees */

  const NO_CHILDREN = Object.freeze([]); // shared by every leaf of a decoded tree
  // Builds a tree from the server's FlameGraph(Diff) levels encoding.
  function treeFromFlamegraph(fg, diff) {
    const names = fg.names || [];
    const levels = fg.levels || [];
    const nodes = [];
    let prev = [];
    const stride = diff ? 7 : 4;
    for (let d = 0; d < levels.length; d++) {
      const v = levels[d].values || [];
      if (v.length % stride) throw new Error('the flame graph level ' + d + ' has ' + v.length + ' values, not a multiple of ' + stride);
      const cur = [];
      let endL = 0, endR = 0, p = 0;
      for (let i = 0; i < v.length; i += stride) {
        let n;
        // int64s arrive as JSON strings; unary + converts without an extra array.
        if (!diff) {
          const x = endL + +v[i], total = +v[i + 1];
          n = { id: nodes.length, name: names[+v[i + 3]], depth: d, x, total, self: +v[i + 2], parent: -1, children: NO_CHILDREN };
          endL = x + total;
        } else {
          const xl = endL + +v[i], xr = endR + +v[i + 3], l = +v[i + 1], r = +v[i + 4], sl = +v[i + 2], sr = +v[i + 5];
          n = { id: nodes.length, name: names[+v[i + 6]], depth: d, x: xl + xr, total: l + r, self: sl + sr, parent: -1, children: NO_CHILDREN, l, sl, r, sr };
          endL = xl + l; endR = xr + r;
        }
        if (n.name === undefined) n.name = '?';
        if (d > 0 && prev.length) {
          while (p < prev.length - 1 && n.x >= prev[p].x + prev[p].total) p++;
          const parent = prev[p];
          n.parent = parent.id;
          if (parent.children === NO_CHILDREN) parent.children = [];
          parent.children.push(n.id);
        }
        nodes.push(n); cur.push(n);
      }
      prev = cur;
    }
    const t = { nodes, maxDepth: Math.max(0, levels.length - 1), diff: !!diff, total: nodes.length ? nodes[0].total : 0 };
    if (diff) {
      t.leftTicks = Number(fg.leftTicks || (nodes[0] && nodes[0].l) || 0);
      t.rightTicks = Number(fg.rightTicks || (nodes[0] && nodes[0].r) || 0);
    }
    return t;
  }

  // A tree built here (sandwich): nodes merged by name under each parent.
  function newTree(rootName) {
    const t = { nodes: [], maxDepth: 0, diff: false, total: 0, kids: [new Map()] };
    t.nodes.push({ id: 0, name: rootName, depth: 0, x: 0, total: 0, self: 0, parent: -1, children: [] });
    return t;
  }
  function addPath(t, names, v, selfAtEnd) {
    let cur = 0;
    t.nodes[0].total += v;
    for (const name of names) {
      let id = t.kids[cur].get(name);
      if (id === undefined) {
        id = t.nodes.length;
        const depth = t.nodes[cur].depth + 1;
        t.nodes.push({ id, name, depth, x: 0, total: 0, self: 0, parent: cur, children: [] });
        t.kids.push(new Map());
        t.kids[cur].set(name, id);
        t.nodes[cur].children.push(id);
        if (depth > t.maxDepth) t.maxDepth = depth;
      }
      t.nodes[id].total += v;
      cur = id;
    }
    if (selfAtEnd) t.nodes[cur].self += v;
    return cur;
  }
  function layout(t) {
    const order = [0];
    t.nodes[0].x = 0;
    while (order.length) {
      const n = t.nodes[order.pop()];
      n.children.sort((a, b) => (t.nodes[a].name < t.nodes[b].name ? -1 : 1));
      let x = n.x;
      for (const c of n.children) { t.nodes[c].x = x; x += t.nodes[c].total; order.push(c); }
    }
    t.total = t.nodes[0].total;
    delete t.kids;
    return t;
  }
  function pathOf(t, id) {
    const out = [];
    for (let n = t.nodes[id]; n && n.parent >= 0; n = t.nodes[n.parent]) out.push(n.name);
    return out.reverse();
  }
  function findPath(t, path) {
    let cur = 0;
    for (const name of path) {
      const c = t.nodes[cur].children.find((k) => t.nodes[k].name === name);
      if (c === undefined) return -1;
      cur = c;
    }
    return cur;
  }
  // Visits nodes depth first; enter(n) and leave(n).
  function walk(t, enter, leave) {
    if (!t.nodes.length) return;
    const stack = [[0, 0]];
    enter(t.nodes[0]);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const n = t.nodes[top[0]];
      if (top[1] < n.children.length) {
        const c = n.children[top[1]++];
        enter(t.nodes[c]);
        stack.push([c, 0]);
      } else {
        stack.pop();
        if (leave) leave(n);
      }
    }
  }
  // Per-function self and total (total counts a recursive function once).
  function functionStats(t) {
    const by = new Map();
    const open = new Map();
    const get = (name) => {
      let s = by.get(name);
      if (!s) { s = { name, self: 0, total: 0, l: 0, r: 0, sl: 0, sr: 0 }; by.set(name, s); }
      return s;
    };
    walk(t, (n) => {
      if (n.depth === 0) return;
      const s = get(n.name);
      s.self += n.self;
      if (t.diff) { s.sl += n.sl; s.sr += n.sr; }
      const k = open.get(n.name) || 0;
      if (k === 0) { s.total += n.total; if (t.diff) { s.l += n.l; s.r += n.r; } }
      open.set(n.name, k + 1);
    }, (n) => { if (n.depth) open.set(n.name, open.get(n.name) - 1); });
    return [...by.values()];
  }
  function buildSandwich(t, fn) {
    const callers = newTree(fn), callees = newTree(fn);
    let inside = 0;
    walk(t, (n) => {
      if (n.name !== fn || n.depth === 0) return;
      if (inside++ > 0) return;
      const up = [];
      for (let p = t.nodes[n.parent]; p && p.depth > 0; p = t.nodes[p.parent]) up.push(p.name);
      addPath(callers, up, n.total, true);
      // callees: the subtree of n merged under the root
      const st = [[n.id, []]];
      callees.nodes[0].self += n.self;
      callees.nodes[0].total += n.total;
      while (st.length) {
        const [id, path] = st.pop();
        for (const c of t.nodes[id].children) {
          const cn = t.nodes[c], cp = path.concat(cn.name);
          const leaf = addPathNoRoot(callees, cp, cn.total);
          callees.nodes[leaf].self += cn.self;
          st.push([c, cp]);
        }
      }
    }, (n) => { if (n.name === fn && n.depth) inside--; });
    // callers root self = samples where fn is at the top of the stack
    return { callers: layout(callers), callees: layout(callees) };
  }
  function addPathNoRoot(t, names, v) {
    // Adds v only to the last node of the path (its ancestors were added when visited).
    let cur = 0;
    for (let i = 0; i < names.length; i++) {
      const name = names[i];
      let id = t.kids[cur].get(name);
      if (id === undefined) {
        id = t.nodes.length;
        const depth = t.nodes[cur].depth + 1;
        t.nodes.push({ id, name, depth, x: 0, total: 0, self: 0, parent: cur, children: [] });
        t.kids.push(new Map());
        t.kids[cur].set(name, id);
        t.nodes[cur].children.push(id);
        if (depth > t.maxDepth) t.maxDepth = depth;
      }
      if (i === names.length - 1) t.nodes[id].total += v;
      cur = id;
    }
    return cur;
  }

  /* ------------------------------------------------------------- colours */

  function hash32(s) {
    let h = 2166136261;
    for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 16777619); }
    return h >>> 0;
  }
  // The group a frame's colour comes from: its package, namespace, class, file or binary.
  function frameGroup(name) {
    let s = String(name);
    if (s === 'total' || s === 'other') return s;
    let m = /^\[?([^\s\]]+\.(?:so(?:\.[\d.]+)?|exe|dll))\]?/.exec(s);        // binary
    if (m) return m[1];
    m = /^(.*?\.(?:py|rb|js|ts|php)):?/.exec(s);                             // script file
    if (m) return m[1].replace(/^.*\//, '');
    s = s.replace(/\(.*$/, '').replace(/<[^<>]*>/g, '');
    if (s.includes('::')) return s.split('::').slice(0, Math.max(1, s.split('::').length - 2)).join('::');
    const slash = s.lastIndexOf('/');
    const tail = s.slice(slash + 1);
    const dot = tail.indexOf('.');
    if (slash >= 0) return s.slice(0, slash + 1) + (dot >= 0 ? tail.slice(0, dot) : tail); // Go import path
    const parts = s.split('.');
    if (parts.length > 2) return parts.slice(0, parts.length - 2).join('.');             // Java package.Class.method
    if (parts.length === 2) return parts[0];
    return s.split(/[_\s]/)[0] || s;
  }
  // Hue and saturation from the group; a little lightness from the function
  // itself, so neighbouring frames of one package stay distinguishable.
  // The name without its import path or directories (what to show when the
  // whole name does not fit): "github.com/a/b/pkg.(*T).F" -> "pkg.(*T).F".
  function shortName(name) {
    const paren = name.indexOf('(');
    const head = paren >= 0 ? name.slice(0, paren) : name;
    const slash = head.lastIndexOf('/');
    return slash >= 0 && slash < name.length - 1 ? name.slice(slash + 1) : name;
  }
  const colourCache = new Map();
  function frameColour(name) {
    let c = colourCache.get(name);
    if (!c) {
      const g = frameGroup(name);
      const h = hash32(g), hn = hash32(name);
      if (g === 'total') c = 'hsl(220, 12%, 70%)';
      else if (g === 'other') c = 'hsl(0, 0%, 72%)';
      else c = 'hsl(' + (h % 360) + ', ' + (48 + (h >>> 9) % 22) + '%, ' + (60 + (h >>> 17) % 8 + (hn % 9)) + '%)';
      if (colourCache.size > 50000) colourCache.clear();
      colourCache.set(name, c);
    }
    return c;
  }
  // Diff colour: relative change of the frame's share between left and right.
  function diffChange(n, t) {
    const ls = t.leftTicks ? n.l / t.leftTicks : 0, rs = t.rightTicks ? n.r / t.rightTicks : 0;
    if (ls === 0 && rs === 0) return 0;
    if (ls === 0) return Infinity;
    return (rs - ls) / ls;
  }
  function diffColour(ch) {
    if (!isFinite(ch)) return ch > 0 ? 'rgb(214,39,40)' : 'rgb(31,158,74)';
    const a = Math.min(1, Math.abs(ch));
    if (Math.abs(ch) < 0.02) return 'rgb(200,200,200)';
    const base = [200, 200, 200], to = ch > 0 ? [214, 39, 40] : [31, 158, 74];
    const k = 0.25 + 0.75 * a;
    return 'rgb(' + base.map((b, i) => Math.round(b + (to[i] - b) * k)).join(',') + ')';
  }

  /* ------------------------------------------------------------- flame graph */

  function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

  let searchRe = null;
  function compileSearch(s) {
    if (!s) return null;
    try { return new RegExp(s, 'i'); } catch (e) { return new RegExp(s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'i'); }
  }

  // Draws tree t on canvas c, zoomed to node zoomId; returns the drawn frames.
  function drawFlame(c, t, zoomId, opts) {
    const dpr = window.devicePixelRatio || 1;
    const W = Math.max(200, c.parentElement.clientWidth);
    const z = t.nodes[zoomId] || t.nodes[0];
    const zx = z.x, zt = z.total || 1;
    const ancestors = new Set();
    for (let p = z; p && p.parent >= 0; p = t.nodes[p.parent]) ancestors.add(p.parent);
    // Pass 1: depth first in x order, pruning subtrees outside the zoom and
    // below frames too thin to draw (those merge into one bar per row), so the
    // cost follows what is visible, not the size of the tree.
    const items = [], runs = [];
    let maxDepth = 0;
    const stack = [0];
    while (stack.length) {
      const n = t.nodes[stack.pop()];
      let x0, w;
      if (ancestors.has(n.id)) { x0 = 0; w = W; } else {
        if (n.x + n.total <= zx || n.x >= zx + zt || n.total <= 0) continue;
        x0 = (n.x - zx) / zt * W; w = n.total / zt * W;
        if (x0 < 0) { w += x0; x0 = 0; }
        if (x0 + w > W) w = W - x0;
        if (w < 0.34) {
          let row = runs[n.depth];
          if (!row) row = runs[n.depth] = [];
          const last = row[row.length - 1];
          if (last && x0 <= last.b + 0.5) { last.b = Math.max(last.b, x0 + w); last.count++; last.value += n.total; }
          else row.push({ a: x0, b: x0 + w, name: n.name, count: 1, value: n.total, depth: n.depth });
          if (n.depth > maxDepth) maxDepth = n.depth;
          continue;
        }
      }
      items.push({ n, x0, w });
      if (n.depth > maxDepth) maxDepth = n.depth;
      for (let i = n.children.length - 1; i >= 0; i--) stack.push(n.children[i]);
    }
    // Pass 2: paint.
    const rows = maxDepth + 1;
    const H = rows * ROW;
    c.style.height = H + 'px';
    c.width = Math.round(W * dpr); c.height = Math.round(H * dpr);
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, W, H);
    g.font = '11px ui-monospace, Menlo, Consolas, monospace';
    g.textBaseline = 'middle';
    const charW = g.measureText('m').width || 6.6;
    const fg = cssVar('--frame-fg') || '#111', dim = cssVar('--dim') || '#ddd';
    const rowY = (d) => (opts.inverted ? (rows - 1 - d) * ROW : d * ROW);
    g.globalAlpha = 0.75;
    runs.forEach((row, d) => {
      for (const r of row || []) {
        if (r.b - r.a < 1) continue;
        g.fillStyle = searchRe ? dim : frameColour(r.name);
        g.fillRect(r.a, rowY(d), r.b - r.a, ROW - 1);
      }
    });
    g.globalAlpha = 1;
    const frames = [], byRow = [];
    for (let d = 0; d < rows; d++) byRow.push([]);
    for (const { n, x0, w } of items) {
      const y = rowY(n.depth);
      let colour = t.diff ? diffColour(diffChange(n, t)) : frameColour(n.name);
      if (searchRe && !searchRe.test(n.name)) colour = dim;
      g.globalAlpha = ancestors.has(n.id) ? 0.55 : 1;
      g.fillStyle = colour;
      g.fillRect(x0, y, Math.max(w - (w > 2 ? 0.5 : 0), 0.34), ROW - 1);
      if (w > 24) {
        const maxc = Math.floor((w - 6) / charW);
        let label = n.name;
        if (label.length > maxc) label = shortName(label);
        if (label.length > maxc) label = maxc > 2 ? label.slice(0, maxc - 1) + '…' : '';
        if (label) { g.globalAlpha = 1; g.fillStyle = fg; g.fillText(label, x0 + 3, y + ROW / 2); }
      }
      const f = { id: n.id, name: n.name, x: Math.round(x0 * 10) / 10, y, w: Math.round(w * 10) / 10, depth: n.depth };
      frames.push(f);
      byRow[n.depth].push(f);
    }
    g.globalAlpha = 1;
    return { frames, byRow, runs, W, H, rows };
  }
  function hitTest(drawn, x, y, inverted) {
    if (!drawn) return null;
    const rows = drawn.rows;
    let d = Math.floor(y / ROW);
    if (inverted) d = rows - 1 - d;
    const row = drawn.byRow[d];
    if (!row) return null;
    let lo = 0, hi = row.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1, f = row[mid];
      if (x < f.x) hi = mid - 1;
      else if (x > f.x + Math.max(f.w, 1)) lo = mid + 1;
      else return f;
    }
    // A bar of frames too thin to draw one by one.
    for (const r of (drawn.runs && drawn.runs[d]) || []) if (x >= r.a - 0.5 && x <= r.b + 0.5 && r.b - r.a >= 1) return { run: r };
    return null;
  }

  /* ------------------------------------------------------------- page state */

  let tree = null;          // current main tree (single or diff)
  let rawFG = null;         // the server's flamegraph, for the flamebearer export
  let sandwich = null;      // {callers, callees}
  let zoomId = 0;
  let drawn = null, drawnCallers = null;
  let series = null;        // timeline points
  let seriesError = '';     // why the timeline could not be loaded
  let fileLines = null;     // function name -> "file:line", from SelectMergeProfile
  let querySeq = 0;
  let queryRange = null;    // {start, end} of the main query

  function setStatus(msg, kind) {
    const s = $('status');
    if (!msg) { s.hidden = true; s.textContent = ''; s.className = ''; return; }
    s.hidden = false; s.textContent = msg; s.className = kind || 'info';
  }
  function reportError(e) {
    hook.errors.push(String(e.message || e));
    setStatus(e.message || String(e), 'error');
  }

  function currentTree() {
    return tree;
  }
  function flameTree() {
    if (state.view === 'sandwich' && sandwich) return sandwich.callees;
    return tree;
  }

  function render() {
    document.body.dataset.view = state.view;
    for (const b of document.querySelectorAll('#tabs button')) b.classList.toggle('active', b.dataset.view === state.view);
    $('diffpanel').hidden = state.view !== 'diff';
    searchRe = compileSearch(state.search);
    renderFlame();
    renderTable();
    hook.renderSeq++;
  }

  function renderFlame() {
    const t = flameTree();
    const c = $('flame');
    const sw = state.view === 'sandwich';
    const missing = sw && sandwich && !sandwich.callees.total;
    $('sandwichcallers').hidden = !(sw && sandwich) || missing;
    if (!t || !t.nodes.length || missing) {
      c.getContext('2d').clearRect(0, 0, c.width, c.height);
      c.style.height = '0px';
      drawn = null; hook.lastRender = { root: null, total: 0, frames: [] };
      $('breadcrumb').textContent = '';
      $('searchinfo').textContent = '';
      $('flamecaption').textContent = !sw ? '' : missing ? '"' + state.fn + '" does not appear in this profile: select a function in the table.'
        : 'Select a function in the table to see its callers and callees.';
      return;
    }
    if (sw) {
      $('flamecaption').innerHTML = '';
      $('flamecaption').append('Callees of ', Object.assign(document.createElement('b'), { textContent: state.fn }), ' (the function at the top)');
      for (const el of document.querySelectorAll('#sandwichcallers .fname')) el.textContent = state.fn;
      drawnCallers = drawFlame($('callers'), sandwich.callers, 0, { inverted: true });
      hook.lastCallers = { root: sandwich.callers.nodes[0].name, total: sandwich.callers.total, frames: drawnCallers.frames };
      zoomId = 0;
    } else {
      let cap;
      if (t.diff) {
        cap = 'Left ' + fv(t.leftTicks) + ', right ' + fv(t.rightTicks) + '. Width: left + right; colour: change of each frame\'s share from left to right.';
        if ((state.lquery || state.query) === (state.rquery || state.query) && (state.lfrom + state.luntil) === (state.rfrom + state.runtil))
          cap = 'Both sides are the same selection: set a left and a right selector (e.g. {version="v1"} and {version="v2"}) or drag two ranges on the timeline. ' + cap;
      }
      else cap = 'Total ' + fv(t.total) + ' · ' + fullSelectorSafe() + (state.span.trim() ? ' · only span ' + state.span.trim() : '');
      $('flamecaption').textContent = cap;
      zoomId = state.zoom ? findPath(t, state.zoom.split(';')) : 0;
      if (zoomId < 0) zoomId = 0;
    }
    const t0 = performance.now();
    drawn = drawFlame(c, t, zoomId, {});
    const ms = performance.now() - t0;
    hook.lastRender = { root: t.nodes[0].name, total: t.total, zoom: t.nodes[zoomId].name, nodes: t.nodes.length, drawMs: ms, frames: drawn.frames };
    if (t.diff) { hook.lastRender.left = t.leftTicks; hook.lastRender.right = t.rightTicks; }
    hook.lastRender.runs = [];
    drawn.runs.forEach((row, d) => { for (const r of row || []) if (r.b - r.a >= 1) hook.lastRender.runs.push({ depth: d, x: r.a, w: r.b - r.a, count: r.count, value: r.value }); });
    renderBreadcrumb(t);
    renderSearchInfo(t);
  }
  function renderBreadcrumb(t) {
    const bc = $('breadcrumb');
    bc.textContent = '';
    const path = [];
    for (let n = t.nodes[zoomId]; n; n = n.parent >= 0 ? t.nodes[n.parent] : null) path.push(n);
    path.reverse();
    path.forEach((n, i) => {
      if (i) bc.append(' › ');
      const a = document.createElement('a');
      a.textContent = i === 0 ? 'all' : n.name;
      a.title = n.name;
      a.onclick = () => { state.zoom = i === 0 ? '' : pathOf(t, n.id).join(';'); writeURL(true); render(); };
      bc.append(a);
    });
  }
  function renderSearchInfo(t) {
    if (!searchRe) { $('searchinfo').textContent = ''; return; }
    let matched = 0, value = 0, inside = 0;
    walk(t, (n) => {
      if (n.depth && searchRe.test(n.name)) { matched++; if (inside++ === 0) value += n.total; }
    }, (n) => { if (n.depth && searchRe.test(n.name)) inside--; });
    $('searchinfo').textContent = matched + (matched === 1 ? ' frame matches, ' : ' frames match, ') + fv(value) + ' = ' + pct(value, t.total) + ' of total';
    hook.lastSearch = { matched, value, share: t.total ? value / t.total : 0 };
  }

  /* ------------------------------------------------------------- table */

  let tableRows = [], tableKey = null, treeSerial = 0;
  // Rebuilds the table only when what it shows changed (not on zoom or hover).
  function renderTable() {
    const t = currentTree();
    if (t && !t.serial) t.serial = ++treeSerial;
    const shown = [t ? t.serial : 0, state.sort, state.desc, state.filter, state.fn, !!fileLines].join('\u0000');
    if (shown === tableKey) return;
    tableKey = shown;
    const thead = $('fntable').tHead, tbody = $('fntable').tBodies[0];
    thead.textContent = ''; tbody.textContent = '';
    $('tablebox').classList.toggle('empty', !t || !t.nodes.length);
    if (!t || !t.nodes.length) { tableRows = []; return; }
    // Stats are computed once per tree; sorting and filtering reuse them.
    if (!t.stats) t.stats = functionStats(t);
    const stats = t.stats.slice();
    let cols;
    if (t.diff) {
      const L = t.leftTicks || 1, R = t.rightTicks || 1;
      for (const s of stats) {
        s.lshare = s.sl / L; s.rshare = s.sr / R; s.change = s.rshare - s.lshare;
        s.ltshare = s.l / L; s.rtshare = s.r / R;
      }
      cols = [['name', 'Function'], ['lshare', 'Left self'], ['rshare', 'Right self'], ['change', 'Change']];
      if (!['name', 'lshare', 'rshare', 'change'].includes(state.sort)) state.sort = 'change';
    } else {
      const u = isCount() ? ' (' + countWord(curUnit(), typeInfo(state.type).sampleType, 2).trim() + ')' : '';
      cols = [['name', 'Function'], ['self', 'Self' + u], ['total', 'Total' + u]];
      if (!['name', 'self', 'total'].includes(state.sort)) state.sort = 'self';
    }
    const key = state.sort, dir = state.desc ? -1 : 1;
    stats.sort((a, b) => {
      let va = a[key], vb = b[key];
      if (key === 'change') { va = Math.abs(va); vb = Math.abs(vb); }
      if (va === vb) return a.name < b.name ? -1 : 1;
      return (va < vb ? -1 : 1) * dir;
    });
    let filtered = stats;
    if (state.filter) {
      const f = state.filter.toLowerCase();
      filtered = stats.filter((s) => s.name.toLowerCase().includes(f));
    }
    tableRows = filtered;
    const tr = document.createElement('tr');
    for (const [k, label] of cols) {
      const th = document.createElement('th');
      th.textContent = label + (k === key ? (state.desc ? ' ▼' : ' ▲') : '');
      th.dataset.key = k;
      th.onclick = () => {
        if (state.sort === k) state.desc = !state.desc; else { state.sort = k; state.desc = k !== 'name'; }
        writeURL(); renderTable();
      };
      tr.append(th);
    }
    thead.append(tr);
    const frag = document.createDocumentFragment();
    const total = t.total;
    for (const s of filtered.slice(0, MAX_TABLE_ROWS)) {
      const row = document.createElement('tr');
      row.dataset.name = s.name;
      if (s.name === state.fn) row.classList.add('selected');
      const td0 = document.createElement('td');
      const sw = document.createElement('span');
      sw.className = 'swatch';
      sw.style.background = t.diff ? diffColour(s.lshare ? (s.rshare - s.lshare) / s.lshare : (s.rshare ? Infinity : 0)) : frameColour(s.name);
      td0.append(sw, shortName(s.name));
      td0.title = s.name + (fileLines && fileLines.get(s.name) ? '\n' + fileLines.get(s.name) : '');
      row.append(td0);
      const cell = (text, cls) => { const td = document.createElement('td'); td.textContent = text; if (cls) td.className = cls; row.append(td); };
      if (t.diff) {
        const p = (x) => (100 * x).toFixed(2) + '%';
        cell(p(s.lshare)); cell(p(s.rshare));
        cell((s.change > 0 ? '+' : '') + (100 * s.change).toFixed(2) + ' pp', s.change > 0.00005 ? 'up' : s.change < -0.00005 ? 'down' : '');
        td0.title += '\ntotal: left ' + p(s.ltshare) + ', right ' + p(s.rtshare);
      } else {
        cell(fvShort(s.self) + ' (' + pct(s.self, total) + ')');
        cell(fvShort(s.total) + ' (' + pct(s.total, total) + ')');
      }
      frag.append(row);
    }
    tbody.append(frag);
    if (filtered.length > MAX_TABLE_ROWS) {
      const row = document.createElement('tr');
      const td = document.createElement('td');
      td.colSpan = cols.length; td.className = 'muted';
      td.textContent = (filtered.length - MAX_TABLE_ROWS) + ' more functions; use the filter to find them';
      row.append(td); tbody.append(row);
    }
  }
  function selectFunction(name) {
    state.fn = name;
    if (state.view === 'sandwich' || state.view === 'table') {
      state.view = 'sandwich';
      sandwich = tree && !tree.diff ? buildSandwich(tree, name) : null;
    } else {
      // Linked to the flame graph: highlight the function through the search.
      state.search = '^' + name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') + '$';
      $('search').value = state.search;
    }
    writeURL(); render();
  }

  /* ------------------------------------------------------------- tooltip */

  function showTooltip(ev, f, t) {
    const tip = $('tooltip');
    if (!f) { tip.hidden = true; return; }
    tip.textContent = '';
    if (f.run) {
      const d = document.createElement('div');
      d.className = 'tname';
      d.textContent = f.run.count + ' frames too narrow to draw one by one';
      const v = document.createElement('div');
      v.textContent = (t.diff ? '' : fv(f.run.value) + ' (' + pct(f.run.value, t.total) + ') · ') + 'click a frame above to zoom in, or search';
      tip.append(d, v);
    } else fillTooltip(tip, t, t.nodes[f.id]);
    tip.hidden = false;
    const pad = 14;
    let x = ev.clientX + pad, y = ev.clientY + pad;
    const r = tip.getBoundingClientRect();
    if (x + r.width > window.innerWidth) x = Math.max(0, ev.clientX - r.width - pad);
    if (y + r.height > window.innerHeight) y = Math.max(0, ev.clientY - r.height - pad);
    tip.style.left = x + 'px'; tip.style.top = y + 'px';
  }
  function fillTooltip(tip, t, n) {
    const name = document.createElement('div');
    name.className = 'tname'; name.textContent = n.name;
    tip.append(name);
    const fl = fileLines && fileLines.get(n.name);
    const where = document.createElement('div');
    where.className = 'muted'; where.textContent = fl || 'file:line unknown';
    tip.append(where);
    const tb = document.createElement('table');
    const row = (k, v) => { const r = tb.insertRow(); r.insertCell().textContent = k; r.insertCell().textContent = v; };
    if (t.diff) {
      row('Left', fv(n.l) + ' (' + pct(n.l, t.leftTicks) + '), self ' + fv(n.sl));
      row('Right', fv(n.r) + ' (' + pct(n.r, t.rightTicks) + '), self ' + fv(n.sr));
      const ch = diffChange(n, t);
      row('Change', isFinite(ch) ? (ch > 0 ? '+' : '') + (100 * ch).toFixed(1) + '% of share' : 'new on the right');
    } else {
      row('Self', fv(n.self) + ' (' + pct(n.self, t.total) + ')');
      row('Total', fv(n.total) + ' (' + pct(n.total, t.total) + ')');
    }
    tip.append(tb);
  }
  function canvasPoint(c, ev) {
    const r = c.getBoundingClientRect();
    return { x: ev.clientX - r.left, y: ev.clientY - r.top };
  }

  /* ------------------------------------------------------------- timeline */

  let drag = null;
  function drawTimeline() {
    const c = $('timeline');
    const dpr = window.devicePixelRatio || 1;
    const W = c.clientWidth || 800, H = 90;
    c.width = Math.round(W * dpr); c.height = Math.round(H * dpr);
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, W, H);
    if (!queryRange) return;
    const { start, end } = queryRange;
    const X = (t) => (t - start) / (end - start) * W;
    const border = cssVar('--border');
    g.strokeStyle = border; g.strokeRect(0.5, 0.5, W - 1, H - 1);
    // time axis ticks
    g.fillStyle = cssVar('--muted'); g.font = '10px system-ui, sans-serif'; g.textBaseline = 'bottom';
    for (let i = 0; i <= 4; i++) {
      const t = start + (end - start) * i / 4;
      const label = fmtDate(t).slice(5, 16);
      const w = g.measureText(label).width;
      g.fillText(label, Math.min(Math.max(2, X(t) - w / 2), W - w - 2), H - 2);
    }
    // diff side bands
    if (state.view === 'diff') {
      const band = (f, u, colour) => {
        try {
          const r = range(f, u);
          g.fillStyle = colour; g.fillRect(X(r.start), 0, Math.max(2, X(r.end) - X(r.start)), H - 14);
        } catch (e) { /* shown when applied */ }
      };
      // Only a side whose range differs from the main one gets a band.
      if (state.lfrom || state.luntil) band(state.lfrom || state.from, state.luntil || state.until, cssVar('--fill'));
      if (state.rfrom || state.runtil) band(state.rfrom || state.from, state.runtil || state.until, cssVar('--right'));
    }
    const pts = series || [];
    let max = 0, sum = 0;
    for (const p of pts) { if (p.v > max) max = p.v; sum += p.v; }
    if (pts.length && max > 0) {
      const Y = (v) => (H - 16) - v / max * (H - 24);
      g.beginPath();
      g.moveTo(X(pts[0].t), H - 16);
      for (const p of pts) g.lineTo(X(p.t), Y(p.v));
      g.lineTo(X(pts[pts.length - 1].t), H - 16);
      g.closePath();
      g.fillStyle = cssVar('--fill'); g.fill();
      g.beginPath();
      pts.forEach((p, i) => (i ? g.lineTo(X(p.t), Y(p.v)) : g.moveTo(X(p.t), Y(p.v))));
      g.strokeStyle = cssVar('--line'); g.lineWidth = 1.5; g.stroke();
      if (pts.length === 1) { g.fillStyle = cssVar('--line'); g.beginPath(); g.arc(X(pts[0].t), Y(pts[0].v), 3, 0, 7); g.fill(); }
      g.fillStyle = cssVar('--muted'); g.textBaseline = 'top';
      g.fillText('max ' + fv(max), 4, 3);
    }
    if (drag && drag.x1 !== drag.x0) {
      g.fillStyle = cssVar('--sel');
      g.fillRect(Math.min(drag.x0, drag.x1), 0, Math.abs(drag.x1 - drag.x0), H);
    }
    $('timelinelabel').textContent = fmtDate(start) + ' → ' + fmtDate(end) +
      (seriesError ? ' · timeline unavailable: ' + seriesError : pts.length ? ' · ' + pts.length + ' points, sum ' + fv(sum) : ' · no points') + ' · drag to zoom in';
    hook.timeline = { points: pts.length, start, end };
  }

  /* ------------------------------------------------------------- queries */

  async function loadServices() {
    const r = range(state.from, state.until);
    const res = await call('LabelValues', { name: 'service_name', start: String(r.start), end: String(r.end) });
    const names = (res.names || []).slice().sort();
    const sel = $('service');
    sel.textContent = '';
    if (!names.length) sel.append(new Option('(no services)', ''));
    for (const n of names) sel.append(new Option(n, n));
    if (!names.includes(state.service)) state.service = names[0] || '';
    sel.value = state.service;
    return names;
  }
  async function loadTypes() {
    const r = range(state.from, state.until);
    let ids = [];
    if (state.service) {
      const res = await call('Series', { matchers: [fullSelector('{}')], labelNames: ['__profile_type__'], start: String(r.start), end: String(r.end) });
      for (const ls of res.labelsSet || []) for (const l of ls.labels || []) if (l.name === '__profile_type__' && !ids.includes(l.value)) ids.push(l.value);
    }
    if (!ids.length) {
      const res = await call('ProfileTypes', { start: String(r.start), end: String(r.end) });
      ids = (res.profileTypes || []).map((p) => p.ID || p.id).filter(Boolean);
    }
    // The most useful type first: CPU time, then other CPU, memory in use, the rest.
    const rank = (id) => (/^process_cpu:cpu:/.test(id) ? 0 : /^process_cpu:/.test(id) ? 1 : /^memory:inuse_space:/.test(id) ? 2 : /^wall:/.test(id) ? 3 : 4);
    ids.sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : 1));
    const sel = $('ptype');
    sel.textContent = '';
    if (!ids.length) sel.append(new Option('(no profile types)', ''));
    for (const id of ids) sel.append(new Option(typeLabel(id), id));
    if (!ids.includes(state.type)) state.type = ids[0] || '';
    sel.value = state.type;
  }

  // Reloads the pickers, then the data.
  async function reloadAll() {
    const seq = ++querySeq;
    acCache.clear();
    try {
      setStatus('Loading…', 'info');
      const services = await loadServices();
      if (seq !== querySeq) return;
      await loadTypes();
      if (seq !== querySeq) return;
      if (!services.length && !state.service) {
        tree = null; series = null; seriesError = ''; sandwich = null;
        queryRange = range(state.from, state.until);
        setStatus('No data: no service has sent profiles in this time range. Send some (hearth ingest, an SDK or the agent) or widen the range.', 'info');
        drawTimeline(); render();
        return;
      }
      await reloadData(seq);
    } catch (e) {
      if (seq === querySeq) { tree = null; series = null; seriesError = ''; render(); drawTimeline(); reportError(e); }
    }
  }

  async function reloadData(seq) {
    seq = seq || ++querySeq;
    try {
      const r = range(state.from, state.until);
      queryRange = r;
      if (!state.type) throw new Error('pick a profile type');
      const selector = fullSelector(state.query);
      setStatus('Loading…', 'info');
      const stepS = Math.max(1, Math.round((r.end - r.start) / 1000 / 150));
      const seriesP = call('SelectSeries', { profileTypeID: state.type, labelSelector: selector, start: String(r.start), end: String(r.end), step: stepS })
        .then((res) => {
          const pts = [];
          for (const s of res.series || []) for (const p of s.points || []) pts.push({ t: Number(p.timestamp), v: Number(p.value) });
          pts.sort((a, b) => a.t - b.t);
          const merged = [];
          for (const p of pts) { if (merged.length && merged[merged.length - 1].t === p.t) merged[merged.length - 1].v += p.v; else merged.push(p); }
          return merged;
        })
        // The timeline is secondary: its failure is shown on it, the graph still loads.
        .catch((e) => { hook.seriesError = e.message; return { error: e.message }; });
      let fgP, diff = false;
      if (state.view === 'diff') {
        diff = true;
        const side = (q, f, u) => {
          const rr = range(f || state.from, u || state.until);
          return { profileTypeID: state.type, labelSelector: fullSelector(q || state.query), start: String(rr.start), end: String(rr.end), maxNodes: String(MAX_NODES) };
        };
        fgP = call('Diff', { left: side(state.lquery, state.lfrom, state.luntil), right: side(state.rquery, state.rfrom, state.runtil) });
      } else if (state.span.trim()) {
        const spans = state.span.split(/[\s,]+/).filter(Boolean);
        for (const s of spans) if (!/^[0-9a-fA-F]{1,32}$/.test(s)) throw new Error('a span ID is hex digits (like 9a517183f26a089d); got "' + s + '"');
        fgP = call('SelectMergeSpanProfile', { profileTypeID: state.type, labelSelector: selector, spanSelector: spans, start: String(r.start), end: String(r.end), maxNodes: String(MAX_NODES) });
      } else {
        fgP = call('SelectMergeStacktraces', { profileTypeID: state.type, labelSelector: selector, start: String(r.start), end: String(r.end), maxNodes: String(MAX_NODES) });
      }
      const tq = performance.now();
      const [pts, fgRes] = await Promise.all([seriesP, fgP]);
      if (seq !== querySeq) return;
      const td = performance.now();
      series = Array.isArray(pts) ? pts : null;
      seriesError = Array.isArray(pts) ? '' : pts.error;
      rawFG = fgRes.flamegraph || null;
      tree = rawFG && (rawFG.levels || []).length ? treeFromFlamegraph(rawFG, diff) : null;
      hook.timings = { queryMs: td - tq, decodeMs: performance.now() - td };
      if (tree && !tree.total) tree = null;
      sandwich = state.fn && tree && !tree.diff ? buildSandwich(tree, state.fn) : null;
      fileLines = null;
      if (!tree) {
        setStatus(state.span.trim() && !diff
          ? 'No data for span ' + state.span + ' in this time range: no sample carries that span_id.'
          : 'No data for ' + selector + ' (' + typeLabel(state.type) + ') in this time range. Widen the range or change the selector.', 'info');
      } else setStatus('');
      drawTimeline();
      render();
      if (tree && !diff) loadFileLines(seq, selector, r);
    } catch (e) {
      if (seq === querySeq) { tree = null; series = null; seriesError = ''; sandwich = null; drawTimeline(); render(); reportError(e); }
    }
  }

  /* --------------------------------------------- pprof (protobuf) for file:line and export */

  function pbString(field, s) {
    const b = new TextEncoder().encode(s);
    return [...pbVarint((field << 3) | 2), ...pbVarint(b.length), ...b];
  }
  function pbVarint(v) {
    const out = [];
    let n = BigInt(v);
    do { let b = Number(n & 0x7fn); n >>= 7n; if (n) b |= 0x80; out.push(b); } while (n);
    return out;
  }
  function pbInt(field, v) { return [...pbVarint(field << 3), ...pbVarint(v)]; }

  // SelectMergeProfile as application/proto; spans (optional) go in field
  // 1000, hearth's spanSelector extension (Pyroscope has no span filter there).
  async function fetchMergedPprof(selector, r, spans) {
    const body = new Uint8Array([...pbString(1, state.type), ...pbString(2, selector), ...pbInt(3, r.start), ...pbInt(4, r.end),
      ...(spans || []).flatMap((id) => pbString(1000, id))]);
    let res;
    try {
      res = await fetch('querier.v1.QuerierService/SelectMergeProfile', {
        method: 'POST', headers: { 'Content-Type': 'application/proto', 'Connect-Protocol-Version': '1' }, body,
      });
    } catch (e) {
      throw new QueryError('Cannot reach the hearth server (' + e.message + ')', 'unreachable');
    }
    const bytes = new Uint8Array(await res.arrayBuffer());
    if (!res.ok) {
      let msg = new TextDecoder().decode(bytes).slice(0, 500);
      try { msg = JSON.parse(msg).message || msg; } catch (e) { /* plain text */ }
      throw new QueryError('SelectMergeProfile failed (HTTP ' + res.status + '): ' + msg, String(res.status));
    }
    return bytes;
  }
  // Minimal protobuf reader: calls fn(field, wireType, value) per field.
  function pbRead(buf, start, end, fn) {
    let i = start;
    const varint = () => {
      let v = 0, mul = 1, b;
      do {
        if (i >= end) throw new Error('truncated protobuf');
        b = buf[i++]; v += (b & 0x7f) * mul; mul *= 128;
      } while (b & 0x80);
      return v;
    };
    while (i < end) {
      const key = varint(), f = Math.floor(key / 8), wt = key & 7;
      if (wt === 0) fn(f, 0, varint());
      else if (wt === 2) { const n = varint(); if (i + n > end) throw new Error('truncated protobuf'); fn(f, 2, [i, i + n]); i += n; }
      else if (wt === 1) i += 8;
      else if (wt === 5) i += 4;
      else throw new Error('bad protobuf wire type ' + wt);
    }
  }
  function pprofFileLines(buf) {
    const strings = [], funcs = new Map(), firstLine = new Map();
    const dec = new TextDecoder();
    pbRead(buf, 0, buf.length, (f, wt, v) => {
      if (f === 6 && wt === 2) strings.push(dec.decode(buf.subarray(v[0], v[1])));
      else if (f === 5 && wt === 2) {
        const fn = { id: 0, name: 0, file: 0, line: 0 };
        pbRead(buf, v[0], v[1], (g, w, x) => {
          if (w !== 0) return;
          if (g === 1) fn.id = x; else if (g === 2) fn.name = x; else if (g === 4) fn.file = x; else if (g === 5) fn.line = x;
        });
        funcs.set(fn.id, fn);
      } else if (f === 4 && wt === 2) {
        pbRead(buf, v[0], v[1], (g, w, x) => {
          if (g !== 4 || w !== 2) return;
          let fid = 0, line = 0;
          pbRead(buf, x[0], x[1], (h, w2, y) => { if (w2 === 0 && h === 1) fid = y; else if (w2 === 0 && h === 2) line = y; });
          if (fid && line && !firstLine.has(fid)) firstLine.set(fid, line);
        });
      }
    });
    const out = new Map();
    for (const fn of funcs.values()) {
      const name = strings[fn.name], file = strings[fn.file];
      if (!name || !file) continue;
      const line = fn.line || firstLine.get(fn.id) || 0;
      if (!out.has(name)) out.set(name, file + (line ? ':' + line : ''));
    }
    return out;
  }
  async function loadFileLines(seq, selector, r) {
    try {
      const bytes = await fetchMergedPprof(selector, r);
      if (seq !== querySeq) return;
      fileLines = pprofFileLines(bytes);
      hook.fileLines = fileLines.size;
      renderTable(); // row titles gain file:line
    } catch (e) {
      hook.fileLinesError = String(e.message || e); // hovers then say "file:line unknown"
    }
  }

  /* ------------------------------------------------------------- exports */

  function download(name, blob) {
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.append(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }
  function baseName() {
    const t = typeInfo(state.type);
    return (state.service || 'profile').replace(/[^\w.-]+/g, '_') + '.' + (t.sampleType || 'profile');
  }
  // Folded stacks, one line per stack with self > 0: "a;b;c 12". A diff is
  // written the way difffolded.pl writes it and flamegraph.pl reads it:
  // "a;b;c LEFT RIGHT", a line wherever either side has self time.
  function foldedText(t) {
    const lines = [];
    const path = [];
    walk(t, (n) => {
      if (n.depth) path.push(n.name.replace(/;/g, ':'));
      if (!n.depth) return;
      if (t.diff) { if (n.sl > 0 || n.sr > 0) lines.push(path.join(';') + ' ' + n.sl + ' ' + n.sr); }
      else if (n.self > 0) lines.push(path.join(';') + ' ' + n.self);
    }, (n) => { if (n.depth) path.pop(); });
    return lines.join('\n') + '\n';
  }
  function xmlEsc(s) { return String(s).replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' }[c])); }
  function svgText(t) {
    const d = drawn || drawFlame($('flame'), t, zoomId, {});
    const W = Math.round(d.W), H = d.rows * ROW + 30;
    const out = ['<?xml version="1.0" encoding="UTF-8"?>',
      '<svg xmlns="http://www.w3.org/2000/svg" width="' + W + '" height="' + H + '" viewBox="0 0 ' + W + ' ' + H + '" font-family="monospace" font-size="11">',
      '<rect width="100%" height="100%" fill="#ffffff"/>',
      '<text x="4" y="16" font-size="13" fill="#222">' + xmlEsc(baseName() + ' ' + fullSelectorSafe()) + '</text>'];
    for (const f of d.frames) {
      const n = t.nodes[f.id];
      const colour = t.diff ? diffColour(diffChange(n, t)) : frameColour(n.name);
      const title = n.name + ' (' + (t.diff ? 'left ' + fv(n.l) + ', right ' + fv(n.r) : fv(n.total) + ', ' + pct(n.total, t.total)) + ')';
      out.push('<g><title>' + xmlEsc(title) + '</title><rect x="' + f.x + '" y="' + (f.y + 24) + '" width="' + Math.max(f.w, 0.5) + '" height="' + (ROW - 1) + '" fill="' + colour + '"/>');
      const maxc = Math.floor((f.w - 6) / 6.6);
      if (f.w > 24 && maxc > 2) {
        const label = n.name.length > maxc ? n.name.slice(0, maxc - 1) + '…' : n.name;
        out.push('<text x="' + (f.x + 3) + '" y="' + (f.y + 24 + 12.5) + '" fill="#111">' + xmlEsc(label) + '</text>');
      }
      out.push('</g>');
    }
    out.push('</svg>');
    return out.join('\n') + '\n';
  }
  function fullSelectorSafe() { try { return fullSelector(state.query); } catch (e) { return state.query; } }
  function flamebearerJSON(t) {
    const fg = rawFG;
    const ti = typeInfo(state.type);
    const units = { nanoseconds: 'samples', bytes: 'bytes', count: /object/.test(ti.sampleType) ? 'objects' : 'samples' }[ti.unit] || ti.unit;
    const fb = {
      version: 1,
      flamebearer: {
        names: fg.names || [],
        levels: (fg.levels || []).map((l) => (l.values || []).map(Number)),
        numTicks: t.diff ? t.leftTicks + t.rightTicks : t.total,
        maxSelf: Number(fg.maxSelf || 0),
      },
      metadata: { format: t.diff ? 'double' : 'single', spyName: '', sampleRate: ti.unit === 'nanoseconds' ? 1e9 : 100, units, name: state.type },
    };
    if (t.diff) { fb.leftTicks = t.leftTicks; fb.rightTicks = t.rightTicks; }
    if (series && series.length && queryRange) {
      const step = series.length > 1 ? Math.max(1, Math.round((series[1].t - series[0].t) / 1000)) : 10;
      fb.timeline = { startTime: Math.floor(series[0].t / 1000), samples: series.map((p) => p.v), durationDelta: step };
    }
    return JSON.stringify(fb);
  }
  async function exportAs(kind) {
    $('exportmenu').hidden = true;
    const t = flameTree();
    try {
      if (kind === 'pprof') {
        if (state.view === 'diff') throw new Error('pprof export is for a single selection; leave the diff view first');
        const r = range(state.from, state.until);
        const bytes = await fetchMergedPprof(fullSelector(state.query), r, state.span.split(/[\s,]+/).filter(Boolean));
        let blob = new Blob([bytes], { type: 'application/octet-stream' });
        if (window.CompressionStream) blob = await new Response(blob.stream().pipeThrough(new CompressionStream('gzip'))).blob();
        download(baseName() + (window.CompressionStream ? '.pb.gz' : '.pb'), blob);
        hook.lastExport = { kind, size: blob.size };
        return;
      }
      if (!t) throw new Error('nothing to export: the query returned no data');
      let text, name, type;
      if (kind === 'folded') { text = foldedText(t); name = baseName() + (t.diff ? '.diff' : '') + '.folded.txt'; type = 'text/plain'; }
      else if (kind === 'svg') { text = svgText(t); name = baseName() + '.svg'; type = 'image/svg+xml'; }
      else { text = flamebearerJSON(tree); name = baseName() + '.flamebearer.json'; type = 'application/json'; }
      hook.lastExport = { kind, size: text.length, text: text.length < 2e6 ? text : null };
      download(name, new Blob([text], { type }));
    } catch (e) { reportError(e); }
  }

  /* ------------------------------------------------------------- autocomplete */

  let acItems = [], acIndex = -1, acCtx = null, acSeq = 0;
  const acCache = new Map();
  function acContext(text, pos) {
    const before = text.slice(0, pos);
    let m = /([A-Za-z_][A-Za-z0-9_.]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)$/.exec(before);
    if (m) return { kind: 'value', label: m[1], prefix: m[3], from: pos - m[3].length };
    m = /(^|[{,]\s*)([A-Za-z0-9_.]*)$/.exec(before);
    if (m && before.includes('{') || (m && before.trim() === '')) return { kind: 'name', prefix: m[2], from: pos - m[2].length };
    return null;
  }
  async function autocomplete() {
    const inp = $('selector');
    const ctx = acContext(inp.value, inp.selectionStart);
    const seq = ++acSeq;
    if (!ctx) { hideAc(); return; }
    let r;
    try { r = range(state.from, state.until); } catch (e) { hideAc(); return; }
    const matchers = state.service ? ['{service_name="' + state.service + '"}'] : [];
    // Names are cached per label and scope, so typing filters at once (a Tab
    // right after a keystroke picks from the list that matches what is typed).
    const key = [ctx.kind, ctx.label, state.service, state.from, state.until].join('\u0000');
    const fill = (names) => {
      acItems = names.filter((n) => n.toLowerCase().startsWith(ctx.prefix.toLowerCase())).slice(0, 100);
      acCtx = ctx;
      acIndex = acItems.length ? 0 : -1;
      showAc();
    };
    if (acCache.has(key)) { fill(acCache.get(key)); return; }
    try {
      let names;
      if (ctx.kind === 'name') {
        const res = await call('LabelNames', { matchers, start: String(r.start), end: String(r.end) });
        names = (res.names || []).filter((n) => !n.startsWith('__') && n !== 'service_name');
      } else {
        const res = await call('LabelValues', { name: ctx.label, matchers, start: String(r.start), end: String(r.end) });
        names = res.names || [];
      }
      if (acCache.size > 200) acCache.clear();
      acCache.set(key, names);
      if (seq !== acSeq) return;
      fill(names);
    } catch (e) { hideAc(); }
  }
  function showAc() {
    const ul = $('autocomplete');
    ul.textContent = '';
    if (!acItems.length) { ul.hidden = true; return; }
    acItems.forEach((n, i) => {
      const li = document.createElement('li');
      li.textContent = n;
      if (i === acIndex) li.className = 'on';
      li.onmousedown = (ev) => { ev.preventDefault(); acPick(i); };
      ul.append(li);
    });
    ul.hidden = false;
  }
  function hideAc() { $('autocomplete').hidden = true; acItems = []; acIndex = -1; }
  function acPick(i) {
    const inp = $('selector');
    const v = inp.value, pos = inp.selectionStart, item = acItems[i];
    if (item === undefined || !acCtx) return;
    let ins = item, after = v.slice(pos);
    if (acCtx.kind === 'name') ins = item + '="';
    else {
      ins = item.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
      after = after.replace(/^[^"]*"?/, '');
      ins += '"';
    }
    let text = v.slice(0, acCtx.from) + ins + after;
    if (!text.trim().startsWith('{')) text = '{' + text;
    if (!text.trim().endsWith('}') && acCtx.kind === 'value') text += '}';
    inp.value = text;
    const caret = acCtx.from + ins.length + (v.trim().startsWith('{') ? 0 : 1);
    inp.setSelectionRange(caret, caret);
    hideAc();
    if (acCtx.kind === 'name') autocomplete();
  }

  /* ------------------------------------------------------------- wiring */

  function syncControls() {
    $('selector').value = state.query === '{}' ? '' : state.query;
    const preset = [...$('range').options].find((o) => o.value === state.from && state.until === 'now');
    $('range').value = preset ? preset.value : 'custom';
    $('customrange').hidden = !!preset;
    $('from').value = showTime(state.from); $('until').value = showTime(state.until);
    $('search').value = state.search; $('filter').value = state.filter; $('span').value = state.span;
    $('lquery').value = state.lquery; $('rquery').value = state.rquery;
    $('lfrom').value = showTime(state.lfrom || state.from); $('luntil').value = showTime(state.luntil || state.until);
    $('rfrom').value = showTime(state.rfrom || state.from); $('runtil').value = showTime(state.runtil || state.until);
  }
  function setRange(from, until) {
    state.from = from; state.until = until;
    state.zoom = '';
    syncControls(); writeURL(true);
  }
  function applySelector() {
    let v = $('selector').value.trim();
    if (v && !v.startsWith('{')) v = '{' + v + '}';
    state.query = v || '{}';
    state.zoom = '';
    writeURL(); reloadData();
  }

  function wire() {
    $('service').onchange = async () => {
      state.service = $('service').value; state.zoom = ''; state.fn = '';
      writeURL();
      try { await loadTypes(); writeURL(); reloadData(); } catch (e) { reportError(e); }
    };
    $('ptype').onchange = () => { state.type = $('ptype').value; state.zoom = ''; writeURL(); reloadData(); };
    $('range').onchange = () => {
      const v = $('range').value;
      if (v === 'custom') {
        $('customrange').hidden = false;
        if (queryRange) { $('from').value = fmtDate(queryRange.start).replace(' ', 'T'); $('until').value = fmtDate(queryRange.end).replace(' ', 'T'); }
        $('from').focus();
        return;
      }
      setRange(v, 'now'); reloadAll();
    };
    const customApply = (ev) => { if (ev.key === 'Enter') { setRange($('from').value.trim(), $('until').value.trim()); reloadAll(); } };
    $('from').onkeydown = customApply; $('until').onkeydown = customApply;
    $('refresh').onclick = () => reloadAll();
    $('span').onkeydown = (ev) => { if (ev.key === 'Enter') { state.span = $('span').value.trim(); state.zoom = ''; writeURL(); reloadData(); } };
    $('span').onchange = () => { if (state.span !== $('span').value.trim()) { state.span = $('span').value.trim(); writeURL(); reloadData(); } };

    const sel = $('selector');
    sel.oninput = () => autocomplete();
    sel.onfocus = () => autocomplete();
    sel.onblur = () => setTimeout(hideAc, 150);
    sel.onkeydown = (ev) => {
      const open = !$('autocomplete').hidden && acItems.length;
      if (open && ev.key === 'ArrowDown') { acIndex = (acIndex + 1) % acItems.length; showAc(); ev.preventDefault(); }
      else if (open && ev.key === 'ArrowUp') { acIndex = (acIndex + acItems.length - 1) % acItems.length; showAc(); ev.preventDefault(); }
      else if (open && (ev.key === 'Tab' || (ev.key === 'Enter' && acIndex >= 0))) { acPick(acIndex); ev.preventDefault(); }
      else if (ev.key === 'Escape') hideAc();
      else if (ev.key === 'Enter') { hideAc(); applySelector(); }
    };

    for (const b of document.querySelectorAll('#tabs button')) {
      b.onclick = () => {
        const was = state.view;
        state.view = b.dataset.view;
        if (state.view === 'sandwich' && !state.fn && tree && !tree.diff) {
          const stats = functionStats(tree).sort((a, c) => c.self - a.self);
          if (stats.length) state.fn = stats[0].name;
        }
        if (state.view !== 'sandwich' && state.view !== 'diff') state.sort = state.sort === 'change' ? 'self' : state.sort;
        writeURL(true);
        if ((was === 'diff') !== (state.view === 'diff')) { state.zoom = ''; state.sort = state.view === 'diff' ? 'change' : 'self'; writeURL(); drawTimeline(); reloadData(); return; }
        sandwich = state.view === 'sandwich' && state.fn && tree && !tree.diff ? buildSandwich(tree, state.fn) : sandwich;
        render();
      };
    }
    $('diffapply').onclick = () => {
      for (const k of ['lquery', 'rquery', 'lfrom', 'luntil', 'rfrom', 'runtil']) {
        const v = $(k).value.trim();
        // A side range equal to the main range is kept implicit (follows the main range).
        state[k] = (k.endsWith('from') && v === showTime(state.from)) || (k.endsWith('until') && v === showTime(state.until)) ? '' : v;
      }
      state.zoom = ''; writeURL(); drawTimeline(); reloadData();
    };
    for (const k of ['lquery', 'rquery', 'lfrom', 'luntil', 'rfrom', 'runtil']) $(k).onkeydown = (ev) => { if (ev.key === 'Enter') $('diffapply').click(); };

    // Typing in search redraws only the flame graph (the table does not depend on it).
    $('search').oninput = () => { state.search = $('search').value; searchRe = compileSearch(state.search); writeURL(); renderFlame(); hook.renderSeq++; };
    $('filter').oninput = () => { state.filter = $('filter').value; writeURL(); renderTable(); };
    $('reset').onclick = () => { state.zoom = ''; writeURL(); render(); };
    document.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && document.activeElement === document.body) { state.zoom = ''; writeURL(); render(); }
    });
    $('fntable').tBodies[0].onclick = (ev) => {
      const tr = ev.target.closest('tr');
      if (tr && tr.dataset.name) selectFunction(tr.dataset.name);
    };

    const flame = $('flame');
    flame.onmousemove = (ev) => {
      const t = flameTree(); if (!t) return;
      const p = canvasPoint(flame, ev);
      showTooltip(ev, hitTest(drawn, p.x, p.y, false), t);
    };
    flame.onmouseleave = () => { $('tooltip').hidden = true; };
    flame.onclick = (ev) => {
      const t = flameTree(); if (!t) return;
      const p = canvasPoint(flame, ev);
      const f = hitTest(drawn, p.x, p.y, false);
      if (!f || f.run) return;
      if (state.view === 'sandwich') { if (f.depth) selectFunction(f.name); return; }
      state.zoom = f.depth === 0 ? '' : pathOf(t, f.id).join(';');
      writeURL(true); render();
    };
    const callers = $('callers');
    callers.onmousemove = (ev) => {
      if (!sandwich) return;
      const p = canvasPoint(callers, ev);
      showTooltip(ev, hitTest(drawnCallers, p.x, p.y, true), sandwich.callers);
    };
    callers.onmouseleave = () => { $('tooltip').hidden = true; };
    callers.onclick = (ev) => {
      if (!sandwich) return;
      const p = canvasPoint(callers, ev);
      const f = hitTest(drawnCallers, p.x, p.y, true);
      if (f && !f.run && f.depth) selectFunction(f.name);
    };

    const tl = $('timeline');
    tl.onmousedown = (ev) => { if (!queryRange) return; const p = canvasPoint(tl, ev); drag = { x0: p.x, x1: p.x }; };
    window.addEventListener('mousemove', (ev) => { if (drag) { drag.x1 = Math.max(0, Math.min(tl.clientWidth, canvasPoint(tl, ev).x)); drawTimeline(); } });
    window.addEventListener('mouseup', () => {
      if (!drag) return;
      const d = drag; drag = null;
      if (Math.abs(d.x1 - d.x0) < 3 || !queryRange) { drawTimeline(); return; }
      const W = tl.clientWidth, { start, end } = queryRange;
      const a = Math.round(start + Math.min(d.x0, d.x1) / W * (end - start));
      const b = Math.round(start + Math.max(d.x0, d.x1) / W * (end - start));
      if (state.view === 'diff') {
        const side = document.querySelector('input[name=dragside]:checked').value;
        state[side + 'from'] = String(a); state[side + 'until'] = String(b);
        syncControls(); writeURL(); drawTimeline(); reloadData();
        return;
      }
      setRange(String(a), String(b));
      reloadAll();
    });

    $('exportbtn').onclick = (ev) => { ev.stopPropagation(); $('exportmenu').hidden = !$('exportmenu').hidden; };
    document.addEventListener('click', () => { $('exportmenu').hidden = true; });
    for (const b of document.querySelectorAll('[data-export]')) b.onclick = (ev) => { ev.stopPropagation(); exportAs(b.dataset.export); };

    $('theme').onclick = () => {
      const next = document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark';
      document.documentElement.dataset.theme = next;
      try { localStorage.setItem('hearth-theme', next); } catch (e) { /* private mode */ }
      drawTimeline(); render();
    };
    // Back/Forward: the URL is the state; reload it (queries are cheap to repeat).
    window.addEventListener('popstate', () => { readURL(); syncControls(); reloadAll(); });
    let resizeTimer = 0;
    window.addEventListener('resize', () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(() => { drawTimeline(); render(); }, 60); });
  }

  function initTheme() {
    let t = null;
    try { t = localStorage.getItem('hearth-theme'); } catch (e) { /* private mode */ }
    const q = new URLSearchParams(location.search).get('theme');
    if (q === 'dark' || q === 'light') t = q;
    if (!t) t = window.matchMedia && matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
    document.documentElement.dataset.theme = t;
  }

  // Exposed for tests: pure helpers that need no server.
  hook.redraw = () => { const t0 = performance.now(); render(); return performance.now() - t0; };
  hook.fn = { parseTime, fmtValue, frameGroup, shortName, treeFromFlamegraph, functionStats, buildSandwich };

  initTheme();
  readURL();
  syncControls();
  wire();
  writeURL();
  reloadAll();
})();
