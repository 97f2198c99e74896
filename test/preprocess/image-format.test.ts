import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { hasDicomPreamble, sniffImageFormat } from '../../src/preprocess/image-format.ts';
import { TS, writeDicomImage } from './dicom-writer.ts';

const tiny = () => sharp({ create: { width: 2, height: 2, channels: 3, background: '#336699' } });

test('PNG and JPEG are recognised by their signatures', async () => {
  assert.equal(sniffImageFormat(await tiny().png().toBuffer()), 'png');
  assert.equal(sniffImageFormat(await tiny().jpeg().toBuffer()), 'jpeg');
});

test('DICOM with preamble and "DICM", and without the preamble', () => {
  const spec = { transferSyntax: TS.explicitLittle, rows: 1, columns: 1, bitsAllocated: 8, samples: [0] } as const;
  const withPreamble = writeDicomImage(spec);
  const withoutPreamble = writeDicomImage({ ...spec, omitPreamble: true });
  assert.equal(sniffImageFormat(withPreamble), 'dicom');
  assert.equal(hasDicomPreamble(withPreamble), true);
  assert.equal(sniffImageFormat(withoutPreamble), 'dicom');
  assert.equal(hasDicomPreamble(withoutPreamble), false);
});

test('other formats, text, short and empty input are not recognised', async () => {
  assert.equal(sniffImageFormat(await tiny().webp().toBuffer()), undefined);
  assert.equal(sniffImageFormat(await tiny().gif().toBuffer()), undefined);
  assert.equal(sniffImageFormat(Buffer.from('%PDF-1.7\n')), undefined);
  assert.equal(sniffImageFormat(Buffer.from('DICM is only valid at offset 128')), undefined);
  assert.equal(sniffImageFormat(Uint8Array.of(0xff, 0xd8)), undefined);
  assert.equal(sniffImageFormat(new Uint8Array(0)), undefined);
  // 128 zero bytes and a wrong prefix: a preamble alone is not enough.
  assert.equal(sniffImageFormat(Buffer.concat([Buffer.alloc(128), Buffer.from('DICX')])), undefined);
});

test('the sniffer reads content only: a PNG inside a larger Uint8Array view', async () => {
  const png = await tiny().png().toBuffer();
  const backing = new Uint8Array(png.length + 10);
  backing.set(png, 10);
  assert.equal(sniffImageFormat(backing.subarray(10)), 'png');
});
