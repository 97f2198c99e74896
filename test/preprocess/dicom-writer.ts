// Minimal DICOM Part 10 writer for tests: emits exactly the attributes the decoder reads, in any
// of the four native transfer syntaxes (or an encapsulated one), so every test builds the file it
// needs instead of depending on binary fixtures. Follows PS3.10 7.1 (preamble, "DICM", meta group
// in explicit VR little endian) and PS3.5 7.1 (element encodings).

import { deflateRawSync } from 'node:zlib';

export const TS = {
  implicitLittle: '1.2.840.10008.1.2',
  explicitLittle: '1.2.840.10008.1.2.1',
  deflatedLittle: '1.2.840.10008.1.2.1.99',
  explicitBig: '1.2.840.10008.1.2.2',
  jpegBaseline: '1.2.840.10008.1.2.4.50',
  jpeg2000: '1.2.840.10008.1.2.4.90',
  rle: '1.2.840.10008.1.2.5',
} as const;

const SECONDARY_CAPTURE = '1.2.840.10008.5.1.4.1.1.7';
const SOP_INSTANCE = '1.2.826.0.1.3680043.2.1125.1.1';
const IMPLEMENTATION_CLASS = '1.2.826.0.1.3680043.2.1125.99';

type Vr = 'UL' | 'OB' | 'OW' | 'UI' | 'CS' | 'DS' | 'IS' | 'US';

interface Element {
  group: number;
  element: number;
  vr: Vr;
  value: Uint8Array;
  /** Encapsulated pixel data: written with undefined length, items follow in `value`. */
  undefinedLength?: boolean;
}

interface Encoding {
  explicit: boolean;
  bigEndian: boolean;
}

export interface DicomImageSpec {
  transferSyntax: string;
  rows: number;
  columns: number;
  bitsAllocated: 8 | 16;
  bitsStored?: number;
  highBit?: number;
  /** 1: signed stored values. */
  pixelRepresentation?: 0 | 1;
  /** Default MONOCHROME2 (1 sample) or RGB (3 samples). */
  photometric?: string;
  samplesPerPixel?: 1 | 3;
  planarConfiguration?: 0 | 1;
  numberOfFrames?: number;
  rescaleSlope?: number;
  rescaleIntercept?: number;
  windowCenter?: number | readonly number[];
  windowWidth?: number | readonly number[];
  voiLutFunction?: string;
  /**
   * Stored sample values in file order (all frames, planar order if planarConfiguration 1);
   * each is written as its low bitsAllocated bits, so negative numbers become two's complement
   * and values may carry bits above BitsStored.
   */
  samples?: readonly number[];
  /** Instead of samples: compressed frames, written as encapsulated pixel data. */
  encapsulatedFrames?: readonly Uint8Array[];
  /** VR of the pixel data; default OB for 8 bits, OW for 16. */
  pixelVr?: 'OB' | 'OW';
  /** Leave out the preamble and "DICM" prefix (seen from some non-conformant writers). */
  omitPreamble?: boolean;
  /** Leave out an attribute entirely, e.g. 0x00280010 to drop Rows. */
  omitTags?: readonly number[];
}

function padded(bytes: Uint8Array, padByte: number): Uint8Array {
  if (bytes.length % 2 === 0) return bytes;
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  out[bytes.length] = padByte;
  return out;
}

function text(vr: Vr, value: string): Uint8Array {
  // UI values are padded with NUL, other strings with a space (PS3.5 6.2).
  return padded(Buffer.from(value, 'latin1'), vr === 'UI' ? 0 : 0x20);
}

function multiValuedText(value: number | readonly number[]): string {
  return (typeof value === 'number' ? [value] : value).map(String).join('\\');
}

function uint(value: number, bytes: 2 | 4, bigEndian: boolean): Uint8Array {
  const out = Buffer.alloc(bytes);
  if (bytes === 2) bigEndian ? out.writeUInt16BE(value) : out.writeUInt16LE(value);
  else bigEndian ? out.writeUInt32BE(value) : out.writeUInt32LE(value);
  return out;
}

function encodeElements(elements: Element[], encoding: Encoding): Buffer {
  const parts: Uint8Array[] = [];
  const sorted = [...elements].sort((a, b) => a.group - b.group || a.element - b.element);
  for (const el of sorted) {
    const be = encoding.bigEndian && el.group !== 0x0002;
    parts.push(uint(el.group, 2, be), uint(el.element, 2, be));
    const length = el.undefinedLength ? 0xffffffff : el.value.length;
    if (!encoding.explicit) {
      parts.push(uint(length, 4, be));
    } else if (el.vr === 'OB' || el.vr === 'OW') {
      parts.push(Buffer.from(el.vr, 'latin1'), new Uint8Array(2), uint(length, 4, be));
    } else {
      parts.push(Buffer.from(el.vr, 'latin1'), uint(length, 2, be));
    }
    parts.push(el.value);
  }
  return Buffer.concat(parts);
}

