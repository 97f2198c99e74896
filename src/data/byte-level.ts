// GPT-2's byte-level pre-tokenization, reproduced exactly so that merges learned here are the
// merges @huggingface/tokenizers (and the Rust library) will apply to the same pieces at run time.

/** GPT-2's regex split: contractions, words with one leading space, numbers, punctuation runs, whitespace. */
export const BYTE_LEVEL_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/**
 * GPT-2's byte-to-unicode table: printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100 onwards, so every byte becomes one visible character (a space becomes "Ġ").
 */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const table = new Array<string>(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    table[b] = String.fromCharCode(printable.includes(b) ? b : next++);
  }
  return table;
})();

const encoder = new TextEncoder();

/** Splits text the way the ByteLevel pre-tokenizer does, before the byte spelling. */
export function splitPieces(text: string): string[] {
  return text.match(BYTE_LEVEL_SPLIT) ?? [];
}

/** Spells one piece as byte characters, e.g. " lung" -> "Ġlung". */
export function toByteChars(piece: string): string {
  let out = '';
  for (const byte of encoder.encode(piece)) out += BYTE_TO_CHAR[byte];
  return out;
}

/** Splits text the way the ByteLevel pre-tokenizer does and spells each piece in byte characters. */
export function byteLevelPieces(text: string): string[] {
  return splitPieces(text).map(toByteChars);
}
