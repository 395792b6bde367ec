// pprof.js: an independent, minimal pprof reader for the UI tests. It computes
// what the flame graph must show (root-level frames and their shares, the share
// of frames matching a name, the total of one span) straight from the test
// profile, so the browser checks compare against the input, not the UI itself.
'use strict';
const zlib = require('zlib');

function read(buf, start, end, fn) {
  let i = start;
  const varint = () => {
    let v = 0, mul = 1, b;
    do { if (i >= end) throw new Error('truncated'); b = buf[i++]; v += (b & 0x7f) * mul; mul *= 128; } while (b & 0x80);
    return v;
  };
  while (i < end) {
    const key = varint(), f = Math.floor(key / 8), wt = key & 7;
    if (wt === 0) fn(f, 0, varint());
    else if (wt === 2) { const n = varint(); fn(f, 2, [i, i + n]); i += n; }
    else if (wt === 1) i += 8; else if (wt === 5) i += 4; else throw new Error('wire type ' + wt);
  }
}
function packed(buf, v, wt, out) {
  if (wt === 0) { out.push(v); return; }
  let i = v[0];
  while (i < v[1]) { let x = 0, mul = 1, b; do { b = buf[i++]; x += (b & 0x7f) * mul; mul *= 128; } while (b & 0x80); out.push(x); }
}

// Returns {types: ['cpu:nanoseconds', ...], stacks: [{frames: [root..leaf names], values: [...], labels: {k: v}}]}
function decode(bytes) {
  let buf = bytes;
  if (buf[0] === 0x1f && buf[1] === 0x8b) buf = zlib.gunzipSync(buf);
  const strings = [], types = [], samples = [], funcs = new Map(), locs = new Map();
  read(buf, 0, buf.length, (f, wt, v) => {
    if (f === 6) strings.push(buf.subarray(v[0], v[1]).toString('utf8'));
    else if (f === 1) { const t = {}; read(buf, v[0], v[1], (g, w, x) => { if (g === 1) t.type = x; if (g === 2) t.unit = x; }); types.push(t); }
    else if (f === 2) {
      const s = { locs: [], values: [], labels: [] };
      read(buf, v[0], v[1], (g, w, x) => {
        if (g === 1) packed(buf, x, w, s.locs);
        else if (g === 2) packed(buf, x, w, s.values);
        else if (g === 3) { const l = {}; read(buf, x[0], x[1], (h, w2, y) => { if (h === 1) l.key = y; if (h === 2) l.str = y; }); s.labels.push(l); }
      });
      samples.push(s);
    } else if (f === 5) {
      const fn = {}; read(buf, v[0], v[1], (g, w, x) => { if (g === 1) fn.id = x; if (g === 2) fn.name = x; }); funcs.set(fn.id, fn);
    } else if (f === 4) {
      const l = { lines: [] };
      read(buf, v[0], v[1], (g, w, x) => {
        if (g === 1) l.id = x; else if (g === 3) l.addr = x;
        else if (g === 4) { const ln = {}; read(buf, x[0], x[1], (h, w2, y) => { if (h === 1) ln.fn = y; }); l.lines.push(ln); }
      });
      locs.set(l.id, l);
    }
  });
  const locNames = (id) => {
    const l = locs.get(id);
    if (!l || !l.lines.length) return ['0x' + (l && l.addr ? l.addr.toString(16) : '0')];
    return l.lines.map((ln) => strings[funcs.get(ln.fn).name]).reverse(); // outermost first
  };
  return {
    types: types.map((t) => strings[t.type] + ':' + strings[t.unit]),
    stacks: samples.map((s) => {
      const frames = [];
      for (let i = s.locs.length - 1; i >= 0; i--) frames.push(...locNames(s.locs[i]));
      const labels = {};
      for (const l of s.labels) if (l.str) labels[strings[l.key]] = strings[l.str];
      return { frames, values: s.values, labels };
    }),
  };
}
// Shares of the root-level frames for sample type index ti: {name: share}.
function rootShares(p, ti) {
  const by = {}; let total = 0;
  for (const s of p.stacks) { const v = s.values[ti]; if (!v || !s.frames.length) continue; by[s.frames[0]] = (by[s.frames[0]] || 0) + v; total += v; }
  for (const k in by) by[k] /= total;
  return by;
}
// Share of the total in stacks holding a frame that matches re.
function matchShare(p, ti, re) {
  let total = 0, m = 0;
  for (const s of p.stacks) { const v = s.values[ti] || 0; total += v; if (s.frames.some((f) => re.test(f))) m += v; }
  return total ? m / total : 0;
}
function total(p, ti, pred) {
  let t = 0;
  for (const s of p.stacks) if (!pred || pred(s)) t += s.values[ti] || 0;
  return t;
}
module.exports = { decode, rootShares, matchShare, total };
