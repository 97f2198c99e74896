// The hand-written SVG line chart: well-formed, one line per series inside the plot frame, names
// escaped, smoothing and tick choice as computed by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { escapeXml, lineChart, movingAverage, niceTicks } from '../../src/experiment/svg-chart.ts';
import { wellFormedXml } from './xml-well-formed.ts';

const pts = (ys: number[]) => ys.map((y, i) => [i + 1, y] as const);

function polylines(svg: string): [number, number][][] {
  return [...svg.matchAll(/<polyline[^>]* points="([^"]+)"/g)].map((m) => m[1].split(' ').map((p) => p.split(',').map(Number) as [number, number]));
}

test('a chart is well-formed SVG with one polyline per series, inside the plot area', () => {
  const svg = lineChart({
    title: 'Reward <per> step & row',
    xLabel: 'step',
    yLabel: 'reward',
    width: 760,
    height: 420,
    series: [
      { name: 'drgrpo-sem', points: pts([0.1, 0.4, 0.3, 0.8]) },
      { name: 'a<b & "c"', points: pts([0.9, 0.2, 0.5, 0.6]) },
    ],
  });
  const names = wellFormedXml(svg);
  assert.equal(names[0], 'svg');
  const lines = polylines(svg);
  assert.equal(lines.length, 2);
  for (const line of lines) {
    assert.equal(line.length, 4);
    for (const [x, y] of line) {
      assert.ok(x >= 64 && x <= 760 - 236, `x ${x} outside the plot`);
      assert.ok(y >= 40 && y <= 420 - 52, `y ${y} outside the plot`);
    }
  }
  // Larger values are drawn higher (smaller y): the first series rises from 0.1 to 0.8.
  assert.ok(lines[0][3][1] < lines[0][0][1]);
  // x is monotone in the step.
  assert.ok(lines[0].every((p, i) => i === 0 || p[0] > lines[0][i - 1][0]));
  assert.match(svg, /a&lt;b &amp; &quot;c&quot;/);
  assert.match(svg, /Reward &lt;per&gt; step &amp; row/);
  assert.ok(!/NaN|Infinity/.test(svg));
});

test('degenerate series: empty, single point, flat and non-finite values stay well-formed', () => {
  const svg = lineChart({
    title: 't',
    xLabel: 'x',
    yLabel: 'y',
    series: [
      { name: 'empty', points: [] },
      { name: 'one', points: [[3, 2]] },
      { name: 'flat', points: pts([5, 5, 5]) },
      {
        name: 'holes',
        points: [
          [1, NaN],
          [2, 1],
          [3, Infinity],
          [4, 2],
        ],
      },
    ],
  });
  const names = wellFormedXml(svg);
  assert.equal(names.filter((n) => n === 'circle').length, 1);
  assert.equal(polylines(svg).length, 2);
  assert.equal(polylines(svg)[1].length, 2, 'non-finite points are dropped');
  assert.ok(!/NaN|Infinity/.test(svg));
  // Legend entries for all four series, even the empty one.
  for (const n of ['empty', 'one', 'flat', 'holes']) assert.ok(svg.includes(`>${n}</text>`), n);
  assert.ok(!/NaN/.test(lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [] })));
});

test('moving average and ticks', () => {
  assert.deepEqual(movingAverage(pts([1, 2, 3, 4, 5]), 3), [
    [1, 1],
    [2, 1.5],
    [3, 2],
    [4, 3],
    [5, 4],
  ]);
  assert.deepEqual(movingAverage(pts([1, 2]), 1), [
    [1, 1],
    [2, 2],
  ]);
  assert.deepEqual(niceTicks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(0, 40, 6), [0, 10, 20, 30, 40]);
  assert.deepEqual(niceTicks(13, 27, 5), [15, 20, 25]);
  assert.equal(escapeXml(`<a href='x'>&</a>`), '&lt;a href=&apos;x&apos;&gt;&amp;&lt;/a&gt;');
});

test('the well-formedness check itself rejects broken XML', () => {
  assert.throws(() => wellFormedXml('<svg><g></svg></g>'));
  assert.throws(() => wellFormedXml('<svg><text>a < b</text></svg>'));
  assert.throws(() => wellFormedXml('<svg><text>a & b</text></svg>'));
  assert.throws(() => wellFormedXml('<svg x="1" x="2"/>'));
  assert.throws(() => wellFormedXml('<svg/><svg/>'));
  assert.throws(() => wellFormedXml('<svg x=1/>'));
  assert.deepEqual(wellFormedXml('<svg><g a="&amp;"/></svg>'), ['svg', 'g']);
});
