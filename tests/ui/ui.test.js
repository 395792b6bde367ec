// ui.test.js: end-to-end tests of the hearth web UI in headless Debian chromium
// (playwright-core, no bundled browser) against a real `hearth server` that
// tests/ui.sh started and filled with test profiles.
//
// Every expectation about what the flame graph shows is computed here from the
// ingested pprof files by an independent reader (pprof.js), so a UI or server
// that draws the wrong frames fails. Screenshots of each view go to $SHOTS.
// Env: BASE (server URL), SHOTS (dir), TESTDATA, SERVER_PID (killed by the
// "unreachable" test, which therefore runs last).
// Prints "ok NAME" / "FAIL NAME: why" per test and ends with "N passed, N failed".
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const { chromium } = require('playwright-core');
const pp = require('./pprof.js');

const BASE = process.env.BASE;
const SHOTS = process.env.SHOTS;
const TD = process.env.TESTDATA;
const CPU = 'process_cpu:cpu:nanoseconds:cpu:nanoseconds';
fs.mkdirSync(SHOTS, { recursive: true });

const load = (f) => pp.decode(fs.readFileSync(path.join(TD, 'pprof', f)));
const v1 = load('cpu.pb.gz'), v2 = load('go-sample.cpu.pb.gz');
const spanP = load('single_group_with_optional_span_id.pb.gz');
const both = { types: v1.types, stacks: v1.stacks.concat(v2.stacks) };
const TI = v1.types.indexOf('cpu:nanoseconds');

let passed = 0, failed = 0;
function assert(cond, msg) { if (!cond) throw new Error(msg); }
function near(a, b, tol, what) { assert(Math.abs(a - b) <= tol, what + ': got ' + a + ', want ' + b + ' (±' + tol + ')'); }