function metaHeader(transferSyntax: string): Buffer {
  const le = { explicit: true, bigEndian: false };
  const body = encodeElements(
    [
      { group: 2, element: 0x0001, vr: 'OB', value: Uint8Array.of(0, 1) },
      { group: 2, element: 0x0002, vr: 'UI', value: text('UI', SECONDARY_CAPTURE) },
      { group: 2, element: 0x0003, vr: 'UI', value: text('UI', SOP_INSTANCE) },
      { group: 2, element: 0x0010, vr: 'UI', value: text('UI', transferSyntax) },
      { group: 2, element: 0x0012, vr: 'UI', value: text('UI', IMPLEMENTATION_CLASS) },
    ],
    le,
  );
  const groupLength = encodeElements([{ group: 2, element: 0x0000, vr: 'UL', value: uint(body.length, 4, false) }], le);
  return Buffer.concat([groupLength, body]);
}

function pixelDataBytes(spec: DicomImageSpec, bigEndian: boolean): Uint8Array {
  const samples = spec.samples ?? [];
  if (spec.bitsAllocated === 16) {
    const out = Buffer.alloc(samples.length * 2);
    samples.forEach((v, i) => (bigEndian ? out.writeUInt16BE(v & 0xffff, 2 * i) : out.writeUInt16LE(v & 0xffff, 2 * i)));
    return out;
  }
  const bytes = padded(
    Uint8Array.from(samples, (v) => v & 0xff),
    0,
  );
  // 8-bit samples in OW under big endian are 16-bit words: each byte pair is swapped on disk.
  if (bigEndian && spec.pixelVr === 'OW') {
    const swapped = new Uint8Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) swapped[i] = bytes[i ^ 1]!;
    return swapped;
  }
  return bytes;
}

function encapsulated(frames: readonly Uint8Array[], bigEndian: boolean): Uint8Array {
  const item = (tagElement: number, value: Uint8Array) => [uint(0xfffe, 2, bigEndian), uint(tagElement, 2, bigEndian), uint(value.length, 4, bigEndian), value];
  return Buffer.concat([
    ...item(0xe000, new Uint8Array(0)), // empty basic offset table
    ...frames.flatMap((f) => item(0xe000, padded(f, 0))),
    ...item(0xe0dd, new Uint8Array(0)), // sequence delimiter
  ]);
}

/** A complete DICOM Part 10 file for the given image. */
export function writeDicomImage(spec: DicomImageSpec): Buffer {
  const ts = spec.transferSyntax;
  const encoding: Encoding = { explicit: ts !== TS.implicitLittle, bigEndian: ts === TS.explicitBig };
  const be = encoding.bigEndian;
  const samplesPerPixel = spec.samplesPerPixel ?? (spec.photometric === 'RGB' ? 3 : 1);
  const photometric = spec.photometric ?? (samplesPerPixel === 3 ? 'RGB' : 'MONOCHROME2');
  const bitsStored = spec.bitsStored ?? spec.bitsAllocated;

  const us = (element: number, value: number): Element => ({ group: 0x0028, element, vr: 'US', value: uint(value, 2, be) });
  const str = (group: number, element: number, vr: Vr, value: string): Element => ({ group, element, vr, value: text(vr, value) });

  const elements: Element[] = [
    str(0x0008, 0x0016, 'UI', SECONDARY_CAPTURE),
    str(0x0008, 0x0018, 'UI', SOP_INSTANCE),
    us(0x0002, samplesPerPixel),
    str(0x0028, 0x0004, 'CS', photometric),
    us(0x0010, spec.rows),
    us(0x0011, spec.columns),
    us(0x0100, spec.bitsAllocated),
    us(0x0101, bitsStored),
    us(0x0102, spec.highBit ?? bitsStored - 1),
    us(0x0103, spec.pixelRepresentation ?? 0),
  ];
  if (samplesPerPixel === 3) elements.push(us(0x0006, spec.planarConfiguration ?? 0));
  if (spec.numberOfFrames !== undefined) elements.push(str(0x0028, 0x0008, 'IS', String(spec.numberOfFrames)));
  if (spec.windowCenter !== undefined) elements.push(str(0x0028, 0x1050, 'DS', multiValuedText(spec.windowCenter)));
  if (spec.windowWidth !== undefined) elements.push(str(0x0028, 0x1051, 'DS', multiValuedText(spec.windowWidth)));
  if (spec.rescaleIntercept !== undefined) elements.push(str(0x0028, 0x1052, 'DS', String(spec.rescaleIntercept)));
  if (spec.rescaleSlope !== undefined) elements.push(str(0x0028, 0x1053, 'DS', String(spec.rescaleSlope)));
  if (spec.voiLutFunction !== undefined) elements.push(str(0x0028, 0x1056, 'CS', spec.voiLutFunction));

  if (spec.encapsulatedFrames !== undefined) {
    elements.push({ group: 0x7fe0, element: 0x0010, vr: 'OB', value: encapsulated(spec.encapsulatedFrames, be), undefinedLength: true });
  } else {
    const vr = spec.pixelVr ?? (spec.bitsAllocated === 8 ? 'OB' : 'OW');
    elements.push({ group: 0x7fe0, element: 0x0010, vr, value: pixelDataBytes(spec, be) });
  }

  const omitted = new Set(spec.omitTags ?? []);
  const kept = elements.filter((el) => !omitted.has(el.group * 0x10000 + el.element));
  let dataset = encodeElements(kept, encoding);
  if (ts === TS.deflatedLittle) dataset = deflateRawSync(dataset);

  const prefix = spec.omitPreamble ? [] : [Buffer.alloc(128), Buffer.from('DICM', 'latin1')];
  return Buffer.concat([...prefix, metaHeader(ts), dataset]);
}
