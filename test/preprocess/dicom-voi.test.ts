import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyVoiWindow, grayscaleTo8Bit, isUsableWindow, parseVoiLutFunction } from '../../src/preprocess/dicom-voi.ts';

const plain = { rescaleSlope: 1, rescaleIntercept: 0, invert: false };

test('LINEAR window of width 1 is a threshold at center - 0.5 (no division by zero)', () => {
  const w = { center: 10, width: 1, lutFunction: 'LINEAR' } as const;
  assert.equal(applyVoiWindow(9.5, w), 0);
  assert.equal(applyVoiWindow(9.6, w), 255);
});

test('usable widths follow the standard: LINEAR needs >= 1, the others > 0', () => {
  assert.equal(isUsableWindow({ center: 0, width: 0.5, lutFunction: 'LINEAR' }), false);
  assert.equal(isUsableWindow({ center: 0, width: 0.5, lutFunction: 'LINEAR_EXACT' }), true);
  assert.equal(isUsableWindow({ center: 0, width: 0, lutFunction: 'SIGMOID' }), false);
  assert.equal(isUsableWindow({ center: Number.NaN, width: 10, lutFunction: 'LINEAR' }), false);
});

test('VOI LUT Function: absent or unknown means LINEAR', () => {
  assert.equal(parseVoiLutFunction(undefined), 'LINEAR');
  assert.equal(parseVoiLutFunction(' sigmoid '), 'SIGMOID');
  assert.equal(parseVoiLutFunction('LINEAR_EXACT'), 'LINEAR_EXACT');
  assert.equal(parseVoiLutFunction('CUBIC'), 'LINEAR');
});

test('min-max with a negative slope: the largest stored value is the darkest', () => {
  const out = grayscaleTo8Bit(Int32Array.of(0, 50, 100), { ...plain, rescaleSlope: -1 });
  assert.deepEqual(Array.from(out), [255, 128, 0]);
});

test('a flat frame has no contrast to stretch and shows as black (white when inverted)', () => {
  assert.deepEqual(Array.from(grayscaleTo8Bit(Int32Array.of(7, 7), plain)), [0, 0]);
  assert.deepEqual(Array.from(grayscaleTo8Bit(Int32Array.of(7, 7), { ...plain, invert: true })), [255, 255]);
});

test('window values outside it clamp to 0 and 255', () => {
  const window = { center: 0, width: 100, lutFunction: 'LINEAR_EXACT' } as const;
  const out = grayscaleTo8Bit(Int32Array.of(-1000, -50, 0, 50, 1000), { ...plain, window });
  assert.deepEqual(Array.from(out), [0, 0, 128, 255, 255]);
});
