// Reads native (uncompressed) DICOM pixel samples into plain integers: byte order, the stored
// bits inside the allocated ones, and two's-complement sign are undone here so that the
// rest of the DICOM path works on "stored values" as PS3.3 C.7.6.3 defines them.

export interface SampleLayout {
  bitsAllocated: 8 | 16;
  /** Bits actually used per sample (BitsStored), <= bitsAllocated. */
  bitsStored: number;
  /** Position of the most significant stored bit (HighBit), bitsStored - 1 <= highBit < bitsAllocated. */
  highBit: number;
  /** PixelRepresentation 1: stored values are two's complement in bitsStored bits. */
  signed: boolean;
  /** Explicit VR Big Endian: 16-bit samples are big endian. */
  bigEndian: boolean;
  /**
   * 8-bit samples inside an OW element of a big-endian dataset: OW is a stream of 16-bit words, so
   * the bytes of each pair are swapped relative to the sample order (PS3.5 8.1.1, 8.2).
   */
  swapBytePairs: boolean;
}

/** `count` stored values starting at `offset`; the caller has checked the bytes are there. */
export function readStoredSamples(bytes: Uint8Array, offset: number, count: number, layout: SampleLayout): Int32Array {
  const out = new Int32Array(count);
  const shift = layout.highBit + 1 - layout.bitsStored;
  const mask = (1 << layout.bitsStored) - 1;
  const signBit = 1 << (layout.bitsStored - 1);
  // Already the right range when nothing is masked, shifted or sign-extended: skip per-sample work.
  const needsBitFix = shift !== 0 || layout.bitsStored !== layout.bitsAllocated || layout.signed;

  for (let i = 0; i < count; i++) {
    let raw: number;
    if (layout.bitsAllocated === 8) {
      raw = bytes[offset + (layout.swapBytePairs ? i ^ 1 : i)]!;
    } else {
      const p = offset + 2 * i;
      raw = layout.bigEndian ? (bytes[p]! << 8) | bytes[p + 1]! : bytes[p]! | (bytes[p + 1]! << 8);
    }
    if (needsBitFix) {
      // Bits outside [highBit - bitsStored + 1, highBit] may hold overlay data in old files: drop them.
      raw = (raw >>> shift) & mask;
      if (layout.signed && (raw & signBit) !== 0) raw -= 1 << layout.bitsStored;
    }
    out[i] = raw;
  }
  return out;
}
