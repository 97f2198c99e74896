// Image payloads for HTTP tests: a real radiograph from the VQA fixtures and broken variants.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';

const here = path.dirname(fileURLToPath(import.meta.url));
export const FIXTURE_IMAGES = path.resolve(here, '../fixtures/vqa/images');

/** A real JPEG from VQA-RAD (MedPix, CC0). */
export const realJpeg = readFileSync(path.join(FIXTURE_IMAGES, 'synpic19853.jpg'));

export async function smallPng(): Promise<Buffer> {
  return sharp(realJpeg).resize(24, 24).png().toBuffer();
}

export function dataUrl(bytes: Uint8Array, type = 'image/jpeg'): string {
  return `data:${type};base64,${Buffer.from(bytes).toString('base64')}`;
}