async function main() {
  const userDir = fs.mkdtempSync('/tmp/hearth-ui-chromium-');
  // A fresh profile directory per run (playwright passes it as --user-data-dir).
  const ctx = await chromium.launchPersistentContext(userDir, {
    executablePath: '/usr/bin/chromium', headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run'],
    viewport: { width: 1280, height: 800 }, acceptDownloads: true, colorScheme: 'light',
  });
  ctx.setDefaultTimeout(15000);
  const page = await ctx.newPage();
  let consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push('page error: ' + e.message));

  const H = (expr) => page.evaluate(expr);
  const settled = async () => {
    await page.waitForFunction(() => window.__hearth && window.__hearth.renderSeq > 0 &&
      !document.getElementById('status').textContent.startsWith('Loading'));
  };
  // Opens a URL and waits until the data has been drawn (or a status says why not).
  const open = async (query) => {
    await page.goto(BASE + '/' + (query || ''));
    try {
      await page.waitForFunction(() => window.__hearth, null, { timeout: 5000 });
    } catch (e) {
      throw new Error('the app did not start: ' + (consoleErrors.join(' | ') || e.message));
    }
    await settled();
  };
  const shot = (name) => page.screenshot({ path: path.join(SHOTS, name + '.png'), fullPage: false });
  const status = () => page.textContent('#status');
  const frames = () => H(() => window.__hearth.lastRender.frames);

  async function test(name, fn) {
    consoleErrors = [];
    try {
      await fn();
      passed++; console.log('ok   ' + name);
    } catch (e) {
      failed++; console.log('FAIL ' + name + ': ' + (e && e.message ? e.message.split('\n')[0] : e));
      try { await shot('FAILED-' + name.replace(/\W+/g, '_')); } catch (e2) { /* page gone */ }
    }
  }

  const appURL = '?service=app&type=' + encodeURIComponent(CPU) + '&from=now-1h&until=now';

  await test('page loads without console errors and fills the pickers', async () => {
    await open(appURL);
    const services = await page.$$eval('#service option', (o) => o.map((x) => x.value));
    assert(services.includes('app') && services.includes('spans'), 'services listed: ' + services.join(','));
    const types = await page.$$eval('#ptype option', (o) => o.map((x) => x.value));
    assert(types.includes(CPU), 'profile types listed: ' + types.join(','));
    assert(await page.inputValue('#service') === 'app', 'service picked from the URL');
    await page.waitForFunction(() => window.__hearth.fileLines !== undefined || window.__hearth.fileLinesError !== undefined);
    assert(consoleErrors.length === 0, 'console errors: ' + consoleErrors.join(' | '));
    await shot('01-main-table-flame');
  });

  await test('helpers: time parsing, units, colour groups, levels decoding', async () => {
    const r = await page.evaluate(() => {
      const f = window.__hearth.fn, now = 1700000000000, out = {};
      out.rel = f.parseTime('now-15m', now) === now - 900e3 && f.parseTime('now', now) === now;
      out.units = [f.parseTime('1700000000', now), f.parseTime('1700000000000', now), f.parseTime('1700000000000000', now), f.parseTime('1700000000000000000', now)];
      try { f.parseTime('yesterday-ish', now); out.bad = 'no error'; } catch (e) { out.bad = e.message; }
      out.fmt = [f.fmtValue(1.5e9, 'nanoseconds', 'cpu'), f.fmtValue(3 * 1048576, 'bytes', 'inuse_space'), f.fmtValue(12000, 'count', 'alloc_objects'), f.fmtValue(1, 'count', 'samples')];
      out.short = [f.shortName('github.com/foo/bar.(*T).Method'), f.shortName('net/http.(*conn).serve'), f.shortName('main.main'), f.shortName('org/mozilla/javascript/Kit:.get')];
      out.groups = [f.frameGroup('github.com/foo/bar.(*T).Method'), f.frameGroup('java.util.HashMap.get'), f.frameGroup('std::vector<int>::push_back'), f.frameGroup('libc.so.6')];
      // total(10) -> a(6: self 1) -> b(5); c(4) at depth 1; diff tuples for the same shape
      const t = f.treeFromFlamegraph({ names: ['total', 'a', 'b', 'c'], levels: [{ values: ['0', '10', '0', '0'] }, { values: ['0', '6', '1', '1', '0', '4', '4', '3'] }, { values: ['0', '5', '5', '2'] }] }, false);
      out.tree = t.nodes.map((n) => [n.name, n.x, n.total, n.parent].join(':')).join(' ');
      const d = f.treeFromFlamegraph({ names: ['total', 'a', 'c'], leftTicks: '10', rightTicks: '20',
        levels: [{ values: ['0', '10', '0', '0', '20', '0', '0'] }, { values: ['0', '6', '6', '0', '5', '5', '1', '0', '4', '4', '0', '15', '15', '2'] }] }, true);
      out.diff = d.nodes.map((n) => [n.name, n.l, n.r, n.x, n.parent].join(':')).join(' ');
      return out;
    });
    assert(r.rel, 'relative times');
    assert(JSON.stringify(r.units) === JSON.stringify([1700000000000, 1700000000000, 1700000000000, 1700000000000]), 'unix time units: ' + r.units);
    assert(/cannot read the time/.test(r.bad), 'bad time error: ' + r.bad);
    assert(JSON.stringify(r.fmt) === JSON.stringify(['1.50 s', '3 MiB', '12 k objects', '1 sample']), 'value formats: ' + r.fmt);
    assert(JSON.stringify(r.short) === JSON.stringify(['bar.(*T).Method', 'http.(*conn).serve', 'main.main', 'Kit:.get']), 'short names: ' + r.short);
    assert(JSON.stringify(r.groups) === JSON.stringify(['github.com/foo/bar', 'java.util', 'std', 'libc.so.6']), 'colour groups: ' + r.groups);
    assert(r.tree === 'total:0:10:-1 a:0:6:0 c:6:4:0 b:0:5:1', 'levels decoding: ' + r.tree);
    assert(r.diff === 'total:10:20:0:-1 a:6:5:0:0 c:4:15:11:0', 'diff levels decoding: ' + r.diff);
  });

  await test('flame graph draws the root and the expected top frames with their shares', async () => {
    const r = await H(() => window.__hearth.lastRender);
    assert(r.root === 'total', 'root frame is ' + r.root);
    near(r.total, pp.total(both, TI), 0, 'flame graph total (ns)');
    const W = r.frames.find((f) => f.depth === 0).w;
    const want = pp.rootShares(both, TI);
    const got = {};
    for (const f of r.frames) if (f.depth === 1) got[f.name] = f.w / W;
    for (const [name, share] of Object.entries(want)) {
      assert(got[name] !== undefined, 'top frame ' + name + ' not drawn; drawn: ' + Object.keys(got).join(','));
      near(got[name], share, 0.01, 'width share of ' + name);
    }
    assert(Object.keys(got).length === Object.keys(want).length, 'extra top frames: ' + Object.keys(got).join(','));
  });

  await test('hover shows function, self and total with units and percent', async () => {
    const f = (await frames()).filter((x) => x.depth === 1).sort((a, b) => b.w - a.w)[0];
    const box = await page.locator('#flame').boundingBox();
    await page.mouse.move(box.x + f.x + f.w / 2, box.y + f.y + 9);
    await page.waitForSelector('#tooltip:not([hidden])');
    const tip = await page.textContent('#tooltip');
    assert(tip.includes(f.name), 'tooltip names ' + f.name + ': ' + tip);
    assert(/Total.*(ms|s|µs|min)\s*\(\d+\.\d+%\)/.test(tip), 'tooltip total with unit and percent: ' + tip);
    assert(/Self/.test(tip), 'tooltip self: ' + tip);
    assert(/\.go:\d+/.test(tip), 'tooltip has file:line from the merged pprof: ' + tip);
    await shot('02-hover-tooltip');
    await page.mouse.move(1, 1);
  });

  await test('click zooms into a frame, breadcrumb and reset zoom out; zoom is in the URL', async () => {
    const fs0 = await frames();
    const W = fs0.find((f) => f.depth === 0).w;
    const target = fs0.filter((x) => x.depth === 2).sort((a, b) => b.w - a.w)[0];
    assert(target && target.w < W, 'a depth-2 frame narrower than the root to zoom into');
    const box = await page.locator('#flame').boundingBox();
    const before = await H(() => window.__hearth.renderSeq);
    await page.mouse.click(box.x + target.x + target.w / 2, box.y + target.y + 9);
    await page.waitForFunction((b) => window.__hearth.renderSeq > b, before);
    const z = await H(() => window.__hearth.lastRender);
    assert(z.zoom === target.name, 'zoomed frame ' + z.zoom + ', want ' + target.name);
    const zf = z.frames.find((f) => f.depth === 2 && f.name === target.name);
    near(zf.x, 0, 0.5, 'zoomed frame x'); near(zf.w, W, 1, 'zoomed frame width');
    assert(new URL(page.url()).searchParams.get('zoom').endsWith(target.name), 'zoom in URL: ' + page.url());
    const crumbs = await page.$$eval('#breadcrumb a', (a) => a.map((x) => x.textContent));
    assert(crumbs[0] === 'all' && crumbs[crumbs.length - 1] === target.name, 'breadcrumb: ' + crumbs.join(' > '));
    await shot('03-zoomed');
    await page.goBack();
    await settled();
    await page.waitForFunction(() => window.__hearth.lastRender && window.__hearth.lastRender.zoom === 'total');
    await page.goForward();
    await page.waitForFunction((n) => window.__hearth.lastRender && window.__hearth.lastRender.zoom === n, target.name);
    await page.click('#reset');
    const r = await H(() => window.__hearth.lastRender);
    assert(r.zoom === 'total', 'after reset, zoom is ' + r.zoom);
    assert(!new URL(page.url()).searchParams.get('zoom'), 'zoom gone from URL');
  });

  await test('search highlights matching frames and shows their combined share', async () => {
    const re = 'runtime\\.main';
    await page.fill('#search', re);
    await page.waitForFunction(() => window.__hearth.lastSearch && /match/.test(document.getElementById('searchinfo').textContent));
    const s = await H(() => window.__hearth.lastSearch);
    near(s.share, pp.matchShare(both, TI, new RegExp(re, 'i')), 0.001, 'combined share of matches');
    const info = await page.textContent('#searchinfo');
    assert(info.includes((100 * s.share).toFixed(2) + '%'), 'search info shows the share: ' + info);
    assert(new URL(page.url()).searchParams.get('search') === re, 'search in URL');
    await shot('04-search');
  });

  await test('URL round-trips: reload restores view, zoom, search and sort', async () => {
    const target = (await frames()).filter((x) => x.depth === 2).sort((a, b) => b.w - a.w)[0];
    const box = await page.locator('#flame').boundingBox();
    await page.mouse.click(box.x + target.x + target.w / 2, box.y + target.y + 9);
    await page.click('#fntable th[data-key=total]');
    const url = page.url();
    const before = await H(() => ({ zoom: window.__hearth.lastRender.zoom, frames: window.__hearth.lastRender.frames.length, search: document.getElementById('search').value }));
    await page.goto('about:blank');
    await open(url.slice(BASE.length + 1));
    const after = await H(() => ({ zoom: window.__hearth.lastRender.zoom, frames: window.__hearth.lastRender.frames.length, search: document.getElementById('search').value }));
    assert(JSON.stringify(before) === JSON.stringify(after), 'before ' + JSON.stringify(before) + ' after ' + JSON.stringify(after));
    assert(page.url() === url, 'URL changed on reload: ' + url + ' -> ' + page.url());
    const th = await page.textContent('#fntable th[data-key=total]');
    assert(th.includes('▼'), 'table still sorted by total: ' + th);
  });

  await test('function table: sorted by self, sortable, filter, linked to the flame graph', async () => {
    await open(appURL + '&view=table');
    const rows = await page.$$eval('#fntable tbody tr', (r) => r.map((x) => x.dataset.name));
    const selfs = {};
    for (const s of both.stacks) { const leaf = s.frames[s.frames.length - 1]; selfs[leaf] = (selfs[leaf] || 0) + (s.values[TI] || 0); }
    const top = Object.entries(selfs).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0][0];
    assert(rows[0] === top, 'first row by self is ' + rows[0] + ', want ' + top);
    await shot('05-table');
    await page.fill('#filter', 'runtime.main');
    const filtered = await page.$$eval('#fntable tbody tr', (r) => r.map((x) => x.dataset.name));
    assert(filtered.length >= 1 && filtered.every((n) => n.toLowerCase().includes('runtime.main')), 'filtered rows: ' + filtered.join(','));
    await page.fill('#filter', '');
    await page.click('#tabs button[data-view=both]');
    await page.click('#fntable tbody tr:nth-child(1)');
    const search = await page.inputValue('#search');
    assert(search.includes(top.replace(/\./g, '\\.')), 'clicking a row highlights it in the flame graph: search=' + search);
    await page.fill('#search', '');
  });

  await test('sandwich view shows callers above and callees below a function', async () => {
    await open(appURL + '&view=sandwich&fn=runtime.main');
    const r = await H(() => ({ callees: window.__hearth.lastRender, callers: window.__hearth.lastCallers }));
    assert(r.callees.root === 'runtime.main', 'callees root ' + r.callees.root);
    assert(r.callers.root === 'runtime.main', 'callers root ' + r.callers.root);
    const kids = new Set(), want = new Set();
    for (const f of r.callees.frames) if (f.depth === 1) kids.add(f.name);
    for (const s of both.stacks) { const i = s.frames.indexOf('runtime.main'); if (i >= 0 && i + 1 < s.frames.length && s.values[TI]) want.add(s.frames[i + 1]); }
    assert([...want].every((n) => kids.has(n)), 'callees of runtime.main: got ' + [...kids] + ' want ' + [...want]);
    near(r.callees.total, pp.total(both, TI, (s) => s.frames.includes('runtime.main')), 0, 'sandwich total');
    await shot('06-sandwich');
  });

  await test('diff view of two label selectors: red/green graph, legend, table ranked by change', async () => {
    await open(appURL + '&view=diff&lquery=' + encodeURIComponent('{version="v1"}') + '&rquery=' + encodeURIComponent('{version="v2"}'));
    const r = await H(() => window.__hearth.lastRender);
    assert(r.root === 'total' && r.frames.length > 3, 'diff graph drawn: ' + r.frames.length + ' frames');
    near(r.total, pp.total(both, TI), 0, 'diff width = left + right');
    assert(await page.isVisible('#legend'), 'legend visible');
    const heads = await page.$$eval('#fntable th', (t) => t.map((x) => x.textContent));
    assert(heads.some((h) => /Change/.test(h)), 'change column: ' + heads);
    const changes = await page.$$eval('#fntable tbody tr td:nth-child(4)', (t) => t.map((x) => Math.abs(parseFloat(x.textContent))));
    for (let i = 1; i < changes.length; i++) assert(changes[i] <= changes[i - 1] + 1e-9, 'ranked by |change|: ' + changes.slice(0, 10));
    // runtime.mcall only exists on the left: it must be green (smaller on the right)
    const px = await page.evaluate(() => {
      const f = window.__hearth.lastRender.frames.find((x) => x.name === 'runtime.mcall');
      if (!f) return null;
      const c = document.getElementById('flame'), d = window.devicePixelRatio || 1;
      return Array.from(c.getContext('2d').getImageData(Math.round((f.x + 2) * d), Math.round((f.y + 3) * d), 1, 1).data);
    });
    assert(px && px[1] > px[0] + 40, 'runtime.mcall drawn green, pixel ' + px);
    await shot('07-diff');
  });

  await test('diff of two time ranges of one service', async () => {
    // v1 was ingested 20 minutes ago, v2 5 minutes ago (tests/ui.sh)
    await open(appURL + '&view=diff&lfrom=now-30m&luntil=now-15m&rfrom=now-10m&runtil=now');
    const r = await H(() => window.__hearth.lastRender);
    near(r.left, pp.total(v1, TI), 0, 'left side total (v1)');
    near(r.right, pp.total(v2, TI), 0, 'right side total (v2)');
    assert(await page.inputValue('#lfrom') === 'now-30m' && await page.inputValue('#runtil') === 'now', 'side ranges shown in the fields');
    // folded export of a diff: "stack LEFT RIGHT" lines (difffolded.pl), each column summing to its side
    await page.click('#exportbtn');
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click('[data-export=folded]')]);
    assert(/\.diff\.folded\.txt$/.test(dl.suggestedFilename()), 'diff folded file name: ' + dl.suggestedFilename());
    const rows = fs.readFileSync(await dl.path()).toString().trim().split('\n').map((l) => l.split(' '));
    assert(rows.every((c) => c.length >= 3 && /^\d+$/.test(c[c.length - 1]) && /^\d+$/.test(c[c.length - 2])), 'two counts per line');
    near(rows.reduce((a, c) => a + Number(c[c.length - 2]), 0), pp.total(v1, TI), 0, 'diff folded left column = v1 total');
    near(rows.reduce((a, c) => a + Number(c[c.length - 1]), 0), pp.total(v2, TI), 0, 'diff folded right column = v2 total');
  });

  await test('label autocomplete suggests names, then values, and runs the selector', async () => {
    await open(appURL + '&view=flame');
    await page.click('#selector');
    await page.keyboard.type('{');
    await page.waitForSelector('#autocomplete li:text-is("version")');
    await page.click('#autocomplete li:text-is("version")');
    await page.waitForSelector('#autocomplete li:text-is("v2")');
    const vals = await page.$$eval('#autocomplete li', (l) => l.map((x) => x.textContent).sort());
    assert(JSON.stringify(vals) === '["v1","v2"]', 'values of version: ' + vals);
    await page.keyboard.type('v2');
    await shot('14-autocomplete');
    await page.keyboard.press('Tab');
    assert(await page.inputValue('#selector') === '{version="v2"}', 'selector text: ' + await page.inputValue('#selector'));
    const seq = await H(() => window.__hearth.renderSeq);
    await page.keyboard.press('Enter');
    await page.waitForFunction((s) => window.__hearth.renderSeq > s && !document.getElementById('status').textContent.startsWith('Loading'), seq);
    near(await H(() => window.__hearth.lastRender.total), pp.total(v2, TI), 0, 'total of {version="v2"}');
    assert(new URL(page.url()).searchParams.get('query') === '{version="v2"}', 'selector in URL');
  });

  await test('drag on the timeline narrows the range', async () => {
    await open(appURL + '&view=flame');
    const box = await page.locator('#timeline').boundingBox();
    const seq = await H(() => window.__hearth.renderSeq);
    // the last ~9 minutes hold v2 (5 minutes old) but not v1 (20 minutes old)
    await page.mouse.move(box.x + box.width * 0.85, box.y + 40);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.95, box.y + 40, { steps: 4 });
    await page.mouse.move(box.x + box.width - 1, box.y + 40, { steps: 2 });
    await page.mouse.up();
    await page.waitForFunction((s) => window.__hearth.renderSeq > s && !document.getElementById('status').textContent.startsWith('Loading'), seq);
    const q = new URL(page.url()).searchParams;
    assert(/^\d{13}$/.test(q.get('from')) && /^\d{13}$/.test(q.get('until')), 'absolute range in URL: ' + q.get('from') + '..' + q.get('until'));
    near(Number(q.get('until')) - Number(q.get('from')), 0.15 * 3600e3, 60e3, 'range length (ms)');
    near(await H(() => window.__hearth.lastRender.total), pp.total(v2, TI), 0, 'total in the narrowed range');
    assert(await page.inputValue('#range') === 'custom', 'range picker says custom');
    await shot('13-timeline-zoomed');
  });

  await test('span selector shows only the samples of one span', async () => {
    await open('?service=spans&type=' + encodeURIComponent(CPU) + '&from=now-1h&until=now&view=flame');
    const all = await H(() => window.__hearth.lastRender.total);
    near(all, pp.total(spanP, TI), 0, 'whole profile total');
    await page.fill('#span', '239');
    const seq = await H(() => window.__hearth.renderSeq);
    await page.press('#span', 'Enter');
    await page.waitForFunction((s) => window.__hearth.renderSeq > s && !document.getElementById('status').textContent.startsWith('Loading'), seq);
    const r = await H(() => window.__hearth.lastRender);
    near(r.total, pp.total(spanP, TI, (s) => s.labels.span_id === '239'), 0, 'span 239 total');
    assert(new URL(page.url()).searchParams.get('span') === '239', 'span in URL');
    // the pprof export of a span view holds that span's samples only
    await page.click('#exportbtn');
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click('[data-export=pprof]')]);
    const sp = pp.decode(zlib.gunzipSync(fs.readFileSync(await dl.path())));
    near(pp.total(sp, sp.types.indexOf('cpu:nanoseconds')), r.total, 0, 'span pprof export total');
    await shot('08-span');
  });

  await test('exports: folded and flamebearer match the graph, SVG is drawn, pprof is a gzip pprof', async () => {
    await open(appURL + '&view=flame');
    const total = await H(() => window.__hearth.lastRender.total);
    const grab = async (kind) => {
      await page.click('#exportbtn');
      const [dl] = await Promise.all([page.waitForEvent('download'), page.click('[data-export=' + kind + ']')]);
      return fs.readFileSync(await dl.path());
    };
    const folded = (await grab('folded')).toString();
    const sum = folded.trim().split('\n').reduce((a, l) => a + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    near(sum, total, 0, 'folded export sums to the total');
    const fb = JSON.parse((await grab('json')).toString());
    near(fb.flamebearer.numTicks, total, 0, 'flamebearer numTicks');
    assert(fb.flamebearer.names[0] === 'total' && fb.metadata.format === 'single', 'flamebearer shape');
    const svg = (await grab('svg')).toString();
    assert(svg.includes('<svg') && svg.includes('runtime.main'), 'SVG with frames');
    const pb = await grab('pprof');
    assert(pb[0] === 0x1f && pb[1] === 0x8b, 'pprof export is gzip');
    const p = pp.decode(zlib.gunzipSync(pb));
    const ti = p.types.indexOf('cpu:nanoseconds');
    assert(ti >= 0, 'pprof export has the cpu:nanoseconds sample type: ' + p.types);
    near(pp.total(p, ti), total, 0, 'pprof export total');
  });

  await test('errors: bad selector shows the server message; no data says so', async () => {
    await open(appURL + '&query=' + encodeURIComponent('{version=~"("}'));
    const s = await status();
    assert(await page.$eval('#status', (e) => e.className === 'error'), 'error style');
    assert(/failed \(invalid_argument\): .*version/.test(s), 'error with the Connect code and the server\'s reason: ' + s);
    await shot('09-error-bad-selector');
    await open(appURL + '&query=' + encodeURIComponent('{version="nope"}'));
    assert(/No data/.test(await status()), 'no-data message: ' + (await status()));
    await shot('10-no-data');
    await open(appURL + '&span=not-hex');
    assert(/span ID is hex digits/.test(await status()), 'bad span ID message: ' + (await status()));
    await open('?from=now-30d&until=now-29d');
    assert(/no service has sent profiles/.test(await status()), 'empty-range message: ' + (await status()));
  });

  await test('dark theme and a 10,000-node flame graph stay readable and responsive', async () => {
    await open('?service=large&type=' + encodeURIComponent(CPU) + '&from=now-1h&until=now&view=both&theme=dark');
    const r = await H(() => window.__hearth.lastRender);
    assert(r.nodes >= 5000, 'large graph has ' + r.nodes + ' nodes');
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert(bg !== 'rgb(255, 255, 255)', 'dark background: ' + bg);
    // figures, not pass/fail: redraw and hover cost on this graph
    const fig = await page.evaluate(() => {
      const ms = [];
      for (let i = 0; i < 5; i++) ms.push(window.__hearth.redraw());
      ms.sort((a, b) => a - b);
      return { nodes: window.__hearth.lastRender.nodes, frames: window.__hearth.lastRender.frames.length, redrawMs: ms[2], flameMs: window.__hearth.lastRender.drawMs,
        queryMs: window.__hearth.timings.queryMs, decodeMs: window.__hearth.timings.decodeMs };
    });
    // the thousands of thin children of main.next show as one bar with a tooltip
    const run = (await H(() => window.__hearth.lastRender.runs)).sort((a, b) => b.w - a.w)[0];
    assert(run && run.count > 1000, 'a bar of thin frames: ' + JSON.stringify(run));
    const box = await page.locator('#flame').boundingBox();
    await page.mouse.move(box.x + run.x + run.w / 2, box.y + run.depth * 18 + 9);
    await page.waitForSelector('#tooltip:not([hidden])');
    const tip = await page.textContent('#tooltip');
    assert(tip.includes(run.count + ' frames too narrow'), 'thin-frame tooltip: ' + tip);
    console.log('# large graph: ' + fig.nodes + ' nodes, ' + fig.frames + ' frames drawn; median full redraw (graph + table) ' +
      fig.redrawMs.toFixed(1) + ' ms, of which canvas ' + fig.flameMs.toFixed(1) + ' ms; query + JSON ' + fig.queryMs.toFixed(0) +
      ' ms, levels decoding ' + fig.decodeMs.toFixed(0) + ' ms');
    await shot('11-dark-large');
  });

  await test('memory profiles: in-use bytes by default, sizes and object counts with units', async () => {
    const heap = load('heap.pb.gz');
    await open('?service=heap&from=now-1h&until=now&view=both');
    const type = await page.inputValue('#ptype');
    assert(/^memory:inuse_space:bytes:/.test(type), 'default memory type is in-use bytes: ' + type);
    near(await H(() => window.__hearth.lastRender.total), pp.total(heap, heap.types.indexOf('inuse_space:bytes')), 0, 'in-use bytes total');
    const cell = await page.textContent('#fntable tbody tr:nth-child(1) td:nth-child(2)');
    assert(/\d (B|KiB|MiB|GiB) \(/.test(cell), 'bytes with a unit: ' + cell);
    await shot('17-memory-inuse');
    const types = await page.$$eval('#ptype option', (o) => o.map((x) => x.value));
    const objects = types.find((t) => /^memory:alloc_objects:count:/.test(t));
    assert(objects, 'alloc_objects offered: ' + types);
    const seq = await H(() => window.__hearth.renderSeq);
    await page.selectOption('#ptype', objects);
    await page.waitForFunction((s) => window.__hearth.renderSeq > s && !document.getElementById('status').textContent.startsWith('Loading'), seq);
    near(await H(() => window.__hearth.lastRender.total), pp.total(heap, heap.types.indexOf('alloc_objects:count')), 0, 'allocated objects total');
    assert(/Self \(objects\)/.test(await page.textContent('#fntable thead')), 'objects in the table header');
    const f = (await frames()).filter((x) => x.depth === 1).sort((a, b) => b.w - a.w)[0];
    const box = await page.locator('#flame').boundingBox();
    await page.mouse.move(box.x + f.x + f.w / 2, box.y + f.y + 9);
    await page.waitForSelector('#tooltip:not([hidden])');
    const tip = await page.textContent('#tooltip');
    assert(/Total.*objects \(\d/.test(tip), 'tooltip counts objects: ' + tip);
    await page.mouse.move(1, 1);
  });

  await test('a function keeps its colour between renders and services', async () => {
    const colourOf = (name) => page.evaluate((n) => {
      const f = window.__hearth.lastRender.frames.find((x) => x.name === n);
      if (!f) return null;
      const c = document.getElementById('flame'), d = window.devicePixelRatio || 1;
      return Array.from(c.getContext('2d').getImageData(Math.round((f.x + 1) * d), Math.round((f.y + 3) * d), 1, 1).data).join(',');
    }, name);
    await open(appURL + '&view=flame');
    const a = await colourOf('runtime.main');
    await open('?service=spans&type=' + encodeURIComponent(CPU) + '&from=now-1h&until=now&view=flame');
    const b = await colourOf('runtime.main');
    await open(appURL + '&view=flame');
    const c = await colourOf('runtime.main');
    assert(a && a === b && b === c, 'runtime.main colours: ' + [a, b, c].join(' / '));
    const m = await colourOf('main.main');
    assert(m && m !== a, 'another package gets another colour: ' + m + ' vs ' + a);
  });

  await test('custom range and theme switch', async () => {
    await open(appURL + '&view=flame');
    await page.selectOption('#range', 'custom');
    assert(await page.isVisible('#from'), 'custom range fields shown');
    await page.fill('#from', 'now-10m');
    await page.fill('#until', 'now');
    const seq = await H(() => window.__hearth.renderSeq);
    await page.press('#from', 'Enter');
    await page.waitForFunction((s) => window.__hearth.renderSeq > s && !document.getElementById('status').textContent.startsWith('Loading'), seq);
    assert(new URL(page.url()).searchParams.get('from') === 'now-10m', 'from in URL: ' + page.url());
    near(await H(() => window.__hearth.lastRender.total), pp.total(v2, TI), 0, 'only v2 (5 minutes old) in the last 10 minutes');
    const before = await page.evaluate(() => document.documentElement.dataset.theme);
    await page.click('#theme');
    const after = await page.evaluate(() => ({ theme: document.documentElement.dataset.theme, bg: getComputedStyle(document.body).backgroundColor }));
    assert(before === 'light' && after.theme === 'dark' && after.bg !== 'rgb(255, 255, 255)', 'theme switched: ' + before + ' -> ' + JSON.stringify(after));
    await shot('16-dark-custom-range');
    await page.click('#theme');
  });

  await test('laptop-size window: no horizontal scrolling, graph fills the width', async () => {
    await page.setViewportSize({ width: 1024, height: 640 });
    await open(appURL);
    const m = await page.evaluate(() => ({ sw: document.scrollingElement.scrollWidth, iw: window.innerWidth,
      cw: document.getElementById('flame').clientWidth, root: window.__hearth.lastRender.frames[0] }));
    assert(m.sw <= m.iw, 'page wider than the window: ' + m.sw + ' > ' + m.iw);
    assert(m.cw > 500 && Math.abs(m.root.w - m.cw) <= 1, 'root frame spans the graph: ' + JSON.stringify(m));
    await shot('15-laptop-1024x640');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  await test('an 11,111-node graph: all nodes decoded, zoom and hover work (figures printed)', async () => {
    await open('?service=wide&type=' + encodeURIComponent(CPU) + '&from=now-1h&until=now&view=both');
    const r = await H(() => window.__hearth.lastRender);
    assert(r.nodes === 1 + 1 + 100 + 1000 + 10000, 'nodes: ' + r.nodes);
    const fig = await page.evaluate(() => {
      const ms = [];
      for (let i = 0; i < 7; i++) ms.push(window.__hearth.redraw());
      ms.sort((a, b) => a - b);
      const c = document.getElementById('flame'), box = c.getBoundingClientRect();
      const t0 = performance.now();
      for (let i = 0; i < 200; i++)
        c.dispatchEvent(new MouseEvent('mousemove', { clientX: box.left + (i * 37) % box.width, clientY: box.top + 18 * (1 + i % 3) + 9, bubbles: true }));
      const hover = (performance.now() - t0) / 200;
      return { frames: window.__hearth.lastRender.frames.length, redraw: ms[3], hover, decode: window.__hearth.timings.decodeMs, query: window.__hearth.timings.queryMs };
    });
    console.log('# 11,111-node graph: ' + fig.frames + ' frames drawn; median redraw ' + fig.redraw.toFixed(1) + ' ms; hover ' +
      fig.hover.toFixed(2) + ' ms per mousemove; query + JSON ' + fig.query.toFixed(0) + ' ms, decoding ' + fig.decode.toFixed(0) + ' ms');
    assert(fig.frames > 500, 'many frames drawn: ' + fig.frames);
    const svc = (await frames()).filter((f) => f.depth === 2).sort((a, b) => b.w - a.w)[0];
    const box = await page.locator('#flame').boundingBox();
    await page.mouse.click(box.x + svc.x + svc.w / 2, box.y + svc.y + 9);
    await page.waitForFunction((n) => window.__hearth.lastRender.zoom === n, svc.name);
    const leaves = (await frames()).filter((f) => f.depth === 4);
    assert(leaves.length === 100 && leaves.every((f) => f.name.startsWith('leaf_' + svc.name.slice(4) + '_')), 'zoomed service shows its 100 leaves: ' + leaves.length);
    await page.mouse.move(1, 1);
    await shot('18-wide-zoomed');
  });

  await test('unreachable server: a clear message, no crash', async () => {
    await open(appURL);
    process.kill(Number(process.env.SERVER_PID), 'SIGKILL');
    await new Promise((r) => setTimeout(r, 300));
    await page.click('#refresh');
    await page.waitForFunction(() => /Cannot reach/.test(document.getElementById('status').textContent));
    await shot('12-unreachable');
  });

  await ctx.close();
  fs.rmSync(userDir, { recursive: true, force: true });
}

main().catch((e) => { failed++; console.log('FAIL harness: ' + e.message); })
  .finally(() => { console.log(passed + ' passed, ' + failed + ' failed'); process.exit(failed ? 1 : 0); });
