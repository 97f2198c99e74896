import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readStoredSamples, type SampleLayout } from '../../src/preprocess/dicom-samples.ts';

const plain16: SampleLayout = { bitsAllocated: 16, bitsStored: 16, highBit: 15, signed: false, bigEndian: false, swapBytePairs: false };

test('16-bit little and big endian, unsigned and signed', () => {
  const le = Uint8Array.of(0x34, 0x12, 0xff, 0xff);
  assert.deepEqual(Array.from(readStoredSamples(le, 0, 2, plain16)), [0x1234, 0xffff]);
  assert.deepEqual(Array.from(readStoredSamples(le, 0, 2, { ...plain16, signed: true })), [0x1234, -1]);
  const be = Uint8Array.of(0x12, 0x34, 0x80, 0x00);
  assert.deepEqual(Array.from(readStoredSamples(be, 0, 2, { ...plain16, bigEndian: true, signed: true })), [0x1234, -32768]);
});

test('reads from an offset', () => {
  const bytes = Uint8Array.of(9, 9, 9, 0x02, 0x01);
  assert.deepEqual(Array.from(readStoredSamples(bytes, 3, 1, plain16)), [0x0102]);
});

test('12 stored bits: bits above HighBit are dropped and the sign is extended from bit 11', () => {
  // 0x1FFB: garbage bit 12 set, 12-bit value 0xFFB = -5. 0xF005: garbage nibble, value 5.
  const bytes = Uint8Array.of(0xfb, 0x1f, 0x05, 0xf0, 0xff, 0x07, 0x00, 0x08);
  const layout = { ...plain16, bitsStored: 12, highBit: 11 };
  assert.deepEqual(Array.from(readStoredSamples(bytes, 0, 4, { ...layout, signed: true })), [-5, 5, 2047, -2048]);
  assert.deepEqual(Array.from(readStoredSamples(bytes, 0, 4, layout)), [0xffb, 5, 2047, 2048]);
});

test('stored bits not starting at bit 0 (HighBit 15, BitsStored 12) are shifted down', () => {
  const bytes = Uint8Array.of(0x0f, 0xab); // 0xAB0F: top 12 bits 0xAB0, low nibble is not pixel data
  assert.deepEqual(Array.from(readStoredSamples(bytes, 0, 1, { ...plain16, bitsStored: 12, highBit: 15 })), [0xab0]);
});

test('8-bit samples, with byte pairs swapped for OW in big endian', () => {
  const layout: SampleLayout = { bitsAllocated: 8, bitsStored: 8, highBit: 7, signed: false, bigEndian: false, swapBytePairs: false };
  const bytes = Uint8Array.of(1, 2, 3, 0xff);
  assert.deepEqual(Array.from(readStoredSamples(bytes, 0, 4, layout)), [1, 2, 3, 255]);
  assert.deepEqual(Array.from(readStoredSamples(bytes, 0, 4, { ...layout, signed: true })), [1, 2, 3, -1]);
  assert.deepEqual(Array.from(readStoredSamples(bytes, 0, 3, { ...layout, bigEndian: true, swapBytePairs: true })), [2, 1, 255]);
});
