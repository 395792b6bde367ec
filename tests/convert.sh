#!/usr/bin/env bash
# convert.sh: black-box tests of `hearth convert` on the shared test data.
#  - every pprof -> folded, for every sample type: the folded total equals the
#    sum of that type's values, computed independently by a small protobuf
#    reader in Python (not our decoder);
#  - pprof -> pprof -> folded equals pprof -> folded (nothing lost or changed);
#  - every perf script file -> folded equals stackcollapse-perf.pl --pid's
#    output (expected-collapsed/*-collapsed-pid.txt), byte for byte;
#  - speedscope / flamebearer output is valid JSON, SVG is well-formed XML,
#    and its inline script searches and zooms correctly (node + a DOM shim);
#  - stdin input, -o output, --help, usage errors;
#  - broken input (truncated, random, bad gzip, gzip bomb, wrong wire type,
#    bad string reference, invalid UTF-8, empty): exactly one error line
#    "hearth convert: FILE: ..." on stderr, nothing on stdout, exit 1.
# Ends with "N passed, N failed".
set -u
BIN=${HEARTH_BIN:-build/hearth}
TD=${HEARTH_TESTDATA:-../shared/testdata}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

[ -x "$BIN" ] || { echo "FAIL: $BIN not built"; echo "0 passed, 1 failed"; exit 1; }
[ -d "$TD/pprof" ] || { echo "FAIL: test data not found at $TD"; echo "0 passed, 1 failed"; exit 1; }
# A private copy: the shared tree's binary may be relinked by a parallel build while we run.
cp "$BIN" "$tmp/hearth" && BIN=$tmp/hearth

# Independent pprof reader: prints "TYPE SUM" per sample type, then "default TYPE".
cat >"$tmp/psum.py" <<'EOF'
import gzip, sys
def varint(b, i):
    r = s = 0
    while True:
        c = b[i]; i += 1
        r |= (c & 0x7f) << s; s += 7
        if c < 0x80: return r, i
def fields(b):
    i = 0
    while i < len(b):
        k, i = varint(b, i); f, w = k >> 3, k & 7
        if w == 0: v, i = varint(b, i)
        elif w == 2:
            n, i = varint(b, i); v = b[i:i + n]; i += n
        elif w == 1: v = b[i:i + 8]; i += 8
        elif w == 5: v = b[i:i + 4]; i += 4
        else: raise ValueError("wire type %d" % w)
        yield f, w, v
def ints(w, v):
    if w == 0: return [v]
    out, i = [], 0
    while i < len(v):
        x, i = varint(v, i); out.append(x)
    return out
data = open(sys.argv[1], 'rb').read()
if data[:2] == b'\x1f\x8b': data = gzip.decompress(data)
strings, types, samples, default = [], [], [], 0
for f, w, v in fields(data):
    if f == 6: strings.append(v.decode('utf-8', 'replace'))
    elif f == 1:
        t = 0
        for ff, ww, vv in fields(v):
            if ff == 1: t = vv
        types.append(t)
    elif f == 2:
        vals = []
        for ff, ww, vv in fields(v):
            if ff == 2: vals += ints(ww, vv)
        samples.append(vals)
    elif f == 14: default = v
for k, t in enumerate(types):
    s = 0
    for vals in samples:
        x = vals[k] if k < len(vals) else 0
        if x >= 1 << 63: x -= 1 << 64
        s += x
    print(strings[t], s)
print("default", strings[default] if default else "")
EOF

total_of() { python3 -c 'import sys; print(sum(int(l.rsplit(" ", 1)[1]) for l in open(sys.argv[1], encoding="utf-8", errors="replace") if l.strip()))' "$1"; }

