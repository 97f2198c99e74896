// Grayscale DICOM stored values -> 8-bit display values, the way a DICOM viewer shows them:
// Modality LUT as Rescale Slope/Intercept (PS3.3 C.11.1), then the VOI window (PS3.3 C.11.2)
// or, without one, the frame's own min..max, then MONOCHROME1 inversion. The model should see
// what a radiologist sees on screen, not raw detector counts.

export type VoiLutFunction = 'LINEAR' | 'LINEAR_EXACT' | 'SIGMOID';

export interface VoiWindow {
  center: number;
  width: number;
  lutFunction: VoiLutFunction;
}

export interface GrayscaleDisplay {
  rescaleSlope: number;
  rescaleIntercept: number;
  /** Absent, or unusable (see isUsableWindow): stretch the frame's min..max over 0..255. */
  window?: VoiWindow;
  /** MONOCHROME1: the minimum value is meant to be shown white. */
  invert: boolean;
}

const Y_MAX = 255;

/** Widths the standard forbids (LINEAR needs >= 1, the others > 0) make the formulas meaningless. */
export function isUsableWindow(window: VoiWindow): boolean {
  if (!Number.isFinite(window.center) || !Number.isFinite(window.width)) return false;
  return window.lutFunction === 'LINEAR' ? window.width >= 1 : window.width > 0;
}

/** Output in [0, 255], not yet rounded, for one modality-LUT output value x. */
export function applyVoiWindow(x: number, window: VoiWindow): number {
  const { center: c, width: w } = window;
  switch (window.lutFunction) {
    case 'LINEAR': {
      // PS3.3 C.11.2.1.2.1. Comparisons first: with w == 1 the window is a threshold at c - 0.5
      // and the interpolation below would divide by zero.
      if (x <= c - 0.5 - (w - 1) / 2) return 0;
      if (x > c - 0.5 + (w - 1) / 2) return Y_MAX;
      return ((x - (c - 0.5)) / (w - 1) + 0.5) * Y_MAX;
    }
    case 'LINEAR_EXACT': {
      // PS3.3 C.11.2.1.3.2
      if (x <= c - w / 2) return 0;
      if (x > c + w / 2) return Y_MAX;
      return ((x - c) / w + 0.5) * Y_MAX;
    }
    case 'SIGMOID':
      // PS3.3 C.11.2.1.3.1
      return Y_MAX / (1 + Math.exp((-4 * (x - c)) / w));
  }
}

/** Parses the VOI LUT Function attribute (0028,1056); absent or unknown means LINEAR (its default). */
export function parseVoiLutFunction(value: string | undefined): VoiLutFunction {
  const v = value?.trim().toUpperCase();
  return v === 'LINEAR_EXACT' || v === 'SIGMOID' ? v : 'LINEAR';
}

/**
 * One 8-bit value per stored value. Works through a lookup table over the frame's stored range
 * (at most 2^16 entries), so the per-pixel cost is one table read whatever the transform.
 */
export function grayscaleTo8Bit(stored: Int32Array, display: GrayscaleDisplay): Uint8Array {
  const out = new Uint8Array(stored.length);
  if (stored.length === 0) return out;

  let minStored = stored[0]!;
  let maxStored = stored[0]!;
  for (let i = 1; i < stored.length; i++) {
    const v = stored[i]!;
    if (v < minStored) minStored = v;
    else if (v > maxStored) maxStored = v;
  }

  const rescale = (v: number) => v * display.rescaleSlope + display.rescaleIntercept;
  let toDisplay: (x: number) => number;
  if (display.window !== undefined && isUsableWindow(display.window)) {
    const window = display.window;
    toDisplay = (x) => applyVoiWindow(x, window);
  } else {
    // The rescale is linear, so the extremes of the rescaled frame are at the stored extremes
    // (swapped when the slope is negative).
    const a = rescale(minStored);
    const b = rescale(maxStored);
    const lo = Math.min(a, b);
    const range = Math.max(a, b) - lo;
    // A flat frame carries no contrast to stretch; show it as the darkest value.
    toDisplay = range > 0 ? (x) => ((x - lo) / range) * Y_MAX : () => 0;
  }

  const lut = new Uint8Array(maxStored - minStored + 1);
  for (let v = minStored; v <= maxStored; v++) {
    const y = Math.min(Y_MAX, Math.max(0, Math.round(toDisplay(rescale(v)))));
    lut[v - minStored] = display.invert ? Y_MAX - y : y;
  }
  for (let i = 0; i < stored.length; i++) out[i] = lut[stored[i]! - minStored]!;
  return out;
}