# 1, 2: pprof totals per type, and pprof -> pprof -> folded.
for f in "$TD"/pprof/*; do
  name=$(basename "$f")
  if ! python3 "$tmp/psum.py" "$f" >"$tmp/sums" 2>"$tmp/err"; then
    bad "$name: the Python reference reader failed: $(tail -n 1 "$tmp/err")"; continue
  fi
  while read -r type sum; do
    [ "$type" = default ] && continue
    if ! "$BIN" convert "$f" --to folded --type "$type" -o "$tmp/out.folded" 2>"$tmp/err"; then
      bad "$name --type $type: $(cat "$tmp/err")"; continue
    fi
    got=$(total_of "$tmp/out.folded")
    if [ "$got" = "$sum" ]; then ok; else bad "$name --type $type: folded total $got, expected $sum"; fi
  done <"$tmp/sums"
  # the default type: pprof's default_sample_type, else the last
  def=$(awk '$1 == "default" { print $2 }' "$tmp/sums")
  [ -z "$def" ] && def=$(grep -v '^default' "$tmp/sums" | tail -n 1 | awk '{ print $1 }')
  want=$(awk -v t="$def" '$1 == t { print $2; exit }' "$tmp/sums")
  "$BIN" convert "$f" --to folded >"$tmp/default.folded" 2>"$tmp/err"
  got=$(total_of "$tmp/default.folded")
  if [ "$got" = "$want" ]; then ok; else bad "$name: default type ($def) total $got, expected $want"; fi
  # round trip through our own pprof encoder
  if "$BIN" convert "$f" --to pprof -o "$tmp/rt.pb.gz" 2>"$tmp/err" &&
     "$BIN" convert "$tmp/rt.pb.gz" --to folded -o "$tmp/rt.folded" 2>>"$tmp/err"; then
    if cmp -s "$tmp/default.folded" "$tmp/rt.folded"; then ok; else bad "$name: pprof -> pprof -> folded differs"; fi
    # and the re-encoded file is still read the same by the reference reader
    python3 "$tmp/psum.py" "$tmp/rt.pb.gz" >"$tmp/sums2" 2>/dev/null
    if cmp -s "$tmp/sums" "$tmp/sums2"; then ok; else bad "$name: re-encoded pprof has different sums: $(diff "$tmp/sums" "$tmp/sums2" | head -n 4 | tr '\n' ' ')"; fi
  else
    bad "$name: pprof round trip failed: $(cat "$tmp/err")"
  fi
done

# 3: perf script vs stackcollapse-perf.pl --pid.
for f in "$TD"/perf-script/perf-*.txt; do
  b=$(basename "$f" .txt)
  exp="$TD/perf-script/expected-collapsed/$b-collapsed-pid.txt"
  [ -f "$exp" ] || { bad "$b: no expected file"; continue; }
  if "$BIN" convert "$f" --to folded -o "$tmp/perf.folded" 2>"$tmp/err" && cmp -s "$tmp/perf.folded" "$exp"; then
    ok
  else
    bad "$b: differs from stackcollapse-perf.pl: $(cat "$tmp/err") $(diff "$tmp/perf.folded" "$exp" | head -n 4 | tr '\n' ' ')"
  fi
done

# Folded and speedscope inputs, and the JSON/SVG writers on everything.
for f in "$TD"/collapsed/*.txt "$TD"/speedscope/*.json "$TD"/pprof/cpu.pb.gz "$TD"/pprof/heap.pb.gz "$TD"/pprof/invalid_utf8.pb.gz "$TD"/perf-script/perf-vertx-stacks-01.txt; do
  name=$(basename "$f")
  for to in speedscope flamebearer; do
    if "$BIN" convert "$f" --to $to -o "$tmp/out.json" 2>"$tmp/err" &&
       python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$tmp/out.json" 2>>"$tmp/err"; then ok; else bad "$name --to $to: $(tail -n 2 "$tmp/err")"; fi
  done
  if "$BIN" convert "$f" --to svg -o "$tmp/out.svg" 2>"$tmp/err"; then
    if command -v xmllint >/dev/null; then
      if xmllint --noout "$tmp/out.svg" 2>"$tmp/err"; then ok; else bad "$name --to svg: not well-formed: $(head -n 2 "$tmp/err")"; fi
    else
      python3 -c 'import sys, xml.dom.minidom as m; m.parse(sys.argv[1])' "$tmp/out.svg" && ok || bad "$name --to svg: not well-formed"
    fi
  else
    bad "$name --to svg: $(cat "$tmp/err")"
  fi
  # speedscope round trip keeps the folded stacks
  "$BIN" convert "$f" --to folded -o "$tmp/a.folded" 2>/dev/null
  "$BIN" convert "$f" --to speedscope 2>/dev/null | "$BIN" convert - --to folded -o "$tmp/b.folded" 2>"$tmp/err"
  if cmp -s "$tmp/a.folded" "$tmp/b.folded"; then ok; else bad "$name: folded -> speedscope -> folded differs"; fi
done

# Text formats -> pprof -> folded keeps every stack and count.
for f in "$TD"/collapsed/*.txt "$TD"/speedscope/*.json "$TD"/perf-script/perf-*.txt; do
  name=$(basename "$f")
  if "$BIN" convert "$f" --to pprof -o "$tmp/t.pb.gz" 2>"$tmp/err" && "$BIN" convert "$tmp/t.pb.gz" --to folded -o "$tmp/t1.folded" 2>>"$tmp/err" &&
     "$BIN" convert "$f" --to folded -o "$tmp/t2.folded" 2>>"$tmp/err" && cmp -s "$tmp/t1.folded" "$tmp/t2.folded"; then
    ok
  else
    bad "$name -> pprof -> folded differs: $(head -c 300 "$tmp/err")"
  fi
done

# The SVG's inline script, run by node against a small DOM shim: search
# reports the matched share (nested matches once), click-zoom rescales.
cat >"$tmp/svgjs.js" <<'EOF'
// Runs the inline script of an SVG flame graph against a minimal DOM, then
// exercises search and zoom; prints what it saw. Usage: node svgjs.js FILE
const fs = require('fs'), vm = require('vm');
const svgText = fs.readFileSync(process.argv[2], 'utf8');
const script = svgText.slice(svgText.indexOf('<![CDATA[') + 9, svgText.indexOf(']]>'));
function el(attrs) {
  return { attrs: Object.assign({}, attrs), style: {}, firstChild: { nodeValue: ' ' },
    getAttribute(k) { return this.attrs[k] === undefined ? null : String(this.attrs[k]); },
    setAttribute(k, v) { this.attrs[k] = v; }, textContent: '' };
}
const frames = [];
const re = /<g class="f" n="([^"]*)"><title>([^<]*)<\/title><rect x="([^"]+)" y="([^"]+)" width="([^"]+)" height="[^"]+" fill="([^"]+)"/g;
let m;
while ((m = re.exec(svgText))) {
  const rect = el({ x: +m[3], y: +m[4], width: +m[5], fill: m[6] }), text = el({}), title = el({});
  title.textContent = m[2];
  const g = el({ n: m[1].replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&') });
  g.classList = { contains: (c) => c === 'f' };
  g.parentNode = null;
  g.getElementsByTagName = (t) => [t === 'rect' ? rect : t === 'text' ? text : title];
  g.rect = rect; g.text = text;
  frames.push(g);
}
const ids = {};
for (const id of ['details', 'matched', 'unzoom', 'search']) ids[id] = el({});
const width = +/<svg[^>]* width="(\d+)"/.exec(svgText)[1];
const root = el({ width: width });
root.addEventListener = () => {};
const listeners = {};
const context = {
  document: { documentElement: root, getElementById: (id) => ids[id], getElementsByClassName: () => frames },
  window: { addEventListener: (ev, fn) => { listeners[ev] = fn; } },
  prompt: () => null, console,
};
vm.createContext(context);
vm.runInContext(script, context);
listeners.load();
const out = { frames: frames.length };
const byName = (n) => frames.find((f) => f.attrs.n === n);
const term = process.argv[3], zoomTo = process.argv[4];
if (term) { vm.runInContext('search(' + JSON.stringify(term) + ')', context); out.matched = ids.matched.firstChild.nodeValue; }
if (zoomTo) {
  context.zoomFrame = byName(zoomTo);
  vm.runInContext('zoom(frames.filter(function (f) { return f.g === zoomFrame; })[0])', context);
  out.zoom = {};
  for (const f of frames) out.zoom[f.attrs.n] = f.style.display === 'none' ? 'hidden' : (+f.rect.attrs.width).toFixed(1) + (f.attrs.opacity === '0.5' ? ' dim' : '');
  vm.runInContext('unzoom()', context);
  out.unzoomed = (+byName(zoomTo).rect.attrs.width).toFixed(1);
}
console.log(JSON.stringify(out));
EOF
printf 'a;b;c 5\na;b;d 4\na;b 5\na;e;f 2\n' >"$tmp/ex.folded"
if ! command -v node >/dev/null; then
  bad "node is not installed (scripts/deps installs nodejs): cannot check the SVG script"
elif "$BIN" convert "$tmp/ex.folded" --to svg -o "$tmp/ex.svg" 2>"$tmp/err"; then
  got=$(node "$tmp/svgjs.js" "$tmp/ex.svg" 'c|d' b 2>&1)
  want='{"frames":7,"matched":"Matched: 56.3%","zoom":{"all":"1180.0 dim","a":"1180.0 dim","b":"1180.0","c":"421.5","d":"337.1","e":"hidden","f":"hidden"},"unzoomed":"1032.5"}'
  [ "$got" = "$want" ] && ok || bad "SVG script search/zoom: got $got"
  got=$(node "$tmp/svgjs.js" "$tmp/ex.svg" '^(a|b)$' 2>&1)
  [ "$got" = '{"frames":7,"matched":"Matched: 100.0%"}' ] && ok || bad "SVG script nested search: got $got"
else
  bad "svg of a small profile: $(cat "$tmp/err")"
fi

# flamebearer total equals the folded total; --max-nodes keeps the total.
"$BIN" convert "$TD/pprof/go-large.cpu.pb.gz" --to folded -o "$tmp/large.folded"
want=$(total_of "$tmp/large.folded")
for mn in 0 100; do
  got=$("$BIN" convert "$TD/pprof/go-large.cpu.pb.gz" --to flamebearer --max-nodes $mn |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["flamebearer"]["numTicks"], d["flamebearer"]["levels"][0][1], len(d["flamebearer"]["names"]))')
  set -- $got
  if [ "${1:-}" = "$want" ] && [ "${2:-}" = "$want" ]; then ok; else bad "go-large flamebearer --max-nodes $mn: numTicks/root $got, expected $want"; fi
  [ "$mn" = 100 ] && { [ "${3:-0}" -le 102 ] && ok || bad "--max-nodes 100 kept ${3:-?} names"; }
done

# --to pprof --type keeps only that type, with its values.
if "$BIN" convert "$TD/pprof/heap.pb.gz" --to pprof --type alloc_space -o "$tmp/one.pb.gz" 2>"$tmp/err"; then
  python3 "$tmp/psum.py" "$tmp/one.pb.gz" >"$tmp/one.sums"
  want=$(python3 "$tmp/psum.py" "$TD/pprof/heap.pb.gz" | awk '$1 == "alloc_space"')
  if [ "$(grep -v '^default' "$tmp/one.sums")" = "$want" ]; then ok; else bad "--to pprof --type alloc_space: $(tr '\n' ' ' <"$tmp/one.sums"), expected $want"; fi
else
  bad "--to pprof --type alloc_space: $(cat "$tmp/err")"
fi

# stdin and -o
if cat "$TD/pprof/cpu.pb.gz" | "$BIN" convert - --to folded >"$tmp/stdin.folded" 2>"$tmp/err" &&
   "$BIN" convert "$TD/pprof/cpu.pb.gz" --to folded -o "$tmp/file.folded" && cmp -s "$tmp/stdin.folded" "$tmp/file.folded"; then ok; else bad "stdin input differs: $(cat "$tmp/err")"; fi
if "$BIN" convert "$TD/collapsed/simple.txt" --from folded --to folded | cmp -s - <(printf 'a;b 5\na;b;c 5\na;b;d 4\n'); then ok; else bad "--from folded"; fi

# usage
"$BIN" convert --help >"$tmp/help" 2>&1 && grep -q -- '--to FORMAT' "$tmp/help" && ok || bad "--help"
"$BIN" convert "$TD/collapsed/simple.txt" >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "missing --to is not a usage error (2)"
"$BIN" convert "$TD/collapsed/simple.txt" --to nope >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "unknown --to is not a usage error (2)"
"$BIN" convert "$TD/pprof/cpu.pb.gz" --to folded --type nosuchtype >/dev/null 2>"$tmp/err"
[ $? -eq 1 ] && grep -q "nosuchtype" "$tmp/err" && ok || bad "--type nosuchtype: $(cat "$tmp/err")"

# broken input: one line, names the file, exit 1, nothing on stdout
broken() {  # NAME FILE [ARGS...]
  local what=$1 file=$2; shift 2
  timeout 60 "$BIN" convert "$file" --to folded "$@" >"$tmp/bout" 2>"$tmp/berr"
  local rc=$? lines; lines=$(wc -l <"$tmp/berr")
  if [ $rc -eq 1 ] && [ "$lines" -eq 1 ] && grep -q "^hearth convert: $file: ." "$tmp/berr" && [ ! -s "$tmp/bout" ]; then
    ok
  else
    bad "broken input '$what': exit $rc, $lines stderr lines: $(head -c 300 "$tmp/berr")"
  fi
}
gzip -dc "$TD/pprof/cpu.pb.gz" >"$tmp/cpu.pb"
head -c 300 "$tmp/cpu.pb" >"$tmp/truncated.pb"; broken truncated "$tmp/truncated.pb" --from pprof
head -c 300 "$tmp/cpu.pb" | gzip >"$tmp/truncated.pb.gz"; broken "truncated gzipped" "$tmp/truncated.pb.gz"
head -c $(( $(wc -c <"$TD/pprof/cpu.pb.gz") / 2 )) "$TD/pprof/cpu.pb.gz" >"$tmp/cut.pb.gz"; broken "cut gzip stream" "$tmp/cut.pb.gz"
printf '\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage-not-deflate' >"$tmp/badgzip.gz"; broken "bad gzip" "$tmp/badgzip.gz"
python3 -c 'import random,sys; random.seed(7); sys.stdout.buffer.write(bytes(random.getrandbits(8) for _ in range(4096)))' >"$tmp/random.bin"
broken "random bytes" "$tmp/random.bin"
printf '\x08\x01' >"$tmp/wiretype.pb"; broken "wrong wire type" "$tmp/wiretype.pb" --from pprof
printf '\x0a\x04\x08\x05\x10\x06' >"$tmp/badref.pb"; broken "string index out of range" "$tmp/badref.pb" --from pprof
printf 'a;b 1\na;\xff\xfe 2\n' >"$tmp/badutf8.folded"; broken "invalid UTF-8 folded" "$tmp/badutf8.folded"
printf 'just some text\nnothing here\n' >"$tmp/text.txt"; broken "unknown text" "$tmp/text.txt"
: >"$tmp/empty"; broken "empty file" "$tmp/empty"
printf '{"profiles": [' >"$tmp/cut.json"; broken "truncated speedscope" "$tmp/cut.json"
broken "missing file" "$tmp/does-not-exist"
python3 -c "print(';'.join(['f'] * 1100000) + ' 1')" >"$tmp/toodeep.folded"; broken "a line of 1.1M frames" "$tmp/toodeep.folded"
python3 -c "print(';'.join('f%d' % i for i in range(2000)) + ' 7')" >"$tmp/deep.folded"
got=$("$BIN" convert "$tmp/deep.folded" --to folded 2>&1 | head -c 20000 | tr ';' '\n' | sed -n '1p;$p' | tr '\n' ' ')
[ "$got" = "f976 f1999 7 " ] && ok || bad "a 2000-frame stack should keep its leaf-most 1024 frames (f976..f1999): got '$got'"
# a valid pprof whose values add up past 2^63-1 (3 x 2^62)
python3 - "$tmp/big.pb" <<'PYEOF'
import sys
def varint(x):
    out = b''
    while True:
        b = x & 0x7f; x >>= 7
        if x: out += bytes([b | 0x80])
        else: return out + bytes([b])
def field(f, w, payload):
    return varint(f << 3 | w) + (varint(payload) if w == 0 else varint(len(payload)) + payload)
prof = field(1, 2, field(1, 0, 1) + field(2, 0, 2))
for _ in range(3): prof += field(2, 2, field(1, 0, 1) + field(2, 0, 1 << 62))
prof += field(4, 2, field(1, 0, 1) + field(4, 2, field(1, 0, 1))) + field(5, 2, field(1, 0, 1) + field(2, 0, 3))
for s in [b'', b'samples', b'count', b'main']: prof += field(6, 2, s)
open(sys.argv[1], 'wb').write(prof)
PYEOF
for to in folded speedscope flamebearer svg; do broken "values past 2^63-1 --to $to" "$tmp/big.pb" --to $to; done
# a gzip bomb: 600 MiB of zeros, past the 512 MiB decompressed cap
head -c $((600 << 20)) /dev/zero | gzip -1 >"$tmp/bomb.gz"
broken "gzip bomb" "$tmp/bomb.gz"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
